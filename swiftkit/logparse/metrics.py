"""A metrics dict in, an event out: Progress, Eval or the end-of-training TrainSummary.

Stdout reprs and logging.jsonl share the keys; this module reads them, whichever ms-swift /
transformers version printed them (numbers or strings, old and new key names), and parses
ms-swift's durations ('2m 54s').
"""
from __future__ import annotations

import re
from typing import Any

from .events import Eval, Event, Progress, TrainSummary


def events_from_dict(d: dict) -> list[Event]:
    """A metrics dict as an event: TrainSummary, Eval or Progress; other dicts give nothing."""
    if not all(isinstance(k, str) for k in d):
        return []
    if "train_runtime" in d:
        return [_summary(d)]
    if any(k.startswith("eval_") for k in d):
        return [_eval(d)]
    if "loss" in d or "global_step/max_steps" in d or "global_step" in d:
        return [_progress(d)]
    return []


def _progress(d: dict) -> Progress:
    step, max_steps = _steps(d)
    return Progress(
        step=step,
        max_steps=max_steps,
        epoch=_num(d.get("epoch")),
        loss=_num(d.get("loss")),
        grad_norm=_num(d.get("grad_norm")),
        learning_rate=_num(d.get("learning_rate")),
        token_acc=_num(d.get("token_acc", d.get("acc"))),  # 2.x called it 'acc'
        memory_gib=_num(d.get("memory(GiB)")),
        speed_s_per_it=_speed(d),
        elapsed=parse_duration(d.get("elapsed_time")),
        remaining=parse_duration(d.get("remaining_time")),
        raw=d,
    )


def _eval(d: dict) -> Eval:
    step, max_steps = _steps(d)
    metrics = {k[len("eval_"):]: _num(v) for k, v in d.items() if k.startswith("eval_")}
    return Eval(step, max_steps, metrics.get("loss"), metrics, d)


def _summary(d: dict) -> TrainSummary:
    step, max_steps = _steps(d)
    return TrainSummary(
        train_runtime=_num(d.get("train_runtime")),
        train_loss=_num(d.get("train_loss")),
        train_samples_per_second=_num(d.get("train_samples_per_second")),
        train_steps_per_second=_num(d.get("train_steps_per_second")),
        epoch=_num(d.get("epoch")),
        step=step,
        max_steps=max_steps,
        memory_gib=_num(d.get("memory(GiB)")),
        raw=d,
    )


def _steps(d: dict) -> tuple[int | None, int | None]:
    """'global_step/max_steps': '5/9' (3.x and 4.x); 2.x printed 'global_step': 5 alone."""
    both = d.get("global_step/max_steps")
    if isinstance(both, str) and "/" in both:
        step, _, total = both.partition("/")
        return _int(step), _int(total)
    return _int(d.get("global_step", d.get("step"))), None


def _speed(d: dict) -> float | None:
    """Seconds per step. 4.x prints s/it; 3.x printed iter/s (an average since the start)."""
    for key in ("train_speed(s/it)", "train_speed(sec/iter)"):
        if key in d:
            return _num(d[key])
    per_s = _num(d.get("train_speed(iter/s)"))
    return 1.0 / per_s if per_s else None


def _num(value: Any) -> float | None:
    """A number from a float, an int or a string such as '6.97', '5e-05' or '12.50%'."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().rstrip("%"))
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None and number == int(number) else None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: Any) -> float | None:
    """Seconds in ms-swift's format_time output: '57s', '2m 54s', '9h 30m 16s', '1d 2h 3m 4s'."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str) or not text.strip():
        return None
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        return None
    return float(sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
