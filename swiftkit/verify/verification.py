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
from swiftkit.verify import scorecard as sc
from swiftkit.verify.ask import Asked, Prewarmed, ask, ask_both, cached_answers, can_share_engine
from swiftkit.datasets.probes import load_probes
from swiftkit.verify.retention import Retention, compare, format_retention


@dataclass
class Probes:
    identity: list[dict] = field(default_factory=list)  # scorecard rows (trained, held-out, recipe probes)
    general: list[dict] = field(default_factory=list)  # retention rows

    def rows(self) -> list[dict]:
        """Everything to ask, each question once."""
        seen, out = set(), []
        for row in self.identity + self.general:
            if row["query"] not in seen:
                seen.add(row["query"])
                out.append(row)
        return out


def load(settings: VerifySection, identity_probes: Path | None, general_path: Path | None) -> Probes:
    general = load_probes(general_path or bundled_general_probes()) if settings.retention else []
    return Probes(sc.probe_rows(identity_probes, settings.probes), general)


@dataclass
class Verified:
    card: sc.Scorecard | None
    retention: Retention | None
    answers: dict[str, str]
    answers_path: Path | None
    failures: list[str]  # thresholds the model missed, in words
    seconds: float
    phases: dict[str, dict | str | None] = field(default_factory=dict)  # per swift infer: seconds per phase


def verify_model(tuned: ModelRef, base: ModelRef | None, catalog: Catalog, probes: Probes, folder: Path, *,
                 settings: VerifySection, identity: Identity | None, say: Callable[[str], None],
                 prewarmed: Prewarmed | None = None) -> Verified:
    """Ask, score, judge. Raises ask.AskFailed when swift infer fails. `prewarmed`: an answer worker started
    during training (verify.prewarm), used where one engine can answer."""
    start = time.monotonic()
    rows = probes.rows()
    kinds = [f"{len(probes.identity)} identity" if probes.identity else "", f"{len(probes.general)} general"
             if probes.general else ""]
    say(f"swiftkit: verifying {tuned.label} with {' and '.join(k for k in kinds if k)} probes")
    card = retention = base_asked = None
    want_base = bool(probes.general) and base is not None
    engine_base = base if base is not None else replace(tuned, adapter=None)
    if prewarmed is not None:
        prewarmed.hashed()  # the model's fingerprint, computed during training, keys the cached base answers
    one_engine = tuned.adapter is not None and can_share_engine(tuned, engine_base)
    cached = cached_answers(engine_base, probes.general, settings.max_new_tokens) if want_base else None
    if cached is not None:
        base_asked = Asked(cached, None, 0.0, cached=True)
    base_rows = probes.general if want_base and cached is None else []
    in_worker = one_engine and bool(base_rows or prewarmed is not None)
    if in_worker:
        # the base model is the tuned one without its adapter: one engine, one model load, for both
        asked, shared_base = ask_both(tuned, engine_base, rows, base_rows, folder,
                                      max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                                      prewarmed=prewarmed)
        base_asked = base_asked or shared_base
    else:
        asked = ask(tuned, catalog, rows, folder, max_new_tokens=settings.max_new_tokens,
                    batch_size=settings.batch_size)
    failures: list[str] = []
    if probes.identity:
        card = sc.score(probes.identity, asked.answers, identity.name.model_dump() if identity else {},
                        identity.author.model_dump() if identity else {})
        say(sc.format_table(card))
        if settings.min_score is not None and (card.score or 0.0) < settings.min_score:
            failures.append(f"verification score {card.score or 0:.0%} is below verify.min_score "
                            f"{settings.min_score:.0%}: the identity did not take")
    if want_base:
        if base_asked is None:
            base_asked = ask(base, catalog, probes.general, folder,  # type: ignore[arg-type]
                             max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                             name="base-answers", cache=True)
        retention = compare(probes.general, base_asked.answers, asked.answers)
        say(format_retention(retention, settings.min_retention))
        if settings.min_retention is not None and retention.score < settings.min_retention:
            failures.append(f"retention {retention.score:.2f} is below verify.min_retention "
                            f"{settings.min_retention:.2f}: the tune changed the model's general answers")
    shared = base_asked is not None and base_asked.log_path is not None and base_asked.log_path == asked.log_path
    phases = {"tuned": asked.phases, "base": "cached" if base_asked and base_asked.cached else
              (base_asked.phases if base_asked else None), "engine": "shared" if shared else
              "answer worker" if in_worker else "swift infer",
              "engine_seconds": asked.wall_seconds}
    return Verified(card, retention, asked.answers, folder / "answers.jsonl", failures,
                    round(time.monotonic() - start, 2), phases)
