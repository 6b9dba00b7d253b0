"""A GGUF file -> a Hugging Face model dir that ms-swift trains, converted once and then taken from the cache.

The header is checked first (header.require_convertible: no weights are read for a file that cannot be
converted). The dir is cache_dir()/gguf/<sha256 of the GGUF>-<dtype>/<name>, or `out_dir` when given, where
<name> is the model's name as the hub spells it (Qwen2.5-Coder-0.5B-Instruct, SmolLM2-135M-Instruct): ms-swift
picks the model type and template of a local dir by its name. child/convert_gguf.py writes the dir into a
staging dir beside it (its output logged to convert.log there), the dir is renamed into place, and the marker
(MARKER: the GGUF's sha256, the dtype, the child's facts) is written into it last. A dir without a matching
marker is never used: in the cache it and any staging dir are removed (under a lock, so a running conversion
of the same file is waited for, never removed); a user's `out_dir` is refused instead.

Disk space is checked before the child starts (parameters x dtype bytes x 1.1). Not enough raises
errors.DiskSpaceError (exit 9, as a full disk in training). A conversion that fails raises ConversionFailed
(exit 1), which names the kept log.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from filelock import FileLock

from .. import __version__, paths, process
from ..errors import UserError, choice_fix, quote
from . import fetch
from ..errors import DiskSpaceError
from .header import GGUFHeader, require_convertible

MARKER = "swiftkit-gguf.json"
DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}
CHILD = paths.PACKAGE_DIR / "child" / "convert_gguf.py"
STALL_SECONDS = 900
# Words of a GGUF's general.name that name its quantization or packaging, not the model.
_QUANT_WORD = re.compile(r"^(awq|gptq|gguf|ggml|int[248]|[qi]q?\d(_[a-z0-9]+)*|f16|bf16|f32|fp16|fp8)$", re.I)


class ConversionFailed(RuntimeError):
    """The child could not convert a GGUF whose header was fine."""


def hub_name(header: GGUFHeader, sha256: str) -> str:
    """The model's name as the hub spells it: a known model's, else general.name (or the file's name) without
    its quantization words, in characters safe for a dir name."""
    known = fetch.known_by_sha256(sha256)
    if known:
        return known.hub_name
    for source in (header.name, header.path.name.removesuffix(".gguf")):
        words = [w for w in re.split(r"[\s.-]+(?=[A-Za-z])|\s+", source or "") if w and not _QUANT_WORD.match(w)]
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", "-".join(words)).strip("-.")
        if name:
            return name[:96]
    return "model"


def read_marker(model_dir: str | os.PathLike) -> dict | None:
    """The marker of a finished conversion, or None (no marker, or one that cannot be read)."""
    try:
        data = json.loads((Path(model_dir) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _finished(model_dir: Path, sha256: str, dtype: str) -> bool:
    marker = read_marker(model_dir)
    return bool(marker and marker.get("gguf_sha256") == sha256 and marker.get("dtype") == dtype
                and (model_dir / "config.json").is_file())


def cached_sha256(path: Path) -> str:
    """The file's sha256, remembered by path, size, mtime and inode (a second look at a 0.5 GB file is free)."""
    info = path.stat()
    key = f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{info.st_ino}"
    index = paths.cache_dir() / "gguf" / "digests.json"
    try:
        known = json.loads(index.read_text(encoding="utf-8"))
        known = known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(key), str):
        return known[key]
    digest = fetch.sha256_of(path)
    known = {k: v for k, v in list(known.items())[-200:]}
    known[key] = digest
    _write_json(index, known)
    return digest


def cache_target(source: Path, dtype: str, header: GGUFHeader | None = None) -> Path:
    """Where convert(source, dtype=dtype) puts (or has put) the model dir in the cache, found without converting:
    what a recipe's rendered command names as --model before the first run converts it."""
    header = header or require_convertible(source)
    sha256 = cached_sha256(source)
    return paths.cache_dir() / "gguf" / f"{sha256}-{dtype}" / hub_name(header, sha256)


def converted(model_dir: Path, source: Path, dtype: str) -> bool:
    """model_dir holds the finished conversion of source in dtype (its marker written last says so)."""
    return _finished(model_dir, cached_sha256(source), dtype)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def convert(gguf_path: str | os.PathLike, out_dir: str | os.PathLike | None = None, dtype: str = "float32",
            *, on_line=None) -> Path:
    """The Hugging Face model dir of the GGUF file at gguf_path, converted now or found converted."""
    if dtype not in DTYPES:
        raise UserError.one(f"unknown dtype {quote(dtype)}", key="dtype", fix=choice_fix(dtype, DTYPES))
    source = Path(gguf_path)
    header = require_convertible(source)
    sha256 = cached_sha256(source)
    name = hub_name(header, sha256)
    if out_dir is None:
        target = cache_target(source, dtype, header)
        entry = target.parent
        lock_path = entry / ".lock"
    else:
        target = Path(out_dir).absolute()
        entry = target.parent
        digest = hashlib.sha256(str(target).encode()).hexdigest()[:24]
        lock_path = paths.cache_dir() / "gguf" / "locks" / f"{digest}.lock"
    if _finished(target, sha256, dtype):
        return target
    entry.mkdir(parents=True, exist_ok=True)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path)):
        if _finished(target, sha256, dtype):  # converted while this one waited
            return target
        _clear(entry, target, cache=out_dir is None)
        _check_space(entry, header, dtype)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=entry))
        try:
            facts = _run_child(source, staging, staging / name, dtype, on_line)
            os.replace(staging / name, target)
            marker = {"gguf": str(source.resolve()), "gguf_sha256": sha256, "dtype": dtype, "name": name,
                      "architecture": header.architecture, "model_type": header.model_type,
                      "template": header.template, "facts": facts, "swiftkit": __version__,
                      "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            _write_json(target / MARKER, marker)  # last: the dir is used from now on
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def _clear(entry: Path, target: Path, *, cache: bool) -> None:
    """Remove what an earlier conversion that was stopped left (called under the lock: none is running)."""
    for staging in entry.glob(f".{target.name}.staging-*"):
        shutil.rmtree(staging, ignore_errors=True)
    if not target.exists():
        return
    if cache:
        shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
    elif not target.is_dir() or any(target.iterdir()):
        raise UserError.one(f"{target} exists and is not a finished conversion of this GGUF file", file=str(target),
                            fix="choose another output dir, or remove this one")
    else:
        target.rmdir()


def _check_space(where: Path, header: GGUFHeader, dtype: str) -> None:
    need = int(header.parameters * DTYPES[dtype] * 1.1) + (64 << 20)  # the weights, the tokenizer files
    free = shutil.disk_usage(where).free
    if free < need:
        raise DiskSpaceError.one(
            f"not enough disk space to convert {header.path.name} to {dtype}: {free / 1e9:.2f} GB free in "
            f"{where}, about {need / 1e9:.2f} GB needed ({header.parameters:,} parameters)", file=str(where),
            fix="free disk space, convert to bfloat16 (half the size), or put the cache elsewhere "
                "(SWIFTKIT_CACHE_DIR) or pass an output dir on another disk")


def facts_of(line: str) -> dict | None:
    """A child's closing `{"facts": {...}}` line (child/convert_gguf.py, child/write_gguf.py), else None."""
    if not line.startswith('{"facts"'):
        return None
    try:
        facts = json.loads(line)["facts"]
    except (ValueError, KeyError, TypeError):
        return None
    return facts if isinstance(facts, dict) else None


def _run_child(source: Path, staging: Path, out: Path, dtype: str, on_line) -> dict:
    spec = {"gguf": str(source.resolve()), "out": str(out), "dtype": dtype}
    found: dict = {}

    def line(text: str) -> None:
        if (facts := facts_of(text)) is not None:
            found.update(facts)
        elif on_line is not None and text.startswith("[convert]"):
            on_line(text)

    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = process.supervise([sys.executable, str(CHILD), json.dumps(spec)], env, staging / "convert.log", line,
                             stall_timeout=STALL_SECONDS)
    if done.returncode == 0 and found and (out / "config.json").is_file():
        return found
    kept = staging.parent / f"{out.name}.convert-failed.log"
    try:
        shutil.copyfile(done.log_path, kept)
    except OSError:
        kept = done.log_path
    if done.interrupted_by:
        raise KeyboardInterrupt
    last = next((t for t in reversed(done.tail) if "Error" in t or "error" in t), done.tail[-1] if done.tail else "")
    stalled = f" (no output for {done.stalled_after:.0f} s)" if done.stalled_after else ""
    raise ConversionFailed(f"converting {source.name} failed{stalled} (exit {done.returncode}): "
                           f"{last.strip()[:300]}; the log: {kept}")
