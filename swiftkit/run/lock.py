"""One `swiftkit run` per output dir at a time: an advisory lock (the filelock library, flock on Unix)
on OUTPUT/.swiftkit/run.lock, with who holds it beside it in run.lock.json.

The training child inherits the lock's descriptor, so a run whose swiftkit was killed still holds the
dir while its `swift sft` trains on; when every holder has exited the kernel drops the lock, so a dead
run never leaves it held (no pid file to go stale).
"""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from swiftkit.errors import Problem, UserError

LOCK_NAME = "run.lock"


@contextmanager
def hold(output_dir: Path, recipe: Path, name: str = LOCK_NAME) -> Iterator[int | None]:
    """Hold the output dir for this run; yields the lock's file descriptor (for the training child to
    inherit). UserError naming the holder when another run has it. `name`: the lock file (each node of a
    run over several nodes holds its own in the shared dir)."""
    state = output_dir / ".swiftkit"
    state.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(state / name), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise busy(output_dir, state / f"{name}.json") from None
    info = state / f"{name}.json"
    try:
        info.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "recipe": str(recipe),
                                    "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}),
                        encoding="utf-8")
        yield _fd(lock)
    finally:
        lock.release()


def _fd(lock: FileLock) -> int | None:
    context = getattr(lock, "_context", None)
    return getattr(context, "lock_file_fd", None)


def busy(output_dir: Path, info_path: Path) -> UserError:
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        who = (f"pid {info['pid']} on {info['host']}, started {info['started_at']}, recipe {info['recipe']}; "
               "its training process may still be running if that pid is gone")
    except (OSError, ValueError, KeyError):
        who = "its details are unreadable"
    return UserError([Problem(f"{output_dir} is in use by another swiftkit run ({who})",
                              fix="wait for it to finish (or stop it), or give this run another output.dir")],
                     headline=f"{output_dir}: already training; nothing was run")
