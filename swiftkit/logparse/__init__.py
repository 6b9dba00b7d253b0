"""Pure parsing of ms-swift output: a line in, events out; a failed run's tail in, a Diagnosis out.

No I/O and no torch/ms-swift import: callers pass the text. Everything here was written against
real output: tests/fixtures/logs holds the logs each rule quotes.

What lives where (import from the package: every name below is re-exported here):

- events.py     EXIT_CODES (with the exit-code table, part of swiftkit's interface) and the
                event dataclasses: Progress, Eval, TrainSummary, OutputDir, CheckpointSaved,
                LastCheckpoint, BestCheckpoint, RunSummary, LogLine, and their union Event.
- lines.py      one line of stdout/stderr or of logging.jsonl -> events: clean_line, segments,
                parse_line, parse_lines, parse_logging_jsonl_line.
- metrics.py    one metrics dict -> Progress, Eval or the end-of-training TrainSummary:
                events_from_dict, parse_duration.
- rules.py      the diagnosis table as data: Rule and RULES (ordered, first match wins).
- diagnosis.py  a failed run's tail -> Diagnosis: diagnose, without_source_lines,
                rejected_flags, HOST_OOM_RETURNCODES.
"""
from __future__ import annotations

from .diagnosis import HOST_OOM_RETURNCODES, Diagnosis, diagnose, rejected_flags, without_source_lines
from .events import (EXIT_CODES, BestCheckpoint, CheckpointSaved, Eval, Event, LastCheckpoint, LogLine,
                     OutputDir, Progress, RunSummary, TrainSummary)
from .lines import clean_line, parse_line, parse_lines, parse_logging_jsonl_line, segments
from .metrics import events_from_dict, parse_duration
from .rules import RULES, Rule

__all__ = [
    "EXIT_CODES", "Progress", "Eval", "TrainSummary", "OutputDir", "CheckpointSaved", "LastCheckpoint",
    "BestCheckpoint", "RunSummary", "LogLine", "Event",
    "clean_line", "segments", "parse_line", "parse_lines", "parse_logging_jsonl_line",
    "events_from_dict", "parse_duration",
    "Rule", "RULES",
    "Diagnosis", "HOST_OOM_RETURNCODES", "diagnose", "without_source_lines", "rejected_flags",
]
