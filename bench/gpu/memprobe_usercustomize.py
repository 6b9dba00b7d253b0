"""Copied to the GPU host as usercustomize.py on the child's PYTHONPATH (bench/gpu/memory_diag.sh): every Python
process that used CUDA writes, at exit, its peak allocated and reserved memory and its argv to /tmp/memprobe/PID.json,
so a run's allocator overhead (reserved beyond allocated: fragmentation) can be read beside ms-swift's figure."""
import atexit
import json
import os
import sys


def _report() -> None:
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_initialized():
            return
        os.makedirs("/tmp/memprobe", exist_ok=True)
        with open(f"/tmp/memprobe/{os.getpid()}.json", "w") as f:
            json.dump({"argv": sys.argv, "max_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                       "max_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 3),
                       "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF")}, f)
    except Exception:  # noqa: BLE001 - a probe never breaks the process it watches
        pass


atexit.register(_report)
