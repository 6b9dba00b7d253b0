"""Did the tune keep the model's general ability? Pure: probe rows and two answer sets -> Retention.

The general probes (datasets/general_probes.jsonl: arithmetic, facts, translation, code,
instruction following, formatting; zh and en) are answered greedily by the base model and by the
tuned one. Retention compares the two answer sets, not the answers with references: a 7B model's
own answer is the ability to keep, whatever its wording. Parts:
- `exact`: the share of probes answered exactly as the base model answered them;
- `chrf`: the mean chrF (sacrebleu, character n-grams, so it works for Chinese without a word
  segmenter) of each tuned answer against the base answer, as 0-1;
- `score` is `chrf`: it moves smoothly where `exact` jumps, and 1.0 means nothing changed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


CHANGED_SHOWN = 5  # the probes that changed most, kept in the record and shown to the user


@dataclass
class Retention:
    score: float
    exact: float
    chrf: float
    probes: int
    by_category: dict[str, dict] = field(default_factory=dict)
    changed: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def similarity(answer: str, reference: str) -> float:
    """chrF of `answer` against `reference`, 0-1; identical texts are 1.0 (chrF of two empty strings is 0)."""
    if " ".join(answer.split()) == " ".join(reference.split()):
        return 1.0
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(answer, [reference]).score / 100.0


def compare(rows: list[dict], base: dict[str, str], tuned: dict[str, str]) -> Retention:
    """Tuned answers against the base model's, per probe; a probe either model left unanswered counts as changed."""
    scored = []
    for row in rows:
        b, t = base.get(row["query"], ""), tuned.get(row["query"], "")
        sim = similarity(t, b)
        scored.append((row, b, t, sim, sim == 1.0))
    n = len(scored) or 1
    chrf = sum(s[3] for s in scored) / n
    exact = sum(s[4] for s in scored) / n
    by_category: dict[str, dict] = {}
    for row, _, _, sim, same in scored:
        cat = by_category.setdefault(row["category"], {"probes": 0, "exact": 0.0, "chrf": 0.0})
        cat["probes"] += 1
        cat["exact"] += same
        cat["chrf"] += sim
    for cat in by_category.values():
        cat["exact"], cat["chrf"] = round(cat["exact"] / cat["probes"], 4), round(cat["chrf"] / cat["probes"], 4)
    worst = sorted((s for s in scored if not s[4]), key=lambda s: s[3])[:CHANGED_SHOWN]
    changed = [{"id": r["id"], "query": r["query"], "base": b, "tuned": t, "similarity": round(sim, 4)}
               for r, b, t, sim, _ in worst]
    return Retention(round(chrf, 4), round(exact, 4), round(chrf, 4), len(scored), by_category, changed)


def format_retention(ret: Retention, min_retention: float | None = None) -> str:
    lines = ["retention (general probes: tuned answers against the base model's)",
             f"  {'answered exactly as the base model':40} {ret.exact:.0%} of {ret.probes}",
             f"  {'similarity to the base answers (chrF)':40} {ret.chrf:.2f}",
             f"  {'retention score':40} {ret.score:.2f}"
             + (f" (verify.min_retention {min_retention:.2f})" if min_retention is not None else "")]
    cats = ", ".join(f"{name} {c['chrf']:.2f}" for name, c in sorted(ret.by_category.items()))
    if cats:
        lines.append(f"  by category: {cats}")
    for c in ret.changed[:3]:
        lines.append(f"  changed most: {c['query'][:50]!r}\n    base:  {c['base'][:70]!r}\n    tuned: {c['tuned'][:70]!r}")
    return "\n".join(lines)
