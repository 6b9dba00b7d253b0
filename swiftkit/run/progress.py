"""Shows what a run is doing; parses nothing.

A rich progress bar on a terminal (step/max, epoch, loss, learning rate, speed, ETA, GPU
memory); plain periodic lines otherwise (CI logs); nothing with --quiet; one JSON object
per event with --events, for other programs.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, is_dataclass
from typing import Any, TextIO

from swiftkit.errors import printable

PLAIN_EVERY_SECONDS = 10.0


def _fmt_progress(ev: Any) -> str:
    parts = [f"step {ev.step}/{ev.max_steps}"]
    for label, value, fmt in (("epoch", ev.epoch, "{:.2f}"), ("loss", ev.loss, "{:.4g}"),
                              ("lr", ev.learning_rate, "{:.3g}"), ("s/it", ev.speed_s_per_it, "{:.3g}"),
                              ("mem", ev.memory_gib, "{:.1f} GiB")):
        if label == "mem" and getattr(ev, "rank_memory_gib", None):
            parts.append("mem/rank " + " ".join(f"{m:.1f}" for m in ev.rank_memory_gib) + " GiB")
        elif value is not None:
            parts.append(f"{label} {fmt.format(value)}")
    if getattr(ev, "remaining", None) is not None:
        parts.append(f"eta {duration(ev.remaining)}")
    return "  ".join(parts)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Reporter:
    """The interface: `event(ev)` for parsed events, `say(text)` for swiftkit's own messages."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr

    def event(self, ev: Any) -> None: ...

    def say(self, text: str) -> None:
        print(printable(text), file=self.stream, flush=True)

    def end_phase(self) -> None:
        """The child process being shown has ended (a training attempt)."""

    def close(self) -> None:
        self.end_phase()


class Quiet(Reporter):
    def say(self, text: str) -> None: ...


class Plain(Reporter):
    """Periodic lines for logs: at most one progress line every few seconds, plus the last one."""

    def __init__(self, stream: TextIO | None = None, every: float = PLAIN_EVERY_SECONDS):
        super().__init__(stream)
        self.every, self._last, self._pending = every, None, None

    def event(self, ev: Any) -> None:
        if type(ev).__name__ != "Progress":
            return
        self._pending = ev
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every or ev.step == ev.max_steps:
            self._last, self._pending = now, None
            self.say(_fmt_progress(ev))

    def end_phase(self) -> None:
        if self._pending is not None:
            self.say(_fmt_progress(self._pending))
            self._pending = None


class Events(Reporter):
    """One JSON object per line on stdout: {"event": "Progress", ...fields}."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream or sys.stdout)

    def event(self, ev: Any) -> None:
        data = asdict(ev) if is_dataclass(ev) else dict(vars(ev))
        data.pop("raw", None)
        print(json.dumps({"event": type(ev).__name__, **data}, default=str, ensure_ascii=False),
              file=self.stream, flush=True)

    def say(self, text: str) -> None:
        print(json.dumps({"event": "message", "text": text}, ensure_ascii=False), file=self.stream, flush=True)


class Bar(Reporter):
    """A rich progress bar; swiftkit's messages print above it."""

    def __init__(self, stream: TextIO | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        super().__init__(stream)
        self.console = Console(file=self.stream)
        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                                 transient=False)
        self.task = None

    def event(self, ev: Any) -> None:
        if type(ev).__name__ != "Progress" or not ev.max_steps:
            return
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("train", total=ev.max_steps, info="")
        self.progress.update(self.task, completed=ev.step, total=ev.max_steps,
                             info=_fmt_progress(ev).split("  ", 1)[-1])

    def say(self, text: str) -> None:
        self.console.print(printable(text), markup=False, highlight=False)

    def end_phase(self) -> None:
        if self.task is not None:  # stop redrawing; a next attempt gets a bar of its own
            self.progress.stop()
            self.progress.remove_task(self.task)
            self.task = None


def make_reporter(*, quiet: bool = False, events: bool = False, stream: TextIO | None = None) -> Reporter:
    if events:
        return Events()
    if quiet:
        return Quiet()
    stream = stream or sys.stderr
    return Bar(stream) if stream.isatty() else Plain(stream)
