"""Runs and checkpoints of ms-swift on disk: find them, sort them, tell complete from broken.

ms-swift writes OUTPUT_DIR/vN-YYYYMMDD-HHMMSS/ (N = highest existing + 1) holding checkpoint-K/
dirs and a `last-checkpoint` link. A failed start leaves an empty vN dir behind (seen for a
rejected flag and a missing dataset). A checkpoint can be half-written (disk full, SIGKILL):
the log's `last_model_checkpoint:` line then still names it (tests/fixtures/logs/
probe-disk-full.log), so nothing here trusts the log; every file is checked on disk.

No torch or safetensors import: a safetensors file is checked by reading its 8-byte header
length and its JSON header, then comparing the data size the header promises with the file.
"""
from __future__ import annotations

import json
import math
import re
import struct
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable

from swiftkit.logparse import OutputDir, parse_line

RUN_DIR = re.compile(r"^v(\d+)-(\d{8})-(\d{6})$")
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")

# A header larger than this is not a header: a corrupt length would otherwise make us read GBs.
_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


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
    for child in _listdir(parent):
        m = pattern.match(child.name)
        if m and child.is_dir() and not child.is_symlink():
            found.append((child, m))
    return found


def _listdir(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


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
        except ValueError:
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
    state = _read_json(latest.path / "trainer_state.json")[0] if latest else None
    value = state.get("best_model_checkpoint") if isinstance(state, dict) else None
    return Path(value).name if isinstance(value, str) and value else None


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
    state, problem = _read_json(path / "trainer_state.json")
    if problem:
        problems.append(problem)
    elif not isinstance(state, dict):
        problems.append("trainer_state.json: not a JSON object")
        state = None
    else:
        problems.extend(_step_problems(state, step))
    kind, weight_problems = _check_weights(path)
    problems.extend(weight_problems)
    history = state.get("log_history") if state else None
    loss = loss_at(history if isinstance(history, list) else (run_history or []), step)
    return Checkpoint(path, step, loss, not problems, problems, kind)


def _step_problems(state: dict, step: int) -> list[str]:
    """HF writes trainer_state.json with global_step equal to the dir's step; a mismatch means
    files from two different saves."""
    global_step = state.get("global_step")
    if isinstance(global_step, int) and step >= 0 and global_step != step:
        return [f"trainer_state.json: global_step {global_step} but the dir is checkpoint-{step}"]
    return []


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


def _check_weights(path: Path) -> tuple[str, list[str]]:
    adapter_files = [p for p in _listdir(path) if p.name.startswith("adapter_")]
    if adapter_files:
        return "adapter", _check_adapter(path)
    if (path / "config.json").exists() or model_weight_files(path):
        return "full", check_model_dir(path)
    return "unknown", ["no weights: neither adapter_model.* nor model*.safetensors / pytorch_model*.bin"]


def _check_adapter(path: Path) -> list[str]:
    problems = []
    config, problem = _read_json(path / "adapter_config.json")
    if problem:
        problems.append(problem)
    elif not isinstance(config, dict):
        problems.append("adapter_config.json: not a JSON object")
    safetensors, binary = path / "adapter_model.safetensors", path / "adapter_model.bin"
    if safetensors.exists():
        problems.extend(check_safetensors(safetensors))
    elif binary.exists():
        problems.extend(check_torch_zip(binary))
    else:
        problems.append("adapter_model.safetensors missing (nor adapter_model.bin)")
    return problems


def model_weight_files(path: Path) -> list[Path]:
    names = [p for p in _listdir(path) if p.is_file()]
    return sorted(p for p in names if re.match(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$",
                                                   p.name))


def check_model_dir(path: Path) -> list[str]:
    """A full model dir (a fully tuned checkpoint, or a merged export): config and every weight file whole."""
    problems = []
    config, problem = _read_json(path / "config.json")
    if problem:
        problems.append(problem)
    files = model_weight_files(path)
    problems.extend(_missing_shards(path))
    if not files:
        problems.append("no model*.safetensors or pytorch_model*.bin")
    for f in files:
        problems.extend(check_safetensors(f) if f.suffix == ".safetensors" else check_torch_zip(f))
    return problems


def _missing_shards(path: Path) -> list[str]:
    """Shards the index names but the dir lacks (a save cut off between two shards)."""
    problems = []
    for index in (path / "model.safetensors.index.json", path / "pytorch_model.bin.index.json"):
        if not index.exists():
            continue
        data, problem = _read_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if problem or not isinstance(weight_map, dict):
            problems.append(problem or f"{index.name}: no weight_map")
            continue
        for shard in sorted(set(map(str, weight_map.values()))):
            if not (path / shard).exists():
                problems.append(f"{shard}: missing (named in {index.name})")
    return problems


def check_safetensors(path: Path) -> list[str]:
    """Problems with a .safetensors file, without loading it.

    Layout: 8-byte little-endian header length N, N bytes of JSON header mapping each tensor to
    dtype, shape and data_offsets [begin, end) into the data that follows. A file cut mid-write
    is shorter than 8 + N + the largest end offset."""
    name = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                return [f"{name}: {size} bytes, too short for a safetensors header"]
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(size - 8, _MAX_HEADER):
                return [f"{name}: header length {header_len} does not fit in {size} bytes (truncated?)"]
            raw = f.read(header_len)
    except OSError as e:
        return [f"{name}: unreadable ({e.strerror or e})"]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return [f"{name}: header is not valid JSON"]
    if not isinstance(header, dict):
        return [f"{name}: header is not a JSON object"]
    return _check_tensors(name, header, size - 8 - header_len)


def _check_tensors(name: str, header: dict, data_size: int) -> list[str]:
    end = 0
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            return [f"{name}: bad data_offsets for {tensor}"]
        expected = _tensor_bytes(info)
        if expected is not None and expected != offsets[1] - offsets[0]:
            return [f"{name}: {tensor} spans {offsets[1] - offsets[0]} bytes, its dtype and shape need {expected}"]
        end = max(end, offsets[1])
    if data_size < end:
        return [f"{name}: truncated: {data_size} data bytes, the header needs {end}"]
    if data_size > end:
        return [f"{name}: {data_size - end} bytes after the last tensor"]
    return []


def _tensor_bytes(info: dict) -> int | None:
    width = _DTYPE_BYTES.get(info.get("dtype"))
    shape = info.get("shape")
    if width is None or not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
        return None
    return width * math.prod(shape)


def check_torch_zip(path: Path) -> list[str]:
    """A .bin from torch.save (a zip since torch 1.6): its central directory sits at the end,
    so a truncated file fails to open. Older pickle-only files cannot be checked: size only."""
    try:
        size = path.stat().st_size
    except OSError as e:
        return [f"{path.name}: unreadable ({e.strerror or e})"]
    if size == 0:
        return [f"{path.name}: empty"]
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            magic = f.read(4)
        return [f"{path.name}: not a complete torch zip archive (truncated?)"] if magic == b"PK\x03\x04" else []
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        return [f"{path.name}: broken zip archive ({e})"]
    return []


def _read_json(path: Path) -> tuple[object, str | None]:
    """The parsed file and None, or None and a problem naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, f"{path.name}: missing"
    except OSError as e:
        return None, f"{path.name}: unreadable ({e.strerror or e})"
    except (UnicodeDecodeError, ValueError):
        return None, f"{path.name}: not valid JSON (cut short?)"
