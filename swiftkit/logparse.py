"""Pure parsing of ms-swift output: a line in, events out; a failed run's tail in, a Diagnosis out.

No I/O and no torch/ms-swift import: callers pass the text. Everything here was written against
real output: ../tests/fixtures/logs holds the logs each rule quotes.

Exit codes, one per failure kind. They are part of swiftkit's interface: keep them stable.

| code | kind            | what happened                                              |
|------|-----------------|------------------------------------------------------------|
| 0    |                 | success                                                    |
| 1    | unknown         | a failure no rule explains (evidence: last traceback line) |
| 2    |                 | reserved: swiftkit.errors.EXIT_USAGE (a recipe/usage error) |
| 3    | cuda_oom        | the GPU ran out of memory                                  |
| 4    | host_oom        | a process was SIGKILLed, most likely by the kernel OOM killer |
| 5    | bad_flag        | ms-swift rejected flags (remaining_argv)                   |
| 6    | dataset         | the dataset could not be loaded or no row survived         |
| 7    | model_not_found | no model at that path / hub id                             |
| 8    | network         | the hub could not be reached                               |
| 9    | disk_full       | no space left on device                                    |
| 10   | distributed     | NCCL/gloo error or timeout, a rank aborted (torchrun)      |
| 11   | model_type      | ms-swift could not tell the model type of a local dir      |
| 12   | export_unverified | a merged export answers unlike base + adapter            |
| 13   | stalled         | no output for output.stall_timeout s: stopped (resumable)  |
| 130  | interrupted     | stopped by SIGINT (128 + 2)                                |
| 143  | interrupted     | stopped by SIGTERM (128 + 15)                              |
"""
from __future__ import annotations

import ast
import json
import re
import signal
from dataclasses import dataclass, field
from typing import Any, Iterable, Union

EXIT_CODES: dict[str, int] = {
    "unknown": 1,
    "cuda_oom": 3,
    "host_oom": 4,
    "bad_flag": 5,
    "dataset": 6,
    "model_not_found": 7,
    "network": 8,
    "disk_full": 9,
    "distributed": 10,
    "model_type": 11,
    "export_unverified": 12,  # not from a log: a merged model that answers unlike base + adapter
    "stalled": 13,  # not from a log: the child printed nothing for output.stall_timeout seconds
    "interrupted": 130,  # SIGINT; SIGTERM gives 143, any other signal 128 + its number
}


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """One logging step. Durations are seconds; `raw` keeps the dict as printed."""

    step: int | None
    max_steps: int | None
    epoch: float | None
    loss: float | None
    grad_norm: float | None
    learning_rate: float | None
    token_acc: float | None
    memory_gib: float | None
    speed_s_per_it: float | None
    elapsed: float | None
    remaining: float | None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Eval:
    """An evaluation step (`eval_*` keys); only seen when split_dataset_ratio or val_dataset is set."""

    step: int | None
    max_steps: int | None
    loss: float | None
    metrics: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class TrainSummary:
    """The dict the trainer prints once training ends (`train_runtime`, ...)."""

    train_runtime: float | None
    train_loss: float | None
    train_samples_per_second: float | None
    train_steps_per_second: float | None
    epoch: float | None
    step: int | None
    max_steps: int | None
    memory_gib: float | None
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class OutputDir:
    """`[INFO:swift] output_dir: <run dir>`: the versioned run dir (…/vN-YYYYMMDD-HHMMSS)."""

    path: str


@dataclass(frozen=True)
class CheckpointSaved:
    """`Saving model checkpoint to <dir>`: the save began; it may not have finished."""

    path: str


@dataclass(frozen=True)
class LastCheckpoint:
    """`last_model_checkpoint: <dir>` (None when nothing was saved).

    Printed from a `finally:` block, so it also follows a crash, and it can name a checkpoint
    whose save failed half-way (probe-disk-full.log): check it on disk before trusting it."""

    path: str | None


@dataclass(frozen=True)
class BestCheckpoint:
    """`best_model_checkpoint: <dir>`; None without an eval set (split_dataset_ratio defaults to 0)."""

    path: str | None


@dataclass(frozen=True)
class RunSummary:
    """The last line of logging.jsonl: checkpoints, global_step and the trainer's log_history."""

    global_step: int | None
    best_metric: float | None
    log_history: list = field(default_factory=list, repr=False, compare=False)
    raw: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class LogLine:
    """A WARNING or ERROR from a logger. INFO lines are left out: they are the bulk of the output
    (the SftArguments dump), and the ones that matter have events of their own."""

    level: str
    logger: str
    message: str


Event = Union[Progress, Eval, TrainSummary, OutputDir, CheckpointSaved, LastCheckpoint,
              BestCheckpoint, RunSummary, LogLine]


# --------------------------------------------------------------------------------------------
# Lines
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Metrics dicts (stdout reprs and logging.jsonl share the keys)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Diagnosis
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diagnosis:
    """Why a run failed, in words a user can act on.

    `evidence` is the log line the verdict rests on ("exit status N" when the verdict rests on the
    exit status alone: a SIGKILL leaves no message). `checkpoint` is the last checkpoint the log
    names (as the log claims it: verify it with swiftkit.checkpoints before resuming from it);
    `training_finished` is true when the trainer's end-of-training summary was printed."""

    kind: str
    exit_code: int
    message: str
    hint: str
    evidence: str
    flags: tuple[str, ...] = ()
    checkpoint: str | None = None
    training_finished: bool = False


@dataclass(frozen=True)
class Rule:
    """One row of the diagnosis table. `example` is a real line the rule was written against;
    a test checks that every rule matches its own example. `requires`, when set, must also
    match some line of the tail (for warnings that only explain a crash that follows them)."""

    kind: str
    pattern: re.Pattern
    message: str
    hint: str
    example: str
    source: str
    requires: re.Pattern | None = None


def _rule(kind: str, pattern: str, message: str, hint: str, example: str, source: str,
          requires: str | None = None) -> Rule:
    return Rule(kind, re.compile(pattern), message, hint, example, source,
                re.compile(requires) if requires else None)


# Ordered: the first rule that matches wins. Specific causes come before the generic symptoms
# they produce (an OOM under torchrun also prints ChildFailedError; a missing local dataset
# ends in a network error because ms-swift then asks the hub). Messages are format strings
# over the pattern's named groups.
RULES: tuple[Rule, ...] = (
    _rule("interrupted", r"^KeyboardInterrupt\b",
          "The run was interrupted (Ctrl-C).",
          "Run the same command again to resume from the last complete checkpoint.",
          "KeyboardInterrupt",
          "Python's traceback for an uncaught SIGINT"),
    _rule("cuda_oom",
          r"(?:torch\.(?:cuda\.)?OutOfMemoryError|CUDA out of memory|CUDA error: out of memory)"
          r"(?:.*?(?P<alloc>Tried to allocate [\d.]+ [KMGT]?i?B))?",
          "The GPU ran out of memory. {alloc}",
          "Halve per_device_train_batch_size and double gradient_accumulation_steps (same effective "
          "batch); if gradient_checkpointing is off, turn it on first.",
          "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 354.00 MiB. GPU 0 has a total "
          "capacity of 79.18 GiB of which 55.65 GiB is free.",
          "gpu-h100-oom.log (micro-batch 16, gradient checkpointing off, allocator capped at 23 GiB)"),
    _rule("host_oom", r"Signal 9 \(SIGKILL\) received by PID|exitcode\s*:\s*-9\b",
          "A training process was killed (SIGKILL), most likely by the kernel's out-of-memory killer.",
          "Lower dataloader_num_workers and dataset_num_proc, or run on a host with more RAM; "
          "`dmesg | grep -i oom` confirms an OOM kill.",
          "  traceback : Signal 9 (SIGKILL) received by PID 32313",
          "torchrun's ChildFailedError summary, format as in cpu-tiny-ddp2-teardown-abort.log"),
    _rule("disk_full", r"No space left on device|\[Errno 28\]|PytorchStreamWriter failed writing file"
          r"|inline_container\.cc:\d+\]\s*\.\s*unexpected pos \d+ vs \d+",
          "The disk is full.",
          "Free space where output_dir lives, or set save_total_limit to keep fewer checkpoints; "
          "the checkpoint being written when this happened is incomplete.",
          "OSError: [Errno 28] No space left on device: '/data/full/out/v0-20261122-133049/args.json' "
          "-> '/data/full/out/v0-20261122-133049/checkpoint-5/args.json'",
          "probe-disk-full.log (output_dir on a 120 KiB tmpfs)"),
    _rule("bad_flag", r"remaining_argv: (?P<argv>\[.*\])",
          "ms-swift rejected these arguments: {flags}.",
          "Rename or remove them: ms-swift 4 renamed several 3.x flags (--train_type is now "
          "--tuner_type, --evaluation_strategy is --eval_strategy, --no_cuda is --use_cpu).",
          "ValueError: remaining_argv: ['--train_type', 'lora']",
          "probe-bad-flag.log (swift/pipelines/base.py:_parse_args)"),
    _rule("model_type", r"Failed to automatically match `model_type` for `(?P<path>[^`]+)`",
          "ms-swift could not tell which model type {path} is.",
          "Pass model_type and template explicitly for a local model dir (for Qwen2.5: "
          "--model_type qwen2 --template qwen2_5).",
          "ValueError: Failed to automatically match `model_type` for `/data/tiny/tiny-qwen`. Multiple "
          "possible types found: ['qwen2', 'qwen2_gte']. Please specify `model_type` manually.",
          "probe-model-type-ambiguous.log"),
    _rule("dataset", r"The local path does not exist, dataset_id: `(?P<path>[^`]+)`",
          "The dataset file {path} does not exist.",
          "Fix the dataset path in the recipe (relative paths are resolved from the working dir).",
          "ValueError: The local path does not exist, dataset_id: `/data/missing.json`. "
          "os.path.exists(dataset_id): False",
          "probe-dataset-path-missing.log (swift/dataset/loader.py)"),
    _rule("dataset", r"Dataset (?P<dataset>\S+) load failed",
          "The dataset {dataset} could not be loaded; a path that is not an existing local file is "
          "looked up on the hub instead.",
          "If {dataset} is meant to be a local file, check its path; hub datasets need network access.",
          "[ERROR:swift] Dataset x.json load failed: subset_name=default,split=train with error: [E1001] …",
          "probe-dataset-relative-path-to-hub.log (a relative path that does not exist)"),
    _rule("dataset", r"Failed to load JSON from file '(?P<path>[^']+)'",
          "The dataset file {path} is not valid JSON/JSONL.",
          "Fix the JSON syntax at the row the message names (one JSON object per line for .jsonl).",
          "Failed to load JSON from file '/data/broken.jsonl' with error <class 'pyarrow.lib.ArrowInvalid'>: "
          "JSON parse error: Missing a comma or ']' after an array element. in row 0",
          "probe-dataset-malformed-jsonl.log"),
    _rule("dataset", r"There are errors in the dataset, the data will be deleted",
          "No usable dataset row was left: rows were dropped as malformed (see the warning above).",
          "Give each row `messages` (or `conversations`, or instruction/input/output, or query/response).",
          "[WARNING:swift] 👆👆👆There are errors in the dataset, the data will be deleted",
          "probe-dataset-no-valid-rows.log (rows with a `foo` column only)",
          requires=r"^ZeroDivisionError|num_samples should be a positive integer|"
                   r"'NoneType' object is not iterable"),
    _rule("dataset", r"Dataset filtered, origin length: (?P<rows>\d+), filtered dataset length: 0\b",
          "All {rows} dataset rows were dropped: none fits in max_length.",
          "Raise max_length (or shorten the system prompt and answers).",
          "[INFO:swift] Dataset filtered, origin length: 5, filtered dataset length: 0",
          "probe-dataset-all-rows-too-long.log (max_length 64)"),
    _rule("dataset", r"Failed to retrieve the dataset|Please provide subsets|DatasetGenerationError",
          "The dataset could not be read.",
          "Check the dataset file and its format; the lines above the traceback name the bad row.",
          "ValueError: Failed to retrieve the dataset. You can avoid this issue by increasing "
          "`max_length` or modifying the `truncation_strategy`.",
          "swift/dataset/utils.py (no log of it yet)"),
    _rule("model_not_found",
          r"path: '(?P<path>[^']+)' not found|NotExistError|RepositoryNotFoundError|"
          r"is not a local folder and is not a valid model identifier",
          "The model was not found{path_suffix}.",
          "Check the model path or hub id; a local dir must exist on this machine.",
          "ValueError: path: '/data/nomodel' not found",
          "probe-model-path-missing.log (swift/utils/hub_utils.py:safe_snapshot_download)"),
    _rule("network",
          r"NetworkError: \[E\d+\]|_DownloadDeadlineError|RequestTimeoutError|"
          r"requests\.exceptions\.(?:ConnectionError|ConnectTimeout|ReadTimeout)|NameResolutionError|"
          r"Temporary failure in name resolution|LocalEntryNotFoundError|OfflineModeIsEnabled",
          "The model/dataset hub could not be reached.",
          "Use a local model dir and local dataset files, or run where the hub is reachable.",
          "modelscope_hub.errors.NetworkError: [E1020] Connection failed: _DownloadHTTPSConnectionPool("
          "host='modelscope.cn', port=443): Max retries exceeded with url: /api/v1/models/Qwen/"
          "NoSuchModel-0.5B/repo/files?Revision=master&Recursive=True",
          "probe-model-hub-unreachable.log (no network)"),
    _rule("distributed", r"terminate called without an active exception",
          "A training process aborted while shutting down.",
          "Look at the checkpoint on disk: if it is complete, the run's work is done.",
          "terminate called without an active exception",
          "cpu-tiny-ddp2-teardown-abort.log (2 ranks, gloo, after the checkpoint was saved)"),
    _rule("distributed",
          r"Watchdog caught collective operation timeout|NCCL (?:error|timeout)|DistBackendError|"
          r"DistNetworkError|ProcessGroupNCCL|ProcessGroupGloo|Connection closed by peer",
          "Communication between the training processes failed.",
          "Rerun with NCCL_DEBUG=INFO to see which rank failed; check that every GPU is visible "
          "and no other job holds them.",
          "[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) "
          "ran for 600000 milliseconds before timing out.",
          "torch's ProcessGroupNCCL watchdog message (no log of it yet)"),
    _rule("distributed", r"ChildFailedError",
          "One of the training processes failed.",
          "The first failure in the summary ('Root Cause') names the rank; its traceback is above it.",
          "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
          "cpu-tiny-ddp2-teardown-abort.log"),
)

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
    for rule in RULES:
        found = _match(rule, lines)
        if found is not None:
            return _from_rule(rule, found, context)
    if returncode in HOST_OOM_RETURNCODES:
        return _host_oom_by_code(returncode, context)
    if returncode in _SIGNAL_RETURNCODES:
        return _interrupted(int(_SIGNAL_RETURNCODES[returncode]), returncode, context)
    return _unknown(returncode, lines, context)


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
