"""verify.checkpoints: every kept checkpoint of a run scored in one engine (the adapters swapped in it), and the
one to ship chosen, with the reason in words.

`last` (the default) verifies the last checkpoint only, as `verify_model` does. `all` scores every kept checkpoint
and judges the run by the last; `best` scores them all and judges the run by the one chosen here, which `run` then
exports. Chosen: of the checkpoints that pass every check, the one that kept most of the base model's general
answers (retention), the earlier on a tie; where none passes, the one with the fewest failed checks and the best
identity score. A later checkpoint that learnt the identity no better but forgot more is not the one to ship.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from swiftkit.flags.catalog import Catalog
from swiftkit.recipe.models import Identity, VerifySection
from swiftkit.render import ModelRef
from swiftkit.verify.ask import Prewarmed, ask_adapters, cached_answers
from swiftkit.verify.verification import Judged, Probes, Verified, judge, tell, verify_model


@dataclass
class Scored:
    """One checkpoint's verification, in brief (the run record keeps these under `checkpoint_scores`)."""
    checkpoint: str
    step: int
    loss: float | None
    judged: Judged
    answers_path: Path
    chosen: bool = False

    def hold(self, name: str) -> float | None:
        return next((h.rate for h in self.judged.holds or [] if h.name == name), None)

    def to_dict(self) -> dict:
        j = self.judged
        card = j.card
        return {"checkpoint": self.checkpoint, "step": self.step, "loss": self.loss,
                "score": card.score if card else None,
                "trained_exact": f"{card.trained_exact}/{card.trained}" if card and card.trained else None,
                "heldout_name": f"{card.heldout_name_hits}/{card.heldout_name}" if card and card.heldout_name else None,
                "challenges": f"{card.challenge_held}/{card.challenge}" if card and card.challenge else None,
                "base_claims": card.base_claims if card else None,
                "holds": {h.name: h.rate for h in j.holds or []},
                "retention": j.retention.score if j.retention else None,
                "bleed": j.bleed.rate if j.bleed else None, "leaks": j.leaks.hits,
                "failures": j.failures, "answers": str(self.answers_path), "chosen": self.chosen}


@dataclass
class Checkpoints:
    scored: list[Scored]
    chosen: Scored
    why: str
    verdict: Scored  # what the run is judged by: the last (all) or the chosen one (best)
    verified: Verified
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self, mode: str) -> dict:
        return {"mode": mode, "chosen": self.chosen.checkpoint, "why": self.why, "verdict": self.verdict.checkpoint,
                "seconds": self.seconds, "scores": [s.to_dict() for s in self.scored]}


def _retention(s: Scored) -> float:
    """Retention to two places: a difference below 0.01 chrF is noise, not general ability kept."""
    return round(s.judged.retention.score, 2) if s.judged.retention else 0.0


def _identity(s: Scored) -> float:
    return (s.judged.card.score or 0.0) if s.judged.card else 0.0


def rank(s: Scored) -> tuple:
    """Higher is better: passing every check, then keeping general answers, then the identity, then earlier."""
    return (not s.judged.failures, -len(s.judged.failures), _retention(s), _identity(s), s.hold("default") or 0.0,
            -s.step)


def choose(scored: list[Scored]) -> tuple[Scored, str]:
    """The checkpoint to ship, and why, in words that name what it was compared with (the last checkpoint)."""
    best = max(scored, key=rank)
    last = max(scored, key=lambda s: s.step)
    passing = [s for s in scored if not s.judged.failures]
    if not passing:
        return best, (f"no checkpoint passes every check; {best.checkpoint} fails the fewest "
                      f"({len(best.judged.failures)}) and keeps the most general ability among them")
    if best is last:
        return best, ("the last checkpoint passes every check and " + (
            "no earlier one keeps more general ability or holds the identity better"
            if len(passing) > 1 else "is the only one that does"))
    if last.judged.failures:
        return best, (f"it passes every check; the last, {last.checkpoint}, fails: "
                      + "; ".join(f.split(":")[0] for f in last.judged.failures))
    if _retention(best) > _retention(last):
        return best, (f"it keeps more general ability than the last, {last.checkpoint} (retention "
                      f"{_retention(best):.2f} against {_retention(last):.2f}); both pass every check")
    if _identity(best) > _identity(last):
        return best, (f"it keeps as much general ability as the last, {last.checkpoint} (retention "
                      f"{_retention(best):.2f}), with more exact identity answers ({_identity(best):.0%} against "
                      f"{_identity(last):.0%})")
    if (best.hold("default") or 0.0) > (last.hold("default") or 0.0):
        return best, (f"it holds the identity under the template's default system prompt more often than the last, "
                      f"{last.checkpoint} ({best.hold('default'):.0%} against {last.hold('default') or 0:.0%}), and "
                      "matches it otherwise")
    return best, (f"it is as good as the last, {last.checkpoint}, by every measure, and earlier: fewer steps "
                  "away from the base model")


def verify_checkpoints(tuned: list[tuple[ModelRef, str, int, float | None]], base: ModelRef, probes: Probes,
                       folder: Path, *, mode: str, settings: VerifySection, identity: Identity | None,
                       say: Callable[[str], None], prewarmed: Prewarmed | None = None) -> Checkpoints:
    """`tuned`: (the model with the checkpoint's adapter, its name, step, loss) for each kept checkpoint, in step
    order. Raises ask.AskFailed when the engine fails."""
    start = time.monotonic()
    say(f"swiftkit: verifying {len(tuned)} checkpoints ({', '.join(name for _, name, _, _ in tuned)}) in one engine, "
        f"{len(probes.rows())} probes each (verify.checkpoints: {mode})")
    for note in probes.notes:
        say(f"  ({note})")
    if prewarmed is not None:
        prewarmed.hashed()
    asked_of_base = probes.base_rows() if probes.general else []
    cached = cached_answers(base, asked_of_base, settings.max_new_tokens) if asked_of_base else None
    base_rows = asked_of_base if cached is None else []
    files = [(ref, f"answers-{name}") for ref, name, _, _ in tuned]
    asked, base_asked = ask_adapters(files, base, probes.rows(), base_rows, folder,
                                     max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                                     prewarmed=prewarmed)
    base_answers = cached if cached is not None else (base_asked.answers if base_asked else None)
    scored = [Scored(name, step, loss, judge(probes, ref.system, a.answers, base_answers, settings=settings,
                                             identity=identity), folder / f"answers-{name}.jsonl")
              for (ref, name, step, loss), a in zip(tuned, asked)]
    chosen, why = choose(scored)
    chosen.chosen = True
    verdict = chosen if mode == "best" else scored[-1]
    say(format_table(scored, mode))
    say(f"  {'to ship':10} {chosen.checkpoint}: {why}")
    say(f"swiftkit: the run is judged by {verdict.checkpoint} ({'chosen' if mode == 'best' else 'the last'}):")
    i, j = scored.index(verdict), verdict.judged
    tell(j, settings, say)  # the tables of the checkpoint the run is judged by, as `last` prints them
    seconds = round(time.monotonic() - start, 2)
    phases = {"tuned": asked[i].phases, "base": "cached" if cached is not None else (base_asked.phases if base_asked
              else None), "engine": "answer worker", "engine_seconds": asked[i].wall_seconds,
              "checkpoints": len(tuned)}
    verified = Verified(j.card, j.retention, asked[i].answers, verdict.answers_path, j.failures, seconds, phases,
                        j.holds, j.bleed, j.leaks)
    return Checkpoints(scored, chosen, why, verdict, verified, seconds)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def format_table(scored: list[Scored], mode: str) -> str:
    lines = [f"checkpoints (verify.checkpoints: {mode})",
             f"  {'':2}{'checkpoint':18} {'loss':>8} {'exact':>6} {'no sys':>8} {'challenges':>10} {'retention':>9} "
             f"{'bleed':>6}  checks"]
    for s in scored:
        card = s.judged.card
        challenge = card.challenge_held / card.challenge if card and card.challenge else None
        loss = f"{s.loss:.4g}" if s.loss is not None else "-"
        lines.append(f"  {'*' if s.chosen else ' '} {s.checkpoint:18} {loss:>8} {_pct(card.score if card else None):>6} "
                     f"{_pct(s.hold('default')):>8} {_pct(challenge):>10} "
                     f"{(f'{s.judged.retention.score:.2f}' if s.judged.retention else '-'):>9} "
                     f"{_pct(s.judged.bleed.rate if s.judged.bleed else None):>6}  "
                     f"{'pass' if not s.judged.failures else str(len(s.judged.failures)) + ' failed'}")
    return "\n".join(lines)


def verify_kept(tuned: list[tuple[ModelRef, str, int, float | None]], base: ModelRef, catalog: Catalog,
                probes: Probes, *, folder: Path, folder_for_one: Path, mode: str, settings: VerifySection,
                identity: Identity | None, say: Callable[[str], None],
                prewarmed: Prewarmed | None = None) -> tuple[Verified, Checkpoints | None]:
    """`run`'s and `verify`'s way in: several kept checkpoints scored together (answers in `folder`), else the
    one (the last) verified alone (answers in `folder_for_one`), saying so where more were asked for."""
    if len(tuned) > 1:
        scored = verify_checkpoints(tuned, base, probes, folder, mode=mode, settings=settings, identity=identity,
                                    say=say, prewarmed=prewarmed)
        return scored.verified, scored
    if mode != "last":
        say(f"swiftkit: checkpoints {mode}: the run keeps one complete checkpoint; it is the one verified")
    return verify_model(tuned[-1][0], base, catalog, probes, folder_for_one, settings=settings, identity=identity,
                        say=say, prewarmed=prewarmed), None
