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

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swiftkit.errors import Problem, UserError

CHANGED_SHOWN = 5  # the probes that changed most, kept in the record and shown to the user
MAX_PROBLEMS = 5


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


def load_probes(path: Path) -> list[dict]:
    """General probe rows (`query`, optional `id`, `category`, `lang`); every broken row reported at once."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError.one(f"general probe file not found: {path}",
                            fix="check verify.general_probes (relative to the recipe), or remove it for the "
                                "bundled set") from None
    except UnicodeDecodeError as e:
        raise UserError.one(f"general probe file is not UTF-8 ({e.reason})", file=str(path),
                            fix="save it as UTF-8") from None
    rows, problems, seen = [], [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row, problem = _row(path, number, line, seen)
        if problem:
            problems.append(problem)
        else:
            rows.append(row)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise UserError(shown, headline=f"{path}: {len(problems)} broken probe row(s)"
                        + (f" ({more} more not shown)" if more else "") + "; nothing was run")
    if not rows:
        raise UserError.one("general probe file has no rows", file=str(path),
                            fix='one JSON object per line: {"id": "gen-001", "query": "What is 12 x 7?"}')
    return rows


def _row(path: Path, number: int, line: str, seen: dict[str, int]) -> tuple[dict, Problem | None]:
    fix = 'one JSON object per line with a non-empty "query", e.g. {"id": "gen-001", "query": "What is 12 x 7?"}'
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return {}, Problem(f"not valid JSON: {e.msg}", file=str(path), line=number, column=e.colno, fix=fix)
    if not isinstance(row, dict):
        return {}, Problem(f"expected a JSON object, got {type(row).__name__}", file=str(path), line=number, fix=fix)
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        return {}, Problem('"query" is missing or empty', file=str(path), line=number, key="query", fix=fix)
    probe_id = str(row.get("id") or f"line-{number}")
    if probe_id in seen:
        return {}, Problem(f'id "{probe_id}" repeats line {seen[probe_id]}', file=str(path), line=number, key="id",
                           fix="give every probe its own id")
    seen[probe_id] = number
    return {"id": probe_id, "query": query, "category": str(row.get("category") or "other"),
            "lang": str(row.get("lang") or "")}, None


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
