"""Helpers shared by the benchmarks: timing whole commands, machine facts, markdown output."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SWIFTKIT = [sys.executable, "-m", "swiftkit.cli"]


def timed(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.run(argv, env={**os.environ, **(env or {})}, cwd=cwd or ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start, proc.returncode


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {gpus()}"


def gpus() -> str:
    """The GPUs nvidia-smi names, or "no GPU"."""
    try:
        found = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        found = []
    return ", ".join(found) or "no GPU"


def write(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text, encoding="utf-8")
    print(text)
    return path
