"""Generate a replay entry's rows: the base model answers a seeded sample of the prompt pool greedily, in one
engine (child/answer_worker.py, with no adapter), before training.

The answers are cached in parts of PART_ROWS prompts, each part a file named by its prompts' hash inside a
folder named by everything that decides an answer (the base model's content fingerprint, model type, template,
dtype, system prompt, max_new_tokens, batch size). The worker writes a part whole or not at all (a temporary
file renamed), so a generation cut off midway (Ctrl-C, killed) leaves only complete parts, and the next run
asks only for the parts that are missing. The samples of one seed are nested, so n 100 and n 300 reuse the
parts n 500 cached.

An answer is dropped, not trained on, when it is empty, when it stopped at max_new_tokens (cut off: training on
it would teach the model to stop mid-sentence), or when it already names the new identity or its author (the
train.system prompt it was asked under can make the base model introduce itself as the new name, which would
teach the identity on general prompts: bleed).
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from swiftkit import paths
from swiftkit.checks.collect import Checked
from swiftkit.checks.data import replay_sample
from swiftkit.datasets import prompt_pool, write_atomic
from swiftkit.datasets.prompt_pool import Prompt
from swiftkit.render import ModelRef, model_ref
from swiftkit.results.fingerprint import fingerprint
from swiftkit.verify.ask import answer_worker, worker_spec, write_infer_dataset

PART_ROWS = 50
VERSION = 1  # of the cached answers' format and of what decides them
ANSWERED = re.compile(r"\[swiftkit\] answered (\d+) questions")


@dataclass
class ReplayRows:
    """What one replay entry put into training, for the run record and the report."""

    index: int  # datasets[index]
    prompts: str  # general, or the prompt file
    pool: int  # prompts in the pool
    asked: int  # prompts sampled (replay.n)
    kept: int  # rows written for training
    dropped: dict[str, int]  # why answers were not kept: empty, cut_off, identity
    generated: int  # prompts answered by this run (the rest came from the cache)
    seconds: float  # what generating them cost (0 when everything was cached)
    answer_tokens: int  # tokens of the kept answers
    path: str  # the run's data file
    cache: str  # the cache folder
    max_new_tokens: int
    seed: int
    phases: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def settings_key(base: ModelRef, max_new_tokens: int, batch_size: int) -> str:
    blob = json.dumps({"model": fingerprint(base.model), "type": base.model_type, "template": base.template,
                       "dtype": base.dtype, "system": base.system, "max_new_tokens": max_new_tokens,
                       "batch_size": batch_size, "version": VERSION}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def part_path(folder: Path, part: list[Prompt]) -> Path:
    return folder / f"part-{prompt_pool.digest(part)[:24]}.jsonl"


def read_part(path: Path, part: list[Prompt]) -> list[dict] | None:
    """A cached part's answers, one per prompt, in order; None when it is missing or not this part's."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    asked = [next((m["content"] for m in r.get("messages", []) if m.get("role") == "user"), None) for r in rows]
    return rows if asked == [p.query for p in part] else None


def generate(checked: Checked, index: int, folder: Path, say: Callable[[str], None]) -> ReplayRows:
    """datasets[index] (a replay entry) answered, filtered and written to the run's data dir. AskFailed (from
    verify.ask) when the base model cannot answer: the parts finished before stay cached."""
    r = checked.loaded.recipe
    spec = r.datasets[index].replay
    assert spec is not None
    chosen, pool, seed = replay_sample(checked.loaded, index)
    base, batch, cache = _engine(checked, index)
    cache.mkdir(parents=True, exist_ok=True)
    parts = [chosen[i:i + PART_ROWS] for i in range(0, len(chosen), PART_ROWS)]
    missing = [p for p in parts if read_part(part_path(cache, p), p) is None]
    seconds, phases = 0.0, {}
    if missing:
        say(f"swiftkit: replay: the base model answers {sum(map(len, missing))} of {len(chosen)} prompts "
            f"({len(chosen) - sum(map(len, missing))} cached)")
        seconds, phases = _ask(base, missing, cache, folder / f"replay-{index}", spec.max_new_tokens, batch, say)
    answers = [row for p in parts for row in (read_part(part_path(cache, p), p) or [])]
    kept, dropped = keep(answers, _identity_words(r), spec.max_new_tokens)
    out = checked.plan.data_dir / prompt_pool.replay_file(index)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, "".join(json.dumps({"messages": row["messages"] + [
        {"role": "assistant", "content": row["response"]}]}, ensure_ascii=False) + "\n" for row in kept).encode())
    return ReplayRows(index, spec.prompts, pool, len(chosen), len(kept), dropped, sum(map(len, missing)),
                      round(seconds, 2), sum(row.get("completion_tokens") or 0 for row in kept), str(out),
                      str(cache), spec.max_new_tokens, seed, phases)


def cache_for(checked: Checked, index: int) -> Path:
    """The cache folder of datasets[index]'s answers (the parts a failed generation finished are there)."""
    return _engine(checked, index)[2]


def _engine(checked: Checked, index: int) -> tuple[ModelRef, int, Path]:
    """The base model as replay asks it, the batch size, and the cache folder of what that decides."""
    r = checked.loaded.recipe
    base, batch = model_ref(checked.plan, None), r.verify.batch_size
    key = settings_key(base, r.datasets[index].replay.max_new_tokens, batch)
    return base, batch, paths.cache_dir() / "replay" / key


def keep(answers: list[dict], identity: list[str], max_new_tokens: int) -> tuple[list[dict], dict[str, int]]:
    """The answers worth training on, and how many were dropped for each reason."""
    dropped = {"empty": 0, "cut_off": 0, "identity": 0}
    kept = []
    pattern = re.compile("|".join(re.escape(w) for w in identity), re.IGNORECASE) if identity else None
    for row in answers:
        text = (row.get("response") or "").strip()
        if not text:
            dropped["empty"] += 1
        elif row.get("finish_reason") == "length" or (row.get("completion_tokens") or 0) >= max_new_tokens:
            dropped["cut_off"] += 1
        elif pattern is not None and pattern.search(text):
            dropped["identity"] += 1
        else:
            kept.append(row)
    return kept, dropped


def _identity_words(recipe) -> list[str]:
    ident = recipe.identity
    if ident is None:
        return []
    words = {ident.name.zh, ident.name.en, ident.author.zh, ident.author.en}
    return sorted(w for w in words if w.strip())


def _ask(base: ModelRef, parts: list[list[Prompt]], cache: Path, folder: Path, max_new_tokens: int, batch: int,
         say: Callable[[str], None]) -> tuple[float, dict]:
    """The missing parts answered in one engine, each part written into the cache as soon as it is done."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [{"tuned": False, "adapter": None, "result": str(part_path(cache, part)),
             "questions": str(write_infer_dataset([{"query": p.query} for p in part],
                                                  folder / f"questions-{k}.jsonl", base.system))}
            for k, part in enumerate(parts)]
    total, done = sum(map(len, parts)), [0]

    def progress(line: str) -> None:
        if (m := ANSWERED.search(line)):
            done[0] += int(m.group(1))
            say(f"  replay: {done[0]}/{total} answered")

    timings = folder / "timings.json"
    spec = worker_spec(base, jobs, timings, adapter=None, max_new_tokens=max_new_tokens, batch_size=batch)
    started = time.monotonic()
    answer_worker(base, spec, folder / "answers.log", on_line=progress)
    wall = time.monotonic() - started
    try:
        told = json.loads(timings.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        told = {}
    start, load = told.get("start", 0.0), told.get("model_load", 0.0)
    return wall, {"start": start, "model_load": load, "generation": round(max(0.0, wall - start - load), 2)}


def summary(made: dict) -> str:
    """One line for the terminal and the report: what replay put into training and what it cost."""
    d = made["dropped"]
    why = [f"{d['cut_off']} cut off at {made['max_new_tokens']} tokens" if d.get("cut_off") else "",
           f"{d['empty']} empty" if d.get("empty") else "", f"{d['identity']} naming the identity" if d.get("identity")
           else ""]
    why = ", ".join(w for w in why if w)
    share = f", {made['share']:.0%} of the training rows" if made.get("share") is not None else ""
    cost = (f"generated in {made['seconds']:.0f} s ({made['generated']} answered, the rest cached)"
            if made["generated"] else "all from the cache")
    return (f"replay: {made['kept']} rows of the base model's own answers to {made['asked']} prompts of "
            f"{made['prompts']}{share}" + (f" (dropped: {why})" if why else "") + f"; {cost}")
