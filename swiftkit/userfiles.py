"""Opening a file a user named: regular files only, a size limit per kind, decoded as UTF-8 with a located error.

A path in a recipe or on the command line can name anything: a FIFO (opening one blocks until a writer
comes), a character device (/dev/zero never ends), a file under /proc or /sys (its size says 0 whatever it
holds), or a file far larger than its kind can be. Each is refused from its stat, before it is opened.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from swiftkit.errors import Problem, UserError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# The most a file of each kind can sensibly hold. A recipe or a script is a page of text; probe files and
# identity templates are a few thousand rows; datasets are legitimately big, but are read into memory.
LIMITS: dict[str, int] = {
    "recipe": 1 * MiB,
    "import script": 1 * MiB,
    "DeepSpeed/FSDP config": 1 * MiB,
    "general probe file": 16 * MiB,
    "identity template": 16 * MiB,
    "dataset file": 20 * GiB,
}

# Kernel views, not files: sizes are 0 or made up, and reads can have side effects or never end.
PSEUDO_ROOTS = ("/proc", "/sys")

_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


def human(size: int) -> str:
    """1536 -> '1.5 KiB'; whole units without a decimal ('1 MiB')."""
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _pseudo_root(path: Path) -> str | None:
    real = os.path.realpath(path)  # a symlink into /proc is still /proc
    return next((root for root in PSEUDO_ROOTS if real == root or real.startswith(root + "/")), None)


def check_regular(path: Path | str, kind: str, *, key: str | None = None) -> Problem | None:
    """Why `path` must not be read as a `kind` (a key of LIMITS), or None. Never opens the file.

    A path that does not exist is None: each caller words "not found" for its own kind."""
    path = Path(path)
    where = {"file": str(path), "key": key}
    root = _pseudo_root(path)
    if root:
        return Problem(f"is under {root}, a view of the kernel, not {_a(kind)}", **where,
                       fix="copy what you need into a regular file and point at that")
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        return Problem(f"cannot read the {kind}: {err.strerror or err}", **where,
                       fix="check the path and its permissions")
    return _mode_problem(info, kind, where) or _size_problem(info.st_size, kind, where)


def _mode_problem(info: os.stat_result, kind: str, where: dict) -> Problem | None:
    if stat.S_ISREG(info.st_mode):
        return None
    what = next((words for test, words in _NOT_REGULAR if test(info.st_mode)), "not a plain file")
    fix = ("name a file inside it" if stat.S_ISDIR(info.st_mode)
           else f"{_a(kind)} must be a regular file: copy the data into one and point at that")
    return Problem(f"is {what}, not a regular file", **where, fix=fix)


def _size_problem(size: int, kind: str, where: dict) -> Problem | None:
    limit = LIMITS[kind]
    if size <= limit:
        return None
    return Problem(f"is {human(size)}; {_a(kind)} is at most {human(limit)}", **where,
                   fix=f"check that this is the {kind} you meant")


def read_bytes(path: Path | str, kind: str, *, key: str | None = None) -> bytes:
    """The bytes of a regular file of at most LIMITS[kind]; anything else is a UserError.

    FileNotFoundError is raised as is, for the caller's own "not found" message."""
    path = Path(path)
    problem = check_regular(path, kind, key=key)
    if problem:
        raise UserError([problem])
    try:
        # O_NONBLOCK: if the path became a FIFO since the stat, the open returns instead of waiting.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise UserError([Problem(f"cannot read the {kind}: {err.strerror or err}", file=str(path), key=key,
                                 fix="check the path and its permissions")]) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())  # what was opened, whatever the path names now
        problem = _mode_problem(info, kind, {"file": str(path), "key": key})
        if problem:
            raise UserError([problem])
        data = f.read(LIMITS[kind] + 1)
    if len(data) > LIMITS[kind]:  # it grew after the stat
        raise UserError([_size_problem(len(data), kind, {"file": str(path), "key": key})])
    return data


def read_text(path: Path | str, kind: str, *, key: str | None = None) -> str:
    """read_bytes, decoded as UTF-8 (a leading BOM dropped); other encodings are a located UserError."""
    return decode(read_bytes(path, kind, key=key), path, kind, key=key)


_UTF16_32_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                  (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def decode(data: bytes, path: Path | str, kind: str, *, key: str | None = None) -> str:
    """UTF-8 text of a user's file. UTF-16 and UTF-32 (what some Windows editors and PowerShell's `>`
    write) are named as such; any other bad byte is located by line and column."""
    where = {"file": str(path), "key": key}
    fix = f"save the {kind} as UTF-8"
    wide = _wide_encoding(data)
    if wide:
        name, why = wide
        raise UserError([Problem(f"is {name} text, not UTF-8 ({why})", **where, fix=fix)])
    try:
        # utf-8-sig: a leading UTF-8 BOM (common from Windows editors) is dropped instead of failing a parser.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        column = len(data[line_start:err.start].decode("utf-8", errors="replace")) + 1
        line = data.count(b"\n", 0, err.start) + 1
        raise UserError([Problem(f"not UTF-8 text: {err.reason} (byte 0x{data[err.start]:02x})", **where,
                                 line=line, column=column, fix=fix)]) from None


def _wide_encoding(data: bytes) -> tuple[str, str] | None:
    """(encoding, how it shows) for UTF-16 or UTF-32 text, else None."""
    for bom, name in _UTF16_32_BOMS:
        if data.startswith(bom):
            return name, f"it starts with a {name} byte-order mark"
    # Without a BOM, UTF-16 text of ASCII has a NUL in every other byte; UTF-8 text has none there.
    head = data[:64]
    if len(head) >= 4 and len(head) % 2 == 0:
        odd, even = head[1::2], head[0::2]
        if (odd.count(0) == len(odd) and 0 not in even) or (even.count(0) == len(even) and 0 not in odd):
            return "UTF-16", "every other byte is NUL"
    return None
