"""Ask a model a list of questions through `swift infer` (greedy, batched) and read its answers.

The one way swiftkit gets answers out of a model: identity verification, retention (the base
and the tuned model on the general probes) and the export check (merged model against base +
adapter) all come through `ask`. Answers of a model without an adapter can be cached under the
model's fingerprint, so the base model answers the general probes once, not once per run.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from swiftkit import paths
from swiftkit.flags.catalog import Catalog
from swiftkit.logparse import Diagnosis, diagnose
from swiftkit.process import Worker, supervise
from swiftkit.render import CHILD_DIR, ModelRef, render_infer
from swiftkit.results.fingerprint import fingerprint
from swiftkit.run.phases import infer_clock


@dataclass(frozen=True)
class Asked:
    answers: dict[str, str]  # row_key (the question, unless a row has a key) -> answer
    log_path: Path | None
    wall_seconds: float
    cached: bool = False
    phases: dict[str, float] | None = None  # seconds per phase of swift infer (run/phases.py)


class AskFailed(Exception):
    """swift infer did not answer: its diagnosis (or exit code) and its log."""

    def __init__(self, returncode: int, diagnosis: Diagnosis | None, log_path: Path):
        self.returncode, self.diagnosis, self.log_path = returncode, diagnosis, log_path
        what = diagnosis.message if diagnosis else f"swift infer exited {returncode}"
        super().__init__(f"{what}\n  full log: {log_path}")

    def to_dict(self) -> dict:
        return {"returncode": self.returncode, "log": str(self.log_path),
                "diagnosis": asdict(self.diagnosis) if self.diagnosis else None}


NO_SYSTEM = None  # a row's "system" set to this: no system message, so the template's own default applies


def prompt_messages(row: dict, system: str | None) -> list[dict]:
    """What a row sends: its system prompt (the row's own "system" where it has that key, else `system`; none
    at all where that is None), then its turns (`messages`, a conversation ending with the user's question) or
    its `query`."""
    chosen = row["system"] if "system" in row else system
    turns = row.get("messages") or [{"role": "user", "content": row["query"]}]
    return ([{"role": "system", "content": chosen}] if chosen is not None else []) + [dict(m) for m in turns]


def prompt_key(messages: list[dict]) -> str:
    """The key of an asked prompt: the question itself for one user turn, else the whole prompt as JSON. An
    answer (a trailing assistant turn, as swift infer's result rows end) is not part of it."""
    turns = list(messages)
    while turns and turns[-1].get("role") == "assistant":
        turns.pop()
    if len(turns) == 1 and turns[0].get("role") == "user":
        return turns[0]["content"]
    return json.dumps([[m.get("role"), m.get("content")] for m in turns], ensure_ascii=False)


def row_key(row: dict) -> str:
    """How answers to a row are keyed in what `ask` returns: its `key`, else its question."""
    return row.get("key") or row["query"]


def write_infer_dataset(rows: list[dict], path: Path, system: str | None = None) -> Path:
    """swift infer input: each row's prompt (prompt_messages), and the expected answer as the label where
    there is one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            messages = prompt_messages(row, system)
            if row.get("expected") and row.get("label", True):  # label False: no room made for it
                messages.append({"role": "assistant", "content": row["expected"]})
            f.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_answers(result_path: Path) -> dict[str, str]:
    """prompt_key -> response from swift infer's result JSONL (rows carry `messages` and `response`)."""
    answers: dict[str, str] = {}
    if not result_path.is_file():
        return answers
    for line in result_path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        messages = row.get("messages") or []
        if any(m.get("role") == "user" for m in messages):
            answers[prompt_key(messages)] = row.get("response") or ""
    return answers


def keyed(rows: list[dict], system: str | None, by_prompt: dict[str, str]) -> dict[str, str]:
    """Answers by row_key, from answers by prompt_key; rows with no answer are left out."""
    out = {}
    for row in rows:
        key = prompt_key(prompt_messages(row, system))
        if key in by_prompt:
            out[row_key(row)] = by_prompt[key]
    return out


def ask(ref: ModelRef, catalog: Catalog, rows: list[dict], folder: Path, *, max_new_tokens: int, batch_size: int,
        name: str = "answers", cache: bool = False) -> Asked:
    """Answers to `rows` (each with `query`, maybe `expected`) from `ref`, greedy; files go in `folder`.

    With `cache`, answers of the same model (by content), questions and settings are reused."""
    key = _cache_key(ref, rows, max_new_tokens) if cache else None
    cached = _read_cache(key) if key else None
    if cached is not None:
        return Asked(cached, None, 0.0, cached=True)
    dataset = write_infer_dataset(rows, folder / f"{name}.questions.jsonl", ref.system)
    result = folder / f"{name}.jsonl"
    result.unlink(missing_ok=True)  # swift infer appends to an existing result file
    # each row carries its system prompt (or none, for the template's default), so no --system
    inv = render_infer(replace(ref, system=None), catalog, val_dataset=dataset, result_path=result,
                       max_new_tokens=max_new_tokens, batch_size=batch_size, swift=paths.swift_command())
    clock, started = infer_clock(), time.monotonic()
    finished = supervise(inv.argv, inv.env, folder / f"{name}.log",
                         lambda line: clock.line(time.monotonic() - started, line))
    if finished.returncode != 0:
        diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
        raise AskFailed(finished.returncode, diagnosis, finished.log_path)
    answers = keyed(rows, ref.system, read_answers(result))
    if key:
        _write_cache(key, answers)
    return Asked(answers, finished.log_path, finished.wall_seconds, phases=clock.durations(finished.wall_seconds))


def can_share_engine(tuned: ModelRef, base: ModelRef) -> bool:
    """The tuned model is the base plus an adapter: one engine can answer for both."""
    return tuned.adapter is not None and base.adapter is None and (
        tuned.model, tuned.model_type, tuned.template, tuned.dtype, tuned.system) == (
        base.model, base.model_type, base.template, base.dtype, base.system)


def cached_answers(ref: ModelRef, rows: list[dict], max_new_tokens: int) -> dict[str, str] | None:
    key = _cache_key(ref, rows, max_new_tokens)
    return _read_cache(key) if key else None


class Prewarmed:
    """An answer worker started before training (verify.prewarm): it imports ms-swift while the GPU trains,
    then waits for its questions; `close` ends it when it is not needed (training failed)."""

    def __init__(self, env: dict[str, str], log_path: Path, model: str | None = None):
        self.worker = Worker([sys.executable, str(CHILD_DIR / "answer_worker.py")], env, log_path)
        # The base model's answer cache is keyed by the model's content: hashing 15 GB of weights the first time
        # takes seconds, which a thread spends now, during training, instead of at verification.
        self.hashing = threading.Thread(target=_hash_quietly, args=(model,), daemon=True) if model else None
        if self.hashing is not None:
            self.hashing.start()

    def hashed(self) -> None:
        if self.hashing is not None:
            self.hashing.join()

    def close(self) -> None:
        self.worker.close(timeout=0.5)


def _hash_quietly(model: str) -> None:
    try:
        fingerprint(model)
    except OSError:
        pass  # unreadable now: verification hashes it again and says why there


def ask_both(tuned: ModelRef, base: ModelRef, tuned_rows: list[dict], base_rows: list[dict], folder: Path, *,
             max_new_tokens: int, batch_size: int, prewarmed: Prewarmed | None = None) -> tuple[Asked, Asked | None]:
    """The tuned model's and the base model's answers from one engine, the model loaded once
    (child/answer_worker.py), in a prewarmed worker where there is one; no base rows: the tuned model's
    only. The base answers are cached as ask() caches them."""
    tuned_asked, base_asked = ask_adapters([(tuned, "answers")], base, tuned_rows, base_rows, folder,
                                           max_new_tokens=max_new_tokens, batch_size=batch_size, prewarmed=prewarmed)
    return tuned_asked[0], base_asked


def ask_adapters(tuned: list[tuple[ModelRef, str]], base: ModelRef, tuned_rows: list[dict], base_rows: list[dict],
                 folder: Path, *, max_new_tokens: int, batch_size: int,
                 prewarmed: Prewarmed | None = None) -> tuple[list[Asked], Asked | None]:
    """Several adapters of one base (the checkpoints of a run, each with the name of its answer files) asked the
    same rows in one engine, the adapters swapped in it, and the base model (adapters off) asked `base_rows`."""
    jobs = []
    pairs = [(name, ref, tuned_rows) for ref, name in tuned] + ([("base-answers", base, base_rows)] if base_rows else [])
    for name, ref, rows in pairs:
        result = folder / f"{name}.jsonl"
        result.unlink(missing_ok=True)
        jobs.append({"tuned": ref.adapter is not None, "adapter": str(ref.adapter) if ref.adapter else None,
                     "result": str(result),
                     "questions": str(write_infer_dataset(rows, folder / f"{name}.questions.jsonl", ref.system))})
    timings_path = folder / "answers-shared.timings.json"
    spec = worker_spec(base, jobs, timings_path, adapter=tuned[0][0].adapter, max_new_tokens=max_new_tokens,
                       batch_size=batch_size)
    log_path, wall = answer_worker(base, spec, folder / "answers-shared.log", prewarmed=prewarmed)
    timings = json.loads(timings_path.read_text(encoding="utf-8"))
    shared = {k: timings.get(k, 0.0) for k in ("start", "model_load")}
    answers = [keyed(rows, ref.system, read_answers(Path(job["result"])))
               for job, (_, ref, rows) in zip(jobs, pairs)]
    generation = timings.get("generation_tuned") or []
    tuned_asked = [Asked(answers[i], log_path, wall, phases={
        **shared, "generation": generation[i] if i < len(generation) else 0.0}) for i in range(len(tuned))]
    if not base_rows:
        return tuned_asked, None
    key = _cache_key(base, base_rows, max_new_tokens)
    if key:
        _write_cache(key, answers[-1])
    return tuned_asked, Asked(answers[-1], log_path, 0.0, phases={"generation": timings.get("generation_base", 0.0)})


def worker_spec(base: ModelRef, jobs: list[dict], timings: Path, *, adapter: Path | None, max_new_tokens: int,
                batch_size: int) -> dict:
    """What child/answer_worker.py is told: the model, one adapter it loads with (or none), the jobs."""
    return {"model": base.model, "adapter": str(adapter) if adapter else None, "model_type": base.model_type,
            "template": base.template, "dtype": base.dtype, "max_new_tokens": max_new_tokens,
            "batch_size": batch_size, "jobs": jobs, "timings": str(timings)}


def answer_worker(base: ModelRef, spec: dict, log_path: Path, *, prewarmed: Prewarmed | None = None,
                  on_line=lambda _line: None) -> tuple[Path, float]:
    """Run child/answer_worker.py on `spec` (in the prewarmed worker where there is one): (its log, seconds);
    AskFailed with ms-swift's diagnosis when it does not finish."""
    if prewarmed is not None:
        code, tail, log_path, wall = _answer_prewarmed(prewarmed, spec)
        if code != 0:
            raise AskFailed(code, diagnose(tail, code), log_path)
        return log_path, wall
    finished = supervise([sys.executable, str(CHILD_DIR / "answer_worker.py"), json.dumps(spec)], base.env,
                         log_path, on_line)
    if finished.returncode != 0:
        diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
        raise AskFailed(finished.returncode, diagnosis, finished.log_path)
    return finished.log_path, finished.wall_seconds


def _answer_prewarmed(prewarmed: Prewarmed, spec: dict) -> tuple[int, list[str], Path, float]:
    """Hand the prewarmed worker its questions and wait for it: (exit code, log tail, log, seconds)."""
    start, worker = time.monotonic(), prewarmed.worker
    try:
        worker.send(spec)
        assert worker.proc.stdin is not None
        worker.proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # it died already: its exit code and log say why
    code = worker.proc.wait()
    tail = worker.tail()
    worker.close()
    return code, tail, worker.log_path, round(time.monotonic() - start, 2)


def _cache_key(ref: ModelRef, rows: list[dict], max_new_tokens: int) -> str | None:
    if ref.adapter is not None:
        return None  # a tuned model's answers are asked fresh
    blob = json.dumps({"model": fingerprint(ref.model), "type": ref.model_type, "template": ref.template,
                       "dtype": ref.dtype, "max_new_tokens": max_new_tokens,
                       "prompts": [prompt_messages(r, ref.system) for r in rows]}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _cache_file(key: str) -> Path:
    return paths.cache_dir() / "answers" / f"{key}.json"


def _read_cache(key: str) -> dict[str, str] | None:
    try:
        data = json.loads(_cache_file(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()) else None


def _write_cache(key: str, answers: dict[str, str]) -> None:
    path = _cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(answers, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimisation
