"""Pure: where a `swift sft` or `swift infer` child spends its time, from when its lines arrive.

The supervisor stamps each line with the seconds since the child started; the first line that
matches a marker closes the phase before it. Markers are lines ms-swift 4.6 prints at the boundaries
(tests/fixtures/logs/gpu-h100-microbatch16.log, cpu-tiny-sft.log, cpu-tiny-infer.log).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# (phase that ends, marker of its end), in the order they happen
SFT_MARKERS: tuple[tuple[str, re.Pattern], ...] = (
    ("start", re.compile(r"\[INFO:swift\] rank: ")),  # interpreter, torch, transformers and swift imported
    ("arguments", re.compile(r"\[INFO:swift\] model_kwargs: ")),  # arguments parsed, seed set
    ("model_load", re.compile(r"\[INFO:swift\] model_info: ")),  # weights on the device
    ("data", re.compile(r"\[INFO:swift\] (?:Dataset Token Length|train_dataset: )")),  # read, templated
    ("setup", re.compile(r"\[INFO:swift\] The logging file will be saved in")),  # tuner, trainer
    ("training", re.compile(r"'train_runtime'")),  # the trainer's summary
)
INFER_MARKERS: tuple[tuple[str, re.Pattern], ...] = (
    ("start", re.compile(r"\[INFO:swift\] rank: ")),
    ("arguments", re.compile(r"\[INFO:swift\] model_kwargs: ")),
    ("model_load", re.compile(r"\[INFO:swift\] (?:model: |default_system: )")),  # model (and adapter) loaded
    ("setup", re.compile(r"\[INFO:swift\] Start time of running main")),
)


@dataclass
class PhaseClock:
    """Feed it (seconds, line); `durations(end)` gives seconds per phase, the last phase ending at `end`
    (the child's exit): `save_exit` after training for sft, `generation` after setup for infer, and
    `until_exit` after the last marker seen for a child that stopped on the way."""

    markers: tuple[tuple[str, re.Pattern], ...] = SFT_MARKERS
    last: str = "save_exit"
    seen: dict[str, float] = field(default_factory=dict)

    def line(self, seconds: float, text: str) -> None:
        for name, pattern in self.markers:
            if name not in self.seen and pattern.search(text):
                self.seen[name] = seconds

    def durations(self, end: float) -> dict[str, float]:
        """Seconds per phase, in order; a phase whose end was not seen merges into the next one seen."""
        out: dict[str, float] = {}
        before = 0.0
        for name, _ in self.markers:
            if name in self.seen and self.seen[name] >= before:
                out[name] = round(self.seen[name] - before, 2)
                before = self.seen[name]
        finished = self.markers[-1][0] in self.seen  # else it died (or was stopped) on the way
        out[self.last if finished else "until_exit"] = round(max(end - before, 0.0), 2)
        return out


def infer_clock() -> PhaseClock:
    return PhaseClock(INFER_MARKERS, "generation")
