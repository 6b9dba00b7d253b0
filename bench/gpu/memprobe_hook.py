"""On the GPU host, imported at start-up by every Python process of a grid run: copied into /tmp/site (on the
children's PYTHONPATH) with a line `import memprobe_hook` in a .pth file of the host's site-packages (user site
is off there, so a usercustomize would not load, and swiftkit's own sitecustomize takes that name). Every process
that used CUDA writes, at exit, its peak allocated and reserved memory and its argv to /tmp/memprobe/PID.json, so
a run's allocator cache (reserved beyond allocated) can be read beside ms-swift's figure. Grid 7's command:

    SP=$(python3 -c "import site; print(site.getsitepackages()[0])")
    cp bench/gpu/memprobe_hook.py /tmp/site/ && echo "import memprobe_hook" > $SP/zz_memprobe.pth
    CASES=bench/gpu/memory_cases_7.json SIZES="smol 0.5b" bash bench/gpu/memory.sh OUT; rm $SP/zz_memprobe.pth
"""
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
