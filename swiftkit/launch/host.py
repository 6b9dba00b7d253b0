"""Facts about this machine for the run record, read without importing torch."""
from __future__ import annotations

import os
import platform
import shutil
import socket

from swiftkit.process import capture


def host_info() -> dict:
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "gpus": gpus()}


def gpus() -> list[dict]:
    """GPU name and memory from nvidia-smi, when there is one."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = capture(["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"],
                      timeout=20)
    except Exception:  # noqa: BLE001 - a broken driver must not stop a run record
        return []
    found = []
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            found.append({"index": parts[0], "name": parts[1], "memory_mib": parts[2]})
    return found
