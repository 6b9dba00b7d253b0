"""The environment a child process runs in: which cards it sees, the allocator setting and cap, and the
hub libraries kept offline where everything is on disk (render.py builds the rest of each Invocation)."""
from __future__ import annotations

import os
from pathlib import Path

from swiftkit.recipe.models import GpuSection

CHILD_DIR = Path(__file__).resolve().parent / "child"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


# Set where everything a command needs is on disk: the hub libraries otherwise probe the network
# (a DNS lookup per dataset load) and wait on it when there is none.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def device_env(gpu: GpuSection) -> dict[str, str]:
    """Which cards the child sees, torchrun for several, and the allocator cap standing in for a smaller card."""
    env: dict[str, str] = {}
    if gpu.count == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""  # train on the CPU even where a GPU exists
    elif gpu.visible_devices:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu.visible_devices))
    else:
        # Without it a host with more GPUs than gpu.count gets naive model parallelism over all of them
        # (MS_SWIFT_4.md). A CUDA_VISIBLE_DEVICES the user exported already says which cards to use.
        env["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES") or ",".join(map(str, range(gpu.count)))
    if gpu.count > 0 and "PYTORCH_CUDA_ALLOC_CONF" not in os.environ:
        # Rows of varying length make the caching allocator fragment: on an H200, 7B LoRA at micro-batch 8
        # with rows of 135-1635 tokens reserved 87.1 GiB without this and 43.4 GiB with it, and the memory
        # plan (plan/memory.py) holds only with it (bench/results/gpu-memory). A user's own setting wins.
        env["PYTORCH_CUDA_ALLOC_CONF"] = "expandable_segments:True"
    if gpu.count > 0 and not gpu.cudnn_attention:
        # swiftkit/child/sitecustomize.py turns off cuDNN's attention in every process of the child: on an H200
        # the 24 GB identity preset trained in 20.4-21.1 s against 21.1-32.4 s with it, and verification's
        # engine took 13.7-16.6 s against 19.5-39.2 s (bench/results/step-profile)
        env["SWIFTKIT_NO_CUDNN_SDPA"] = "1"
    if gpu.emulate_memory_gb:
        # swiftkit/child/sitecustomize.py caps the allocator in the training process before the model loads
        env["SWIFTKIT_EMULATE_MEMORY_GB"] = _number(gpu.emulate_memory_gb)
    if "SWIFTKIT_NO_CUDNN_SDPA" in env or "SWIFTKIT_EMULATE_MEMORY_GB" in env:
        env["PYTHONPATH"] = str(CHILD_DIR)  # where that sitecustomize is
    return env
