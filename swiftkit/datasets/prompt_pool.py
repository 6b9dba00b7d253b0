"""Prompt pools for replay: the bundled datasets/general_prompts.jsonl or a user's file of prompts, read with
every broken row located, checked for duplicates and for overlap with the retention probes (a replayed
probe would teach the base model's answer to the very question retention asks), and sampled.

Pure: rows in, problems out; no ms-swift import.
"""
from __future__ import annotations

import hashlib
import random
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from swiftkit.errors import Problem, UserError

from .formats import QUERY_SYNONYMS
from .read import read_rows

NEAR = 0.8  # SequenceMatcher ratio of normalised prompts at or above which two are near-duplicates
MIN_CONTAINED = 3  # containment counts when the shorter prompt has this many characters ("Hi" is in "this")
NEAR_LIMIT = 2000  # past this many prompts, duplicates are found exactly only (near ones cost n^2 comparisons)
MAX_SHOWN = 8
FIX = 'one row per prompt with a non-empty "query", e.g. {"query": "Explain recursion in two sentences."}'


@dataclass(frozen=True)
class Prompt:
    line: int  # where it is in its file
    query: str


def load_prompts(path: Path, key: str) -> list[Prompt]:
    """The prompts of a JSON/JSONL/CSV/parquet file (a `query` column or one of its synonyms); every broken
    row at once, located, as one UserError."""
    prompts, problems = [], []
    try:
        for line, row in read_rows(path, "dataset file"):
            column = next((c for c in ("query", *QUERY_SYNONYMS) if c in row), None)
            text = row.get(column) if column else None
            if not isinstance(text, str) or not text.strip():
                what = f"its {column!r} is empty or not text" if column else f"no query column (has {sorted(row)[:6]})"
                problems.append(Problem(f"not a prompt: {what}", file=str(path), line=line, key=key, fix=FIX))
            else:
                prompts.append(Prompt(line, text.strip()))
    except UserError as exc:  # unreadable JSON: its rows before it were read, so both are told
        problems += exc.problems
    if problems:
        raise UserError(problems[:MAX_SHOWN], headline=f"{path}: {len(problems)} broken prompt row(s)"
                        + (f" ({len(problems) - MAX_SHOWN} more not shown)" if len(problems) > MAX_SHOWN else ""))
    if not prompts:
        raise UserError.one("the prompt file has no rows", file=str(path), key=key, fix=FIX)
    return prompts


def norm(text: str) -> str:
    """Lower case without whitespace, punctuation or symbols (zh and en alike)."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).lower()
                   if not ch.isspace() and not unicodedata.category(ch).startswith(("P", "S")))


def likeness(a: str, b: str) -> float:
    """How alike two normalised prompts are, 0..1: 1 for equal, or for one inside the other (of at least
    MIN_CONTAINED characters); else SequenceMatcher's ratio, or 0.0 as soon as a cheap bound shows it is
    under NEAR."""
    if a == b:
        return 1.0
    la, lb = len(a), len(b)
    if not la or not lb:
        return 0.0
    if min(la, lb) >= MIN_CONTAINED and (a in b or b in a):
        return 1.0
    if 2 * min(la, lb) / (la + lb) < NEAR:
        return 0.0
    sm = SequenceMatcher(None, a, b, autojunk=False)
    if sm.real_quick_ratio() < NEAR or sm.quick_ratio() < NEAR:
        return 0.0
    return sm.ratio()


def duplicates(prompts: list[Prompt]) -> list[tuple[Prompt, Prompt, float]]:
    """Pairs (earlier, later, likeness) of prompts that are the same after normalising, or near it."""
    normed = [(p, norm(p.query)) for p in prompts]
    found, first = [], {}
    for p, n in normed:  # exact ones first, in one pass at any size
        if n in first:
            found.append((first[n], p, 1.0))
        else:
            first[n] = p
    if len(prompts) > NEAR_LIMIT:
        return found
    exact = {id(b) for _, b, _ in found}
    distinct = [(p, n) for p, n in normed if id(p) not in exact]
    for i, (a, na) in enumerate(distinct):
        for b, nb in distinct[i + 1:]:
            if (score := likeness(na, nb)) >= NEAR:
                found.append((a, b, score))
    return found


def overlaps(prompts: list[Prompt], probes: list[tuple[str, str]]) -> list[tuple[Prompt, str, float]]:
    """Prompts equal to, inside, containing or near (likeness >= NEAR) a probe: (prompt, probe label, likeness).
    `probes` are (label, question) pairs."""
    theirs = [(label, norm(q)) for label, q in probes]
    found = []
    for p in prompts:
        mine = norm(p.query)
        for label, their in theirs:
            if (score := likeness(mine, their)) >= NEAR:
                found.append((p, label, score))
                break
    return found


def pool_problems(path: Path, prompts: list[Prompt], probes: list[tuple[str, str]], key: str) -> list[Problem]:
    """Duplicates inside the pool and overlap with the probes, each located at its line."""
    out = []
    for a, b, score in duplicates(prompts)[:MAX_SHOWN]:
        how = "the same prompt" if score == 1.0 else f"a near-duplicate (likeness {score:.2f})"
        out.append(Problem(f"{how} as line {a.line}: {_short(b.query)!r}", file=str(path), line=b.line, key=key,
                           fix="remove one of them: a duplicate trains the same answer twice"))
    for p, label, score in overlaps(prompts, probes)[:MAX_SHOWN]:
        out.append(Problem(f"the prompt {_short(p.query)!r} is {'the' if score == 1.0 else 'near the'} retention "
                           f"probe {label}", file=str(path), line=p.line, key=key,
                           fix="remove it: retention asks that question of the tuned model, so training on the base "
                               "model's answer to it would make retention measure nothing"))
    return out


def pick(prompts: list[Prompt], n: int, seed: int) -> list[Prompt]:
    """n prompts, a seeded sample; for one seed, a smaller n is a prefix of a larger one's."""
    order = list(range(len(prompts)))
    random.Random(f"replay:{seed}").shuffle(order)
    return [prompts[i] for i in order[:n]]


def replay_file(index: int) -> str:
    """The run's data file that datasets[index], a replay entry, trains from (in output/data)."""
    return f"replay-{index}.jsonl"


def digest(prompts: list[Prompt]) -> str:
    return hashlib.sha256("\n".join(p.query for p in prompts).encode()).hexdigest()


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
