"""Merged exports on disk: made in a staging dir, checked, then moved into place with a marker.

`swift export` writes into a hidden staging dir beside the destination (`.NAME.partial-PID`);
swiftkit checks the weight files, verifies the merged model, writes `swiftkit-export.json` (the
marker: hashes, size, verification) into it and renames it into place. A destination therefore
either does not exist or holds a whole export with its marker. A dir without the marker (an
export cut off by an older tool, a copy that stopped half way) is reported incomplete, never done;
staging dirs of dead processes are leftovers that `swiftkit export` names and never reuses.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swiftkit.results.fingerprint import file_sha256
from swiftkit.results.record import now, versions
from swiftkit.results.weightfiles import check_model_dir, model_weight_files

MARKER = "swiftkit-export.json"
_STAGING = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


@dataclass
class ExportInfo:
    path: str
    source: str  # the checkpoint that was merged
    base_model: str
    size_bytes: int
    sha256: dict[str, str]  # weight file name -> sha256
    dtype: str | None
    quant: dict | None = None
    verified: bool = False
    agreement: float | None = None  # share of probes the merged model answered as base + adapter did
    min_agreement: float | None = None
    similarity: float | None = None  # mean chrF of the merged answers against base + adapter's (0-1)
    probes: int = 0
    disagreements: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # merge, verify
    format: str = "safetensors"  # or "gguf": then `sha256` names the GGUF files and `gguf` says how each did
    gguf: dict[str, dict] = field(default_factory=dict)  # type -> file, size, agreement, verified, seconds, ...
    chat_template: dict | None = None  # gguf: which template the files carry, its system prompt, why
    versions: dict = field(default_factory=versions)
    created_at: str = field(default_factory=now)

    def to_dict(self) -> dict:
        return asdict(self)


def default_dir(checkpoint: Path, quant_bits: int | None = None) -> Path:
    """checkpoint-N-merged beside the checkpoint (ms-swift's own default name), -int4 when quantized."""
    return checkpoint.with_name(checkpoint.name + "-merged" + (f"-int{quant_bits}" if quant_bits else ""))


def staging_dir(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial-{os.getpid()}")


def leftovers(final: Path) -> list[Path]:
    """Staging dirs for `final` whose process is gone: an export that was cut off."""
    found = []
    for child in final.parent.iterdir() if final.parent.is_dir() else []:
        m = _STAGING.match(child.name)
        if m and m.group("name") == final.name and not _alive(int(m.group("pid"))):
            found.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def weight_files(path: Path) -> list[Path]:
    index = [p for p in (path / "model.safetensors.index.json", path / "pytorch_model.bin.index.json") if p.is_file()]
    return model_weight_files(path) + index


def describe(path: Path) -> tuple[int, dict[str, str]]:
    """(bytes in the dir, sha256 of each weight file)."""
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return size, {f.name: file_sha256(f) for f in weight_files(path)}


def problems(path: Path) -> list[str]:
    """Why `path` is not a complete export; empty when it is."""
    if not path.is_dir():
        return [f"{path} does not exist"]
    info = read_marker(path)
    found = [] if info is not None and info.format == "gguf" else check_model_dir(path)
    if info is None:
        found.insert(0, f"no {MARKER}: the export did not finish (or was not made by swiftkit)")
        return found
    for name, digest in info.sha256.items():
        f = path / name
        if not f.is_file():
            found.append(f"{name} is missing")
        elif file_sha256(f) != digest:
            found.append(f"{name} changed since the export (sha256 differs)")
    return found


def read_marker(path: Path) -> ExportInfo | None:
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
        known = {k: v for k, v in data.items() if k in ExportInfo.__dataclass_fields__}
        return ExportInfo(**known)
    except (OSError, ValueError, TypeError, AttributeError, RecursionError):  # a marker of any wrong shape
        return None


def write_marker(path: Path, info: ExportInfo) -> None:
    tmp = path / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(info.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path / MARKER)


def is_export(path: Path) -> bool:
    return (path / MARKER).is_file()
