"""The only module that starts processes."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Captured:
    returncode: int
    stdout: str
    stderr: str


def capture(argv: list[str], *, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float | None = 600) -> Captured:
    """Run a short helper command to completion and capture its output (no shell)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(argv, env=full_env, input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)
    return Captured(proc.returncode, proc.stdout, proc.stderr)
