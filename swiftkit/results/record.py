"""The run record: what was run, with which versions, and how it ended, as versioned JSON.

Written atomically (a temp file in the same directory, fsync, os.replace, fsync of the
directory), so a crash mid-write leaves the previous record whole. Read forgivingly: unknown
keys are kept and written back, missing keys take their defaults, and a record from a newer
swiftkit (higher schema) is read with a warning instead of refused.

Secrets stay out: redact_env() and redact_argv() blank tokens before they reach the file.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import tempfile
import warnings
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from swiftkit.errors import UserError

SCHEMA = 1
REDACTED = "***"


class RecordWarning(UserWarning):
    """A record was readable but not fully understood (written by a newer swiftkit)."""


@dataclass
class RunRecord:
    """One run of a recipe. `extra` holds keys this version does not know; they are written back."""

    schema: int = SCHEMA
    recipe: str | None = None          # the recipe file
    recipe_hash: str | None = None     # sha256 of the resolved recipe (what it asks for, not its formatting)
    resolved_recipe: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)   # argv, redacted
    env: dict[str, str] = field(default_factory=dict)  # the variables swiftkit set, redacted
    cwd: str | None = None
    output_dir: str | None = None
    run_dir: str | None = None
    log_path: str | None = None
    status: str = "created"  # created | running | retrying | succeeded | failed | interrupted | unverified
    returncode: int | None = None  # what `swift` exited with
    exit_code: int | None = None   # what swiftkit exits with (logparse.EXIT_CODES)
    diagnosis: dict[str, Any] | None = None
    checkpoint: str | None = None
    best_checkpoint: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # train_runtime, train_loss, peak memory, ...
    attempts: list[dict[str, Any]] = field(default_factory=list)  # one per try of the fallback ladder
    versions: dict[str, str | None] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)       # hostname, platform, CPUs, GPUs
    datasets: list[dict[str, Any]] = field(default_factory=list)  # sha256 and row counts of each input
    verification: dict[str, Any] | None = None  # the scorecard
    retention: dict[str, Any] | None = None  # general answers of the tuned model against the base model's
    exports: list[dict[str, Any]] = field(default_factory=list)  # merged models made from this run
    started_at: str | None = None
    finished_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Fields of the file that had the wrong shape and were read as unset, each named with what it held (never
    # written back: the next write stores the field as this run knows it).
    unreadable: list[str] = field(default_factory=list, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_WRITTEN}
        # Known keys win over stale copies in `extra`; unknown ones follow in their old order.
        return {**data, **{k: v for k, v in self.extra.items() if k not in data}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunRecord":
        known = {f.name: f for f in fields(cls) if f.name not in _NOT_WRITTEN}
        values, unreadable = {}, []
        for name, f in known.items():
            if name not in data:
                continue
            if _fits(f, data[name]):
                values[name] = data[name]
            elif data[name] is not None or f.default_factory is MISSING and f.default is not None:
                unreadable.append(f"{name}: {_kind(data[name])}, expected {_expected(f)}")
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, unreadable=unreadable)


_NOT_WRITTEN = ("extra", "unreadable")
# The JSON shape of each field's type, from its annotation (the module's annotations are strings).
_SHAPES = {"str": (str,), "int": (int,), "dict": (dict,), "list": (list,), "Any": (object,)}


def _shape(f: Any) -> tuple[tuple[type, ...], bool]:
    """(the JSON types a field takes, whether null is allowed) from its annotation."""
    parts = [p.strip().split("[")[0] for p in str(f.type).split("|")]
    types = tuple(t for p in parts if p != "None" for t in _SHAPES.get(p, (object,)))
    return types, "None" in parts


def _fits(f: Any, value: Any) -> bool:
    types, nullable = _shape(f)
    if value is None:
        return nullable
    if isinstance(value, bool) and bool not in types and object not in types:
        return False  # true is an int to Python, never a count or an exit code
    return isinstance(value, types)


def _expected(f: Any) -> str:
    types, nullable = _shape(f)
    return " or ".join([_KIND_NAMES.get(t, t.__name__) for t in types] + (["null"] if nullable else []))


_KIND_NAMES = {str: "text", int: "a whole number", float: "a number", dict: "an object", list: "a list",
               bool: "true/false", type(None): "null", object: "anything"}


def _kind(value: Any) -> str:
    return _KIND_NAMES.get(type(value), type(value).__name__)


def now() -> str:
    """A timestamp for started_at/finished_at: UTC, ISO 8601, seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------------------------ file I/O


def write_record(path: Path, record: RunRecord | Mapping[str, Any]) -> None:
    """Write atomically: readers see the old record or the new one, never half of one."""
    path = Path(path)
    data = _redacted(record.to_dict() if isinstance(record, RunRecord) else dict(record))
    # Serialize before touching the disk, so a value that cannot be written changes nothing.
    text = json.dumps(_strict(data), indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _strict(value: Any) -> Any:
    """NaN and infinities as strings: a diverged loss is worth recording, and bare NaN is not
    JSON (jq and most other readers refuse it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _redacted(data: dict[str, Any]) -> dict[str, Any]:
    """Redact again at the boundary to disk, in case a caller forgot (redaction is idempotent)."""
    if isinstance(data.get("command"), list):
        data["command"] = redact_argv([str(a) for a in data["command"]])
    if isinstance(data.get("env"), dict):
        data["env"] = redact_env(data["env"])
    return data


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; not every platform lets a directory be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_record(path: Path) -> RunRecord:
    """The record at `path`; a missing file raises FileNotFoundError, a corrupt one UserError."""
    path = Path(path)
    fix = "restore it or delete it (the run's log and output dir are unaffected)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError.one(f"run record is not valid JSON: {e.msg}", file=str(path), line=e.lineno,
                            column=e.colno, fix=fix) from None
    except UnicodeDecodeError as e:
        raise UserError.one(f"run record is not UTF-8 text ({e.reason})", file=str(path), fix=fix) from None
    except RecursionError:
        raise UserError.one("run record is nested too deeply to read", file=str(path), fix=fix) from None
    except ValueError as e:  # an integer of more digits than Python converts
        raise UserError.one(f"run record cannot be read: {e}", file=str(path), fix=fix) from None
    if not isinstance(data, dict):
        raise UserError.one("run record is not a JSON object", file=str(path), fix=fix)
    schema = data.get("schema")
    if isinstance(schema, int) and schema > SCHEMA:
        warnings.warn(f"{path}: written by a newer swiftkit (schema {schema}, this one reads {SCHEMA}); "
                      "fields it added are kept but not used", RecordWarning, stacklevel=2)
    return RunRecord.from_dict(data)


# ------------------------------------------------------------------------------------ redaction

_SECRET_WORDS = ("TOKEN", "SECRET", "KEY", "PASSWORD", "CREDENTIAL", "AUTH")
# Names that contain one of the words but hold no secret, and help when reading a record.
_NOT_SECRET = frozenset({"TOKENIZERS_PARALLELISM"})


def is_secret_env(name: str) -> bool:
    upper = name.upper()
    return upper not in _NOT_SECRET and any(word in upper for word in _SECRET_WORDS)


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    """A copy with the values of secret-looking variables (HF_TOKEN, WANDB_API_KEY, ...) blanked."""
    return {k: (REDACTED if is_secret_env(k) else v) for k, v in env.items()}


# For flags, matching the last word of the name: a plain substring test would blank
# --max_new_tokens, --model_author and --reft_layer_key, which are settings, not secrets.
_SECRET_FLAG = re.compile(r"(?:^|[_-])(?:token|secret|password|passwd|credentials?|auth|apikey|"
                          r"api[_-]key|access[_-]key|secret[_-]key|private[_-]key)$", re.IGNORECASE)


def is_secret_flag(flag: str) -> bool:
    """`--hub_token`, `--swanlab_token`, `--swanlab_secret`, `--api-key`, ... (dashes stripped)."""
    return bool(flag.startswith("-") and _SECRET_FLAG.search(flag.lstrip("-").split("=", 1)[0]))


def redact_argv(argv: list[str]) -> list[str]:
    """A copy with the values of secret flags blanked, as `--hub_token VALUE` or `--hub_token=VALUE`."""
    out: list[str] = []
    blank_next = False
    for arg in argv:
        if blank_next and not arg.startswith("--"):
            out.append(REDACTED)
            blank_next = False
            continue
        blank_next = False
        if is_secret_flag(arg) and "=" in arg:
            out.append(arg.split("=", 1)[0] + "=" + REDACTED)
        else:
            out.append(arg)
            blank_next = is_secret_flag(arg)
    return out


# ------------------------------------------------------------------------------------ versions

# Distribution names on PyPI; read from installed metadata, so nothing heavy is imported.
_DISTRIBUTIONS = ("swiftkit", "ms-swift", "torch", "transformers", "peft", "trl", "datasets", "modelscope")


def versions() -> dict[str, str | None]:
    """Installed versions of the stack a run depends on (None when not installed), and Python's."""
    found: dict[str, str | None] = {}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    if found.get("swiftkit") is None:  # run from a source tree (PYTHONPATH) rather than installed
        from swiftkit import __version__

        found["swiftkit"] = __version__
    found["python"] = platform.python_version()
    return found
