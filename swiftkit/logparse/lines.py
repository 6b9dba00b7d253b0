"""Lines in, events out: one line of `swift sft` stdout/stderr, or one line of logging.jsonl.

A stdout line is cleaned (newline, torchrun `[rankN]:` prefix), split into tqdm's screen lines,
and read for logger messages (`[INFO:swift] output_dir: …`, WARNING/ERROR lines) and for the
metrics dict the trainer prints; metrics.py turns such a dict into an event.
"""
from __future__ import annotations

import ast
import json
import re
from typing import Any, Iterable

from .events import (BestCheckpoint, CheckpointSaved, Event, LastCheckpoint, LogLine, OutputDir,
                     RunSummary)
from .metrics import _int, _num, events_from_dict


# torchrun prefixes each line of a rank's output with "[rank0]:" (and "[rank0]: " under some
# versions); ms-swift's own lines do not carry it.
_RANK_PREFIX = re.compile(r"^\s*\[rank\d+\]:\s?")
# `[INFO:swift] msg` can follow tqdm output on the same line, as in cpu-tiny-sft.log:
#   "Train: 100%|██████████| 80/80 [00:04<00:00, 25.10it/s][INFO:swift] Saving model checkpoint to …"
_SWIFT_LOG = re.compile(r"\[(DEBUG|INFO|WARNING|ERROR|CRITICAL):([\w.]+)\]\s?(.*)$")
# modelscope_hub's logging format, e.g. in cpu-tiny-sft.log:
#   "2026-11-22 12:45:47,179 | WARNING | modelscope_hub.legacy_api | Repo unknown: … (NetworkError), retry in 1s (1/4)"
_HUB_LOG = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ \| (WARNING|ERROR|CRITICAL) \| ([\w.]+) \| (.*)$")
_INFO_PATHS: dict[str, type] = {
    "output_dir: ": OutputDir,
    "Saving model checkpoint to ": CheckpointSaved,
    "last_model_checkpoint: ": LastCheckpoint,
    "best_model_checkpoint: ": BestCheckpoint,
}


def clean_line(line: str) -> str:
    """The line without its newline and torchrun `[rankN]:` prefix."""
    return _RANK_PREFIX.sub("", line.rstrip("\r\n"), count=1)


def segments(line: str) -> list[str]:
    """tqdm redraws with a bare carriage return, so one raw line holds several screen lines."""
    return [seg for seg in clean_line(line).split("\r") if seg.strip()]


def parse_line(line: str) -> list[Event]:
    """Events in one line of `swift sft` stdout/stderr (an empty list for most lines)."""
    events: list[Event] = []
    for seg in segments(line):
        seg = _RANK_PREFIX.sub("", seg, count=1)
        events.extend(_log_events(seg))
        metrics = _find_dict(seg)
        if metrics is not None:
            events.extend(events_from_dict(metrics))
    return events


def parse_lines(lines: Iterable[str]) -> list[Event]:
    return [event for line in lines for event in parse_line(line)]


def _log_events(seg: str) -> list[Event]:
    m = _SWIFT_LOG.search(seg)
    if m:
        level, logger, message = m.groups()
        return _info_event(message) if level == "INFO" else [LogLine(level, logger, message.strip())]
    m = _HUB_LOG.match(seg)
    if m:
        return [LogLine(m.group(1), m.group(2), m.group(3).strip())]
    return []


def _info_event(message: str) -> list[Event]:
    for prefix, cls in _INFO_PATHS.items():
        if message.startswith(prefix):
            value = message[len(prefix):].strip()
            return [cls(None if value == "None" else value)]
    return []


def _find_dict(seg: str) -> dict | None:
    """The metrics dict printed at the end of a segment, after any tqdm output.

    transformers 5 prints every value as a string ({'loss': '6.97', …}); 3.x printed numbers.
    Lines like `model_kwargs: {'dtype': torch.float32}` fail literal_eval and are skipped."""
    end = seg.rfind("}")
    for m in _DICT_START.finditer(seg, 0, max(end, 0)):
        value = _literal(seg[m.start():end + 1])
        if value is not None:
            return value if isinstance(value, dict) else None
    return None


_DICT_START = re.compile(r"\{['\"]")


def _literal(text: str) -> Any:
    """A Python repr (stdout) or, failing that, JSON (some ms-swift variants log json.dumps)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def parse_logging_jsonl_line(line: str) -> list[Event]:
    """Events in one line of logging.jsonl (real numbers; the last line is a run summary).

    A line cut short by a killed process is skipped rather than raised."""
    try:
        data = json.loads(line)
    except (ValueError, TypeError, RecursionError):
        return []
    if not isinstance(data, dict):
        return []
    if "last_model_checkpoint" in data or "log_history" in data:
        return _summary_events(data)
    return events_from_dict(data)


def _summary_events(data: dict) -> list[Event]:
    history = data.get("log_history")
    return [
        LastCheckpoint(data.get("last_model_checkpoint")),
        BestCheckpoint(data.get("best_model_checkpoint")),
        RunSummary(_int(data.get("global_step")), _num(data.get("best_metric")),
                   history if isinstance(history, list) else [], data),
    ]
