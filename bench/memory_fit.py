"""Fits the memory plan's three constants (swiftkit/plan/memory.py: ACTIVATION_SCALE, LOGIT_BYTES, ALLOCATOR_GIB)
by least squares on the relative error of the runs marked `"split": "fit"` in bench/results/gpu-memory, and prints
them with the error of every other run under them. The plan's structure (weights, trainable state, activations
counted per layer, logits kept) is swiftkit's; only the three numbers come from here.

    python bench/memory_fit.py
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_table import memplan, runs, setup_of, shape_of  # noqa: E402



def planned(run: dict, scale: float, logit_bytes: float) -> float:
    """The plan of a run with these two constants and no allocator term."""
    saved = memplan.ACTIVATION_SCALE, memplan.LOGIT_BYTES, memplan.ALLOCATOR_GIB
    try:
        memplan.ACTIVATION_SCALE, memplan.LOGIT_BYTES, memplan.ALLOCATOR_GIB = scale, logit_bytes, 0.0
        return sum(memplan.plan_memory(shape_of(run), setup_of(run)).breakdown.values())
    finally:
        memplan.ACTIVATION_SCALE, memplan.LOGIT_BYTES, memplan.ALLOCATOR_GIB = saved


def fitted_on(run: dict) -> bool:
    return run["split"] == "fit"


def fit(runs_: list[dict]) -> tuple[float, float, float]:
    """The constants that minimise the squared relative error on these runs: a grid over the two that scale
    (the plan is not linear in them: with checkpointing the larger of two parts counts), the allocator term
    solved for each."""
    measured = np.array([r["measured_gib"] for r in runs_])
    weight = 1 / measured**2
    best = None
    for scale in np.arange(0.70, 1.05, 0.005):
        for logit_bytes in np.arange(12.0, 17.0, 0.05):
            base = np.array([planned(r, scale, logit_bytes) for r in runs_])
            allocator = float(np.sum(weight * (measured - base)) / np.sum(weight))
            score = float(np.sum(weight * (base + allocator - measured) ** 2))
            if best is None or score < best[0]:
                best = (score, round(float(scale), 3), round(float(logit_bytes), 2), round(allocator, 2))
    return best[1:]


def main() -> None:
    # swiftkit's allocator setting (rows of one length fragment nothing without it); liger's logits are not planned
    every = [r for r in runs() if (r["expandable_segments"] or not r.get("shortest")) and "no-expandable" not in r["name"]
             and not setup_of(r).liger]
    scale, logit_bytes, allocator = fit([r for r in every if fitted_on(r)])
    print(f"fitted on {len([r for r in every if fitted_on(r)])} runs: ACTIVATION_SCALE = {scale}, "
          f"LOGIT_BYTES = {logit_bytes}, ALLOCATOR_GIB = {allocator:+.2f}")
    errors = [((planned(r, scale, logit_bytes) + allocator - r["measured_gib"]) / r["measured_gib"], r) for r in every]
    for group, rows in (("fitted", [e for e in errors if fitted_on(e[1])]),
                        ("held out", [e for e in errors if not fitted_on(e[1])])):
        worst = max(rows, key=lambda e: abs(e[0]))
        print(f"{group}: {len(rows)} runs, within {abs(worst[0]):.1%} (worst {worst[1]['name']}), "
              f"mean {np.mean([abs(e[0]) for e in rows]):.1%}")
    for err, r in sorted(errors, key=lambda e: -abs(e[0]))[:int(sys.argv[1]) if len(sys.argv) > 1 else 12]:
        print(f"  {err:+.1%}  {r['name']} ({r['split']})")


if __name__ == "__main__":
    main()
