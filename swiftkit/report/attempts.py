"""The attempts of a run record (the OOM ladder's), and the colour each attempt is drawn in on every page."""
from __future__ import annotations

from swiftkit.report import charts


def attempts_of(record: dict) -> list[dict]:
    """The attempts of the OOM ladder; a record without any (an older one) counts as one attempt."""
    attempts = [a for a in record.get("attempts") or [] if isinstance(a, dict)]
    return attempts or [{"attempt": 1, "run_dir": record.get("run_dir")}]


def attempt_color(number: int) -> str:
    return charts.PALETTE[(number - 1) % len(charts.PALETTE)]
