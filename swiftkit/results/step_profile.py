"""The step profile a run leaves (`swiftkit run --profile-steps N`): step-profile.json in the run dir, written by
the training process (child/step_profile.py), read and printed here."""
from __future__ import annotations

import json
from pathlib import Path

FILE = "step-profile.json"
WARMUP = 3  # optimizer steps before the profiled ones: the first steps pay for one-off set-up
SHOWN = 12  # parts and Python functions printed; the file keeps them all


def env(steps: int) -> dict[str, str]:
    """What tells the training process's sitecustomize to profile (child/step_profile.py)."""
    return {"SWIFTKIT_PROFILE_STEPS": f"{steps}:{WARMUP}"}


def too_few_steps(steps: int, planned_steps: int | None) -> str | None:
    """Why N profiled steps cannot be had from a run of `planned_steps` (the plan's count), or None."""
    if planned_steps is None or planned_steps >= WARMUP + 2 * steps:
        return None
    return (f"--profile-steps {steps} needs {WARMUP + 2 * steps} steps ({WARMUP} of warm-up, {steps} under torch.profiler, "
            f"{steps} under cProfile) and the run plans {planned_steps}")


def read(run_dir: Path | None) -> dict | None:
    return _read(Path(run_dir) / FILE, "steps") if run_dir is not None else None


def _read(path: Path, needs: str) -> dict | None:
    """A profile the training process or the answer worker wrote, or None (none, unreadable, not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get(needs) else None


def headline(p: dict) -> dict:
    """What the run record keeps of it."""
    keys = ("steps", "wall_ms", "gpu_busy_ms", "gpu_busy_fraction", "kernel_launches", "syncs", "sync_ms")
    return {**{k: p.get(k) for k in keys}, "file": FILE}


def lines(p: dict) -> list[str]:
    """The anatomy of a step as a table: where its wall time goes, by the trainer's parts."""
    out = [f"step profile: {p['steps']} steps (torch.profiler), {FILE}",
           f"  a step: {p['wall_ms']:.1f} ms wall"
           + (f", GPU busy {p['gpu_busy_ms']:.1f} ms ({100 * p['gpu_busy_fraction']:.0f} %), "
              f"{p['kernel_launches']:,.0f} kernel launches, {p['syncs']:g} synchronisations"
              if p.get("kernel_launches") else " (no GPU)"),
           f"  {'part':<14} {'wall ms':>9} {'own ms':>9} {'own %':>6} {'GPU ms':>8} {'launches':>9}"]
    wall = p["wall_ms"] or 1.0
    for name, r in list(p.get("labels", {}).items())[:SHOWN]:
        out.append(f"  {name:<14} {r['wall_ms']:>9.1f} {r['self_ms']:>9.1f} {100 * r['self_ms'] / wall:>5.0f}% "
                   f"{r['gpu_ms']:>8.1f} {r['launches'] / p['steps']:>9,.0f}")
    python = p.get("python")
    if python:
        out.append(f"  Python functions of the training thread by own time (cProfile, {python['steps']} more steps, "
                   f"{python['wall_ms']:.0f} ms a step under it):")
        for r in python["functions"][:SHOWN // 2]:
            out.append(f"    {r['self_ms']:>8.1f} ms  {r['calls']:>7g} calls  {r['name'][:90]}")
    return out


ANSWERS_FILE = "answers-profile.json"  # verification's first engine call, in the run's verify/ dir


def read_call(folder: Path) -> dict | None:
    return _read(Path(folder) / ANSWERS_FILE, "labels")


def call_lines(p: dict) -> list[str]:
    """Verification's first engine call: one generate of all its probes, a forward per token."""
    forward = p["labels"].get("forward", {})
    calls = forward.get("calls", 0)
    out = [f"verification's first engine call: {p['wall_ms'] / 1000:.2f} s wall, {calls} forward calls"
           + (f" ({p['wall_ms'] / calls:.1f} ms each)" if calls else "")
           + (f", GPU busy {100 * p['gpu_busy_fraction']:.0f} %, {p['kernel_launches']:,.0f} kernel launches"
              if p.get("kernel_launches") else "") + f" ({ANSWERS_FILE})"]
    top = [(n, r) for n, r in p["labels"].items()][:4]
    out.append("  own time: " + ", ".join(f"{n} {100 * r['self_ms'] / (p['wall_ms'] or 1):.0f} %" for n, r in top))
    return out
