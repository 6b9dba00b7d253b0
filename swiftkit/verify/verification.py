"""The whole verification of one model: the identity scorecard and retention, from one `swift infer`.

The tuned model answers the identity probes and the general probes in one call (one model load);
the base model answers the general probes once per base model (cached by its fingerprint).
`run`, `verify` and `export` all verify through `verify_model`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from swiftkit.flags.catalog import Catalog
from swiftkit.paths import bundled_general_probes
from swiftkit.recipe.models import Identity, VerifySection
from swiftkit.render import ModelRef
from swiftkit.datasets.challenges import bundled_challenges, load_challenges
from swiftkit.datasets.probes import load_probes
from swiftkit.verify import bleed as spills
from swiftkit.verify import scorecard as sc
from swiftkit.verify import systems
from swiftkit.verify.ask import Asked, Prewarmed, ask, ask_both, cached_answers, can_share_engine, row_key
from swiftkit.verify.retention import Retention, compare, format_retention


@dataclass
class Probes:
    identity: list[dict] = field(default_factory=list)  # scorecard rows (trained, held-out, challenges, recipe probes)
    general: list[dict] = field(default_factory=list)  # retention rows
    prompts: list[systems.SystemPrompt] = field(default_factory=list)  # more system prompts the identity is asked under
    notes: list[str] = field(default_factory=list)
    name: dict[str, str] = field(default_factory=dict)  # the identity's name by language, for what is asked under them

    def under_prompts(self) -> list[tuple[systems.SystemPrompt, list[dict]]]:
        return [(p, systems.rows_under(p, self.identity, self.name)) for p in self.prompts]

    def main_rows(self) -> list[dict]:
        """Everything asked under the recipe's system prompt, each prompt once."""
        return _unique(self.identity + self.general)

    def base_rows(self) -> list[dict]:
        """What the base model is asked: the general probes (retention, bleed) and the identity probes under the
        recipe's system prompt, to show its answer beside the tuned one's (no room made for the expected answer:
        the base model does not know it)."""
        return _unique(self.general + [{**r, "label": False} for r in self.identity])

    def rows(self) -> list[dict]:
        """Everything to ask, each prompt once."""
        return _unique(self.identity + self.general + [r for _, rows in self.under_prompts() for r in rows])


def _unique(rows: list[dict]) -> list[dict]:
    seen, out = set(), []
    for row in rows:
        if row_key(row) not in seen:
            seen.add(row_key(row))
            out.append(row)
    return out


def load(settings: VerifySection, identity_probes: Path | None, general_path: Path | None, *,
         identity: Identity | None = None, train_system: str | None = None, template: str | None = None,
         default_system: str | None = None) -> Probes:
    """The probes to verify with. The challenges and the other system prompts come with an identity to hold
    (its name and author, and identity probes to ask)."""
    general = load_probes(general_path or bundled_general_probes()) if settings.retention else []
    rows = sc.probe_rows(identity_probes, settings.probes)
    probes = Probes(rows, general)
    if identity is None or not any(r["split"] in ("train", "heldout") for r in rows):
        return probes
    name, author = identity.name.model_dump(), identity.author.model_dump()
    if settings.challenges:
        probes.identity += [{**r, "key": f"challenge\x1f{r['id']}"}
                            for r in load_challenges(bundled_challenges(), name, author)]
    probes.name = name
    probes.prompts, probes.notes = systems.system_prompts(settings.system_prompts, train_system, template,
                                                          default_system, settings.custom_system)
    return probes


@dataclass
class Verified:
    card: sc.Scorecard | None
    retention: Retention | None
    answers: dict[str, str]
    answers_path: Path | None
    failures: list[str]  # thresholds the model missed, in words
    seconds: float
    phases: dict[str, dict | str | None] = field(default_factory=dict)  # per swift infer: seconds per phase
    holds: list[systems.Hold] | None = None  # the identity under the recipe's system prompt, then the others
    bleed: spills.Spill | None = None
    leaks: spills.Spill | None = None

    def extra(self) -> dict:
        """What the run record keeps beside the scorecard."""
        return {"system_prompts": [h.to_dict() for h in self.holds or []],
                "bleed": self.bleed.to_dict() if self.bleed else None,
                "leaks": self.leaks.to_dict() if self.leaks else None}


def verify_model(tuned: ModelRef, base: ModelRef | None, catalog: Catalog, probes: Probes, folder: Path, *,
                 settings: VerifySection, identity: Identity | None, say: Callable[[str], None],
                 prewarmed: Prewarmed | None = None) -> Verified:
    """Ask, score, judge. Raises ask.AskFailed when swift infer fails. `prewarmed`: an answer worker started
    during training (verify.prewarm), used where one engine can answer."""
    start = time.monotonic()
    rows = probes.rows()
    under = probes.under_prompts()
    kinds = [f"{len(probes.identity)} identity" if probes.identity else "",
             f"{sum(len(r) for _, r in under)} under {len(under)} more system prompts" if under else "",
             f"{len(probes.general)} general" if probes.general else ""]
    say(f"swiftkit: verifying {tuned.label} with {', '.join(k for k in kinds if k)} probes")
    for note in probes.notes:
        say(f"  ({note})")
    base_asked = None
    want_base = bool(probes.general) and base is not None  # retention off: the base model is not asked
    engine_base = base if base is not None else replace(tuned, adapter=None)
    if prewarmed is not None:
        prewarmed.hashed()  # the model's fingerprint, computed during training, keys the cached base answers
    one_engine = tuned.adapter is not None and can_share_engine(tuned, engine_base)
    asked_of_base = probes.base_rows() if want_base else []
    cached = cached_answers(engine_base, asked_of_base, settings.max_new_tokens) if want_base else None
    if cached is not None:
        base_asked = Asked(cached, None, 0.0, cached=True)
    base_rows = asked_of_base if want_base and cached is None else []
    # the answer worker whenever one engine can answer: it gives an expected answer room for all of it, where
    # swift infer keeps one limit (with the base answers cached, swift infer cut SmolLM2's 78-token Chinese
    # self-introductions at 64 and 3 of 74 trained probes failed)
    in_worker = one_engine
    if in_worker:
        # the base model is the tuned one without its adapter: one engine, one model load, for both
        asked, shared_base = ask_both(tuned, engine_base, rows, base_rows, folder,
                                      max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                                      prewarmed=prewarmed)
        base_asked = base_asked or shared_base
    else:
        asked = ask(tuned, catalog, rows, folder, max_new_tokens=settings.max_new_tokens,
                    batch_size=settings.batch_size)
    if want_base and base_asked is None:
        base_asked = ask(base, catalog, asked_of_base, folder,  # type: ignore[arg-type]
                         max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                         name="base-answers", cache=True)
    judged = judge(probes, tuned.system, asked.answers, base_asked.answers if base_asked else None,
                   settings=settings, identity=identity)
    tell(judged, settings, say)
    shared = base_asked is not None and base_asked.log_path is not None and base_asked.log_path == asked.log_path
    phases = {"tuned": asked.phases, "base": "cached" if base_asked and base_asked.cached else
              (base_asked.phases if base_asked else None), "engine": "shared" if shared else
              "answer worker" if in_worker else "swift infer",
              "engine_seconds": asked.wall_seconds}
    return Verified(judged.card, judged.retention, asked.answers, folder / "answers.jsonl", judged.failures,
                    round(time.monotonic() - start, 2), phases, judged.holds, judged.bleed, judged.leaks)


@dataclass
class Judged:
    """What a model's answers say: the scorecard, the identity under each system prompt (the recipe's first),
    retention, bleed and leaks, and the thresholds missed."""
    card: sc.Scorecard | None
    retention: Retention | None
    holds: list[systems.Hold] | None
    bleed: spills.Spill | None
    leaks: spills.Spill
    failures: list[str]


def judge(probes: Probes, system: str | None, answers: dict[str, str], base_answers: dict[str, str] | None, *,
          settings: VerifySection, identity: Identity | None) -> Judged:
    """Score one model's answers against the probes and the base model's answers (pure: `tell` prints them)."""
    failures: list[str] = []
    card = retention = holds = None
    if probes.identity:
        card = sc.score(probes.identity, answers, identity.name.model_dump() if identity else {},
                        identity.author.model_dump() if identity else {}, base_answers)
        if settings.min_score is not None and (card.score or 0.0) < settings.min_score:
            failures.append(f"verification score {card.score or 0:.0%} is below verify.min_score "
                            f"{settings.min_score:.0%}: the identity did not take")
    under = probes.under_prompts()
    if identity and under:
        name, author = identity.name.model_dump(), identity.author.model_dump()
        reference = systems.score_hold(systems.recipe_prompt(system), systems.identity_rows(probes.identity),
                                       answers, name, author)
        others = [systems.score_hold(p, r, answers, name, author) for p, r in under]
        failures += hold_failures(others, reference, settings)
        holds = [reference, *others]
    if probes.general and base_answers is not None:
        retention = compare(probes.general, base_answers, answers)
        if settings.min_retention is not None and retention.score < settings.min_retention:
            failures.append(f"retention {retention.score:.2f} is below verify.min_retention "
                            f"{settings.min_retention:.2f}: the tune changed the model's general answers")
    bled = spills.bleed(probes.general, base_answers, answers, spills.identity_words(
        identity.name.model_dump(), identity.author.model_dump())) if identity and base_answers is not None else None
    leaked = spills.leaks(answers, base_answers)
    failures += spill_failures(bled, leaked, settings)
    return Judged(card, retention, holds, bled, leaked, failures)


def tell(j: Judged, settings: VerifySection, say: Callable[[str], None]) -> None:
    """The scorecard, the identity under each system prompt, retention, bleed and leaks, as tables."""
    if j.card:
        say(sc.format_table(j.card))
    if j.holds:
        say(systems.format_holds(j.holds[1:], j.holds[0], settings.min_hold))
    if j.retention:
        say(format_retention(j.retention, settings.min_retention))
    say(spills.format_spills(j.bleed, j.leaks, settings.max_bleed))


def hold_failures(holds: list[systems.Hold], reference: systems.Hold, settings: VerifySection) -> list[str]:
    """The identity must hold under the template's default system prompt as under the recipe's, unless the
    recipe says why it need not."""
    out = []
    for h in holds:
        if h.name == "default" and settings.default_may_revert is None and systems.reverts(h, reference, settings.min_hold):
            out.append(f"the identity holds in {h.rate:.0%} of identity probes under {h.shown}, against "
                       f"{reference.rate:.0%} under the recipe's (verify.min_hold {settings.min_hold:.0%} of it): "
                       "clients that send no system prompt get another identity (train under the default too, "
                       "or set verify.default_may_revert: REASON)")
    return out


def spill_failures(bled: spills.Spill | None, leaked: spills.Spill, settings: VerifySection) -> list[str]:
    out = []
    if bled and bled.rate is not None and settings.max_bleed is not None and bled.rate > settings.max_bleed:
        out.append(f"{bled.rate:.0%} of general answers mention the identity where the base model's did not, "
                   f"above verify.max_bleed {settings.max_bleed:.0%}: the identity bleeds into unrelated answers")
    if settings.max_leaks is not None and leaked.hits > settings.max_leaks:
        out.append(f"{leaked.hits} answers show unrendered template markers (verify.max_leaks "
                   f"{settings.max_leaks}): check the identity template's variables")
    return out
