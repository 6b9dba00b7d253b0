"""Runs at start-up of every Python process of a swiftkit-started ms-swift child (it is on their
PYTHONPATH only when the recipe asks for it). In the training process, and only there, it caps
the CUDA caching allocator at SWIFTKIT_EMULATE_MEMORY_GB before any model loads, so a large
card can stand in for a 24 GB one. The CUDA context (~0.5 GiB) lies outside the cap.
"""
import os
import sys


def _is_training_process() -> bool:
    # `swift sft` re-executes .../swift/cli/sft.py (directly or under torchrun); only that process trains.
    return any(arg.replace("\\", "/").endswith("swift/cli/sft.py") for arg in sys.argv[:1])


def _cap_memory(gib: float) -> None:
    import torch

    if not torch.cuda.is_available():
        return
    local = os.environ.get("LOCAL_RANK")  # under torchrun each rank caps only its own device
    devices = [int(local)] if local is not None else range(torch.cuda.device_count())
    for device in devices:
        total = torch.cuda.get_device_properties(device).total_memory
        fraction = min(1.0, gib * 2**30 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
    print(f"[swiftkit] CUDA allocator capped at {gib:g} GiB per device", file=sys.stderr, flush=True)


_cap = os.environ.get("SWIFTKIT_EMULATE_MEMORY_GB")
if _cap and _is_training_process():
    _cap_memory(float(_cap))
