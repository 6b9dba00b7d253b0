"""What the parsers produce: the exit-code table and the event dataclasses.

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
| 12   | export_unverified | a merged export (or its GGUF) answers unlike what it came from |
| 13   | stalled         | no output for output.stall_timeout s: stopped (resumable)  |
| 14   | rendezvous      | the nodes could not meet: master port in use or unreachable |
| 15   | serve_unverified | a served endpoint answers unlike the tuned model          |
| 130  | interrupted     | stopped by SIGINT (128 + 2)                                |
| 143  | interrupted     | stopped by SIGTERM (128 + 15)                              |

Events: one dataclass per thing a line of output (or of logging.jsonl) can report. `Event` is
their union; lines.py and metrics.py build them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

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
    "rendezvous": 14,
    "serve_unverified": 15,  # not from a log: the endpoint answers unlike the adapter did in verification
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
    # peak memory of every rank of this node (GPU, else host), filled in by the supervisor: ms-swift logs rank 0's
    rank_memory_gib: tuple[float, ...] | None = field(default=None, compare=False)


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
