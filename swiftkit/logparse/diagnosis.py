"""A failed run's tail in, a Diagnosis out: diagnose() and its helpers.

diagnose() tries the RULES table (rules.py) line by line, then falls back on the exit status
(SIGKILL, SIGINT/SIGTERM) and last on the last exception line. It also reads the tail's events
(lines.py) for the last checkpoint and whether training had finished.
"""
from __future__ import annotations

import ast
import re
import signal
from dataclasses import dataclass, replace

from .events import EXIT_CODES, CheckpointSaved, LastCheckpoint, TrainSummary
from .lines import parse_line, segments
from .rules import RULES, Rule


@dataclass(frozen=True)
class Diagnosis:
    """Why a run failed, in words a user can act on.

    `evidence` is the log line the verdict rests on ("exit status N" when the verdict rests on the
    exit status alone: a SIGKILL leaves no message). `checkpoint` is the last checkpoint the log
    names (as the log claims it: verify it with swiftkit.results.checkpoints before resuming from it);
    `training_finished` is true when the trainer's end-of-training summary was printed."""

    kind: str
    exit_code: int
    message: str
    hint: str
    evidence: str
    flags: tuple[str, ...] = ()
    checkpoint: str | None = None
    training_finished: bool = False


# What `swift` itself exits with when its child is SIGKILLed: swift/cli/main.py does
# sys.exit(child.returncode), and sys.exit(-9) exits 247 (seen in probe-child-sigkill.log).
HOST_OOM_RETURNCODES = frozenset({-9, 137, 247})
# The same mapping for SIGINT (-2 -> 254) and SIGTERM (-15 -> 241).
_SIGNAL_RETURNCODES = {-2: signal.SIGINT, 130: signal.SIGINT, 254: signal.SIGINT,
                       -15: signal.SIGTERM, 143: signal.SIGTERM, 241: signal.SIGTERM}


def diagnose(tail_lines: list[str], returncode: int, *,
             interrupted_by: int | None = None, stalled_after: float | None = None) -> Diagnosis | None:
    """Why `swift` exited with `returncode`, from the last lines of its output; None on success.

    `interrupted_by` is the signal swiftkit itself sent (SIGINT/SIGTERM): that explains the exit
    whatever the output says, since a traceback then follows from the interruption. `stalled_after`:
    swiftkit stopped the child after that many seconds of silence."""
    lines = without_source_lines([seg for line in tail_lines for seg in segments(line)])
    context = _context(lines)
    if stalled_after is not None:
        last = next((line for line in reversed(lines) if line.strip()), "(no output at all)")
        return Diagnosis("stalled", EXIT_CODES["stalled"],
                         f"The run stalled: no output for {stalled_after:.0f} s, so swiftkit stopped it (a hang: "
                         "a dataloader deadlock, or a collective waiting for a rank that is gone).",
                         "run again: it resumes from the last complete checkpoint; if it stalls at the same step, "
                         "read the log's last lines; if a step is legitimately that slow, raise output.stall_timeout",
                         f"last output before the silence: {last.strip()[:300]}", **context)
    if returncode == 0:
        return None
    if interrupted_by is not None:
        return _interrupted(int(interrupted_by), returncode, context)
    return _with_root_cause(_by_output(lines, returncode, context), lines)


def _by_output(lines: list[str], returncode: int, context: dict) -> Diagnosis:
    for rule in RULES:
        found = _match(rule, lines)
        if found is not None:
            return _from_rule(rule, found, context)
    if returncode in HOST_OOM_RETURNCODES:
        return _host_oom_by_code(returncode, context)
    if returncode in _SIGNAL_RETURNCODES:
        return _interrupted(int(_SIGNAL_RETURNCODES[returncode]), returncode, context)
    return _unknown(returncode, lines, context)


_SUMMARY_FIELD = re.compile(r"^\s*(host|rank|exitcode)\s*:\s*(.+?)\s*$")


def root_cause(lines: list[str]) -> dict[str, str] | None:
    """torchrun's ChildFailedError summary, 'Root Cause (first observed failure)': host, rank, exitcode."""
    start = next((i for i in range(len(lines) - 1, -1, -1) if "Root Cause (first observed failure)" in lines[i]),
                 None)
    if start is None:
        return None
    found: dict[str, str] = {}
    for line in lines[start + 1:start + 12]:
        m = _SUMMARY_FIELD.match(line)
        if m:
            found.setdefault(m.group(1), m.group(2))
    return found if "rank" in found else None


def _with_root_cause(d: Diagnosis, lines: list[str]) -> Diagnosis:
    """Name the rank that failed first (and its host) where torchrun's summary says which."""
    cause = root_cause(lines)
    if cause is None or d.kind in ("bad_flag", "dataset", "model_not_found", "model_type", "network"):
        return d
    where = f"rank {cause['rank']}" + (f" on {cause['host']}" if cause.get("host") else "")
    code = cause.get("exitcode", "").split(" (pid")[0]
    return replace(d, message=f"{d.message} First to fail: {where}" + (f", exit {code}." if code else "."))


_FRAME = re.compile(r'^(\s*)File "[^"]*", line \d+')


def without_source_lines(lines: list[str]) -> list[str]:
    """The lines without the source code a traceback echoes under each `File "…", line N`.

    Those lines quote ms-swift's own `raise ValueError(f'… not found')`, which would otherwise
    match the rules before the real message does (probe-model-path-missing.log)."""
    kept: list[str] = []
    frame_indent: int | None = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if frame_indent is not None and indent > frame_indent:
            continue
        m = _FRAME.match(line)
        frame_indent = len(m.group(1)) if m else None
        kept.append(line)
    return kept


def _match(rule: Rule, lines: list[str]) -> tuple[str, re.Match] | None:
    """The first line the rule matches: chained tracebacks print the root cause first."""
    if rule.requires is not None and not any(rule.requires.search(line) for line in lines):
        return None
    for line in lines:
        m = rule.pattern.search(line)
        if m:
            return line, m
    return None


def _from_rule(rule: Rule, found: tuple[str, re.Match], context: dict) -> Diagnosis:
    line, m = found
    groups = {k: (v or "") for k, v in m.groupdict().items()}
    flags: tuple[str, ...] = ()
    if rule.kind == "bad_flag":
        flags = rejected_flags(groups.get("argv", ""))
        groups["flags"] = ", ".join(flags) or groups.get("argv", "")
    groups["path_suffix"] = f": {groups['path']}" if groups.get("path") else ""
    message = rule.message.format_map(groups).strip()
    if rule.kind == "distributed" and context["training_finished"] and context["checkpoint"]:
        message += (f" Training had finished and {context['checkpoint']} was saved before that, "
                    "so the checkpoint is likely usable.")
    return Diagnosis(rule.kind, EXIT_CODES[rule.kind], message, rule.hint.format_map(groups),
                     _evidence(line, rule.pattern), flags, **context)


def rejected_flags(argv_repr: str) -> tuple[str, ...]:
    """The flags in a `remaining_argv` list: "['--train_type', 'lora']" -> ('--train_type',).

    When the leftovers hold no flag at all (a stray value), the values are returned instead."""
    try:
        items = ast.literal_eval(argv_repr)
    except (ValueError, SyntaxError):
        return ()
    if not isinstance(items, (list, tuple)):
        return ()
    items = [str(item) for item in items]
    flags = tuple(item.split("=", 1)[0] for item in items if item.startswith("-"))
    return flags or tuple(items)


def _interrupted(signum: int, returncode: int, context: dict) -> Diagnosis:
    name = {signal.SIGINT: "SIGINT (Ctrl-C)", signal.SIGTERM: "SIGTERM"}.get(signum, f"signal {signum}")
    return Diagnosis("interrupted", 128 + signum, f"The run was stopped by {name}.",
                     "Run the same command again to resume from the last complete checkpoint.",
                     f"exit status {returncode}", **context)


def _host_oom_by_code(returncode: int, context: dict) -> Diagnosis:
    return Diagnosis("host_oom", EXIT_CODES["host_oom"],
                     f"The training process was killed (exit status {returncode}: SIGKILL), most "
                     "likely by the kernel's out-of-memory killer.",
                     "Lower dataloader_num_workers and dataset_num_proc, or run on a host with more "
                     "RAM; `dmesg | grep -i oom` confirms an OOM kill.",
                     f"exit status {returncode}", **context)


def _unknown(returncode: int, lines: list[str], context: dict) -> Diagnosis:
    evidence = _last_exception(lines) or _last_meaningful(lines)
    return Diagnosis("unknown", EXIT_CODES["unknown"],
                     f"ms-swift failed (exit status {returncode}): {evidence or 'no error message'}",
                     "Read the traceback in the full log.", evidence, **context)


def _context(lines: list[str]) -> dict:
    """What the tail says about progress before the failure: last checkpoint, finished or not."""
    checkpoint: str | None = None
    finished = False
    for line in lines:
        for event in parse_line(line):
            if isinstance(event, (CheckpointSaved, LastCheckpoint)) and event.path:
                checkpoint = event.path
            elif isinstance(event, TrainSummary):
                finished = True
    return {"checkpoint": checkpoint, "training_finished": finished}


# tqdm's redraws end in "…it/s]", "…s/it]" or "…examples/s]"; what follows on the line is a
# message printed over it, as in probe-dataset-malformed-jsonl.log:
#   "Generating train split: 0 examples [00:00, ? examples/s]Failed to load JSON from file …"
_PROGRESS_PREFIX = re.compile(r"^.*(?:it/s|s/it|examples/s)\]\s*")
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b.*")
_TQDM = re.compile(r"\d+%\|.*\|| \d+/\d+ \[\d")
_MAX_EVIDENCE = 1000


def _evidence(line: str, pattern: re.Pattern | None = None) -> str:
    """The line without progress-bar output drawn before the message on the same line."""
    text = _PROGRESS_PREFIX.sub("", line)
    if not text.strip() or (pattern is not None and not pattern.search(text)):
        text = line
    return text.strip()[:_MAX_EVIDENCE]


def _last_exception(lines: list[str]) -> str:
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()[:_MAX_EVIDENCE]
    return ""


def _last_meaningful(lines: list[str]) -> str:
    """The last line that is not a progress bar (the OOM log ends with one after the traceback)."""
    for line in reversed(lines):
        if line.strip() and not _TQDM.search(line):
            return _evidence(line)
    return ""
