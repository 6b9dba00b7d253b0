"""Data: GPUs people train on, with memory and dense bf16 throughput, for the plan's fit and time.

Memory in GiB as the driver reports it (a "24 GB" RTX 4090 has 23.99 GiB); TFLOPS are the vendor's
dense bf16 tensor figures (no sparsity). Used for estimates only: the plan says so.
"""
from __future__ import annotations

# name: (memory GiB, dense bf16 TFLOPS)
CARDS = {
    "RTX 3060": (12.0, 25.0),
    "RTX 4070 Ti": (12.0, 40.0),
    "RTX 4080": (16.0, 49.0),
    "RTX 4060 Ti 16GB": (16.0, 22.0),
    "T4": (15.0, 65.0),
    "RTX 3090": (24.0, 71.0),
    "RTX 4090": (23.99, 165.0),
    "RTX 4090D": (23.99, 147.0),
    "A10": (22.5, 125.0),
    "L4": (22.5, 121.0),
    "RTX 5090": (31.8, 209.0),
    "A40": (44.6, 150.0),
    "RTX A6000": (47.5, 155.0),
    "L40S": (44.6, 362.0),
    "A100 40GB": (39.4, 312.0),
    "A100 80GB": (79.3, 312.0),
    "H100": (79.2, 989.0),
    "H200": (139.8, 989.0),
}


def find_card(name: str) -> tuple[str, float, float] | None:
    """(name, GiB, TFLOPS) for a card named loosely ("4090", "NVIDIA H100 80GB HBM3", "A100-SXM4-80GB"):
    the card whose words (less "RTX") all appear in the name, the most specific first; else None."""
    words = set(name.lower().replace("-", " ").replace("_", " ").split()) - {"nvidia", "geforce", "rtx"}
    best = None
    for card, (gib, tflops) in CARDS.items():
        need = set(card.lower().split()) - {"rtx"}
        if need <= words and (best is None or len(need) > best[0]):
            best = (len(need), card, gib, tflops)
    return best[1:] if best else None
