"""Runs and checkpoints of ms-swift on disk: find them, sort them, tell complete from broken.

ms-swift writes OUTPUT_DIR/vN-YYYYMMDD-HHMMSS/ (N = highest existing + 1) holding checkpoint-K/
dirs and a `last-checkpoint` link. A failed start leaves an empty vN dir behind (seen for a
rejected flag and a missing dataset). A checkpoint can be half-written (disk full, SIGKILL):
the log's `last_model_checkpoint:` line then still names it (tests/fixtures/logs/
probe-disk-full.log), so nothing here trusts the log; every file is checked on disk (the weight
files by results/weightfiles.py).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable

from swiftkit.logparse import OutputDir, parse_line
from swiftkit.results.weightfiles import check_weights, listdir, read_json

RUN_DIR = re.compile(r"^v(\d+)-(\d{8})-(\d{6})$")
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class Checkpoint:
    """One checkpoint-K dir. `complete` is true only when `problems` is empty.

    `kind` is 'adapter' (LoRA & co: adapter_config.json + adapter_model.*), 'full' (config.json +
    model*.safetensors / pytorch_model*.bin) or 'unknown' (no weights found)."""

    path: Path
    step: int
    loss: float | None = None
    complete: bool = False
    problems: list[str] = field(default_factory=list)
    kind: str = "unknown"


@dataclass
class Run:
    """One vN-YYYYMMDD-HHMMSS dir; `checkpoints` sorted by step.

    `leftover` marks a start that failed before training logged anything: no checkpoint and no
    logging.jsonl (a rejected flag or a missing dataset leaves the dir empty)."""

    path: Path
    version: int
    started: datetime | None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    leftover: bool = False

    def last_complete(self) -> Checkpoint | None:
        return last_complete(self.checkpoints)

    def best(self) -> Checkpoint | None:
        return best(self)


# ------------------------------------------------------------------------------------ discovery


def find_runs(output_dir: Path) -> list[Run]:
    """The runs under `output_dir`, sorted by N (v2 before v10).

    A dir that itself holds checkpoint-K dirs (ms-swift with add_version false, or a run dir
    passed directly) counts as one run, with version -1."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    runs = [_run(p, int(m.group(1)), _started(m)) for p, m in _children(output_dir, RUN_DIR)]
    if _children(output_dir, CHECKPOINT_DIR) or RUN_DIR.match(output_dir.name):
        m = RUN_DIR.match(output_dir.name)
        runs.append(_run(output_dir, int(m.group(1)) if m else -1, _started(m) if m else None))
    return sorted(runs, key=lambda r: r.version)


def _children(parent: Path, pattern: re.Pattern) -> list[tuple[Path, re.Match]]:
    """Sub-dirs whose name matches; links are skipped (`last-checkpoint` points at a real one)."""
    found = []
    for child in listdir(parent):
        m = pattern.match(child.name)
        if m and child.is_dir() and not child.is_symlink():
            found.append((child, m))
    return found


def _started(m: re.Match) -> datetime | None:
    try:
        return datetime.strptime(m.group(2) + m.group(3), "%Y%m%d%H%M%S")
    except ValueError:
        return None


def _run(path: Path, version: int, started: datetime | None) -> Run:
    history = _run_history(path)
    checkpoints = sorted((inspect_checkpoint(p, history) for p, _ in _children(path, CHECKPOINT_DIR)),
                         key=lambda c: c.step)
    leftover = not checkpoints and not (path / "logging.jsonl").exists()
    return Run(path, version, started, checkpoints, leftover)


def _run_history(run_dir: Path) -> list[dict]:
    """log_history from the run's logging.jsonl: losses for checkpoints whose trainer_state.json
    is missing (the one thing a half-written checkpoint lacks most often)."""
    history: list[dict] = []
    try:
        text = (run_dir / "logging.jsonl").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return history
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            continue
        step = _step_of(entry) if isinstance(entry, dict) else None
        if step is not None and "loss" in entry:
            history.append({"step": step, "loss": entry["loss"]})
    return history


def _step_of(entry: dict) -> int | None:
    both = entry.get("global_step/max_steps")
    if isinstance(both, str) and "/" in both:
        head = both.split("/", 1)[0]
        return int(head) if head.isdigit() else None
    step = entry.get("step")
    return step if isinstance(step, int) else None


def newest_run(output_dir: Path) -> Run | None:
    """The run with the highest N that is not an empty leftover of a failed start."""
    runs = [r for r in find_runs(output_dir) if not r.leftover]
    return runs[-1] if runs else None


def run_dir_from_log(lines: Iterable[str], output_dir: Path | None = None) -> Path | None:
    """The run dir the log names (`[INFO:swift] output_dir: …`), else the newest real run.

    The log's path is taken as is when it exists; else its last component is looked up under
    `output_dir` (the log may come from another machine, or name a relative path)."""
    named = _output_dir_in(lines)
    if named is not None:
        if named.is_dir():
            return named
        if output_dir is not None and (Path(output_dir) / named.name).is_dir():
            return Path(output_dir) / named.name
    if output_dir is None:
        return None
    run = newest_run(Path(output_dir))
    return run.path if run else None


def _output_dir_in(lines: Iterable[str]) -> Path | None:
    for line in lines:
        for event in parse_line(line):
            if isinstance(event, OutputDir):
                return Path(event.path)
    return None


# ------------------------------------------------------------------------------------ choosing


def last_complete(checkpoints: Iterable[Checkpoint] | Run) -> Checkpoint | None:
    """The complete checkpoint with the highest step (never a truncated one)."""
    items = checkpoints.checkpoints if isinstance(checkpoints, Run) else checkpoints
    complete = [c for c in items if c.complete]
    return max(complete, key=lambda c: c.step) if complete else None


def best(run: Run) -> Checkpoint | None:
    """The trainer's best_model_checkpoint when it names a complete checkpoint of this run,
    else the complete checkpoint with the lowest training loss.

    The trainer only has a best with an eval set (split_dataset_ratio defaults to 0); the
    fallback is training loss, a weaker signal, and None when no loss was logged."""
    complete = [c for c in run.checkpoints if c.complete]
    named = _best_named(run)
    for c in complete:
        if c.path.name == named:
            return c
    with_loss = [c for c in complete if c.loss is not None]
    return min(with_loss, key=lambda c: (c.loss, -c.step)) if with_loss else None


def _best_named(run: Run) -> str | None:
    """The basename in the newest complete checkpoint's trainer_state: the path itself was
    written on the training machine and may not exist here."""
    latest = last_complete(run.checkpoints)
    state = read_json(latest.path / "trainer_state.json")[0] if latest else None
    value = state.get("best_model_checkpoint") if isinstance(state, dict) else None
    return Path(value).name if isinstance(value, str) and value else None


def kept(last: Checkpoint) -> list[Checkpoint]:
    """The complete checkpoints of `last`'s run dir, in step order (`last` among them)."""
    run_dir = Path(last.path).parent
    found = [c for run in find_runs(run_dir) if run.path == run_dir for c in run.checkpoints if c.complete]
    return found if any(c.step == last.step for c in found) else [*found, last]


def latest_checkpoint(output_dir: Path) -> Checkpoint | None:
    """The latest complete checkpoint under `output_dir`, in one call.

    Runs are tried newest first: when the newest run saved nothing complete (it crashed before
    its first save), the previous run's last complete checkpoint is the one to resume from."""
    for run in reversed(find_runs(Path(output_dir))):
        checkpoint = run.last_complete()
        if checkpoint is not None:
            return checkpoint
    return None


# ------------------------------------------------------------------------------------ completeness


def inspect_checkpoint(path: Path, run_history: list[dict] | None = None) -> Checkpoint:
    """Check one checkpoint dir: trainer_state.json, then adapter or full-model files."""
    path = Path(path)
    m = CHECKPOINT_DIR.match(path.name)
    step = int(m.group(1)) if m else -1
    problems: list[str] = []
    state, problem = read_json(path / "trainer_state.json")
    if problem:
        problems.append(problem)
    elif not isinstance(state, dict):
        problems.append("trainer_state.json: not a JSON object")
        state = None
    else:
        problems.extend(_step_problems(state, step))
    kind, weight_problems = check_weights(path)
    problems.extend(weight_problems)
    history = state.get("log_history") if state else None
    loss = loss_at(history if isinstance(history, list) else (run_history or []), step)
    return Checkpoint(path, step, loss, not problems, problems, kind)


def _step_problems(state: dict, step: int) -> list[str]:
    """HF writes trainer_state.json with global_step equal to the dir's step; a mismatch means
    files from two different saves."""
    shape = _state_shape_problems(state)
    if shape:
        return shape
    global_step = state.get("global_step")
    if isinstance(global_step, int) and step >= 0 and global_step != step:
        return [f"trainer_state.json: global_step {global_step} but the dir is checkpoint-{step}"]
    return []


# The fields of trainer_state.json swiftkit reads, and the JSON types the trainer writes them as.
_STATE_FIELDS = {"global_step": (int,), "max_steps": (int,), "log_history": (list,),
                 "best_model_checkpoint": (str, type(None)), "best_metric": (int, float, type(None))}


def _state_shape_problems(state: dict) -> list[str]:
    """A field of the wrong type means a file the trainer did not write as it is: named, not guessed at."""
    return [f"trainer_state.json: {name} is {type(state[name]).__name__}, not {' or '.join(t.__name__ for t in types)}"
            for name, types in _STATE_FIELDS.items()
            if name in state and (not isinstance(state[name], types) or isinstance(state[name], bool))]


def loss_at(log_history: list, step: int) -> float | None:
    """The last logged training loss at or before `step`."""
    loss: float | None = None
    best_step = -1
    for entry in log_history:
        if not isinstance(entry, dict):
            continue
        at = entry.get("step")
        value = entry.get("loss")
        if isinstance(at, int) and best_step <= at <= step and _is_number(value):
            loss, best_step = float(value), at
    return loss


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
