"""child/trace_summary.py, step_profile.py's pure part: a chrome trace of torch.profiler -> where a step's time goes. The trace here
is written by hand in the format torch.profiler exports (complete events, µs); the real profiler runs in
tests/commands/test_run_profile.py."""
from __future__ import annotations

import cProfile

import pytest

from swiftkit.child.step_profile import steps_spec
from swiftkit.child.trace_summary import python_top, summarize


def X(name, ts, dur, cat="user_annotation", **args):
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "cat": cat, "pid": 1, "tid": 1, "args": args}


def two_steps() -> dict:
    """Two steps of 1000 µs. Step 1: compute_loss [0,400) holding two layers [50,150) and [150,250), backward
    [400,800) holding a recompute [420,520), optimizer [800,900); step 2 the same shifted by 1000. Each layer
    launches one 80 µs kernel, the recompute one 60 µs kernel, the optimizer one 30 µs kernel; one
    cudaStreamSynchronize of 40 µs in compute_loss (the token accuracy's copy to the CPU) and one outside any
    label (the loop's NaN check)."""
    events = [X("swiftkit.steps", 0, 2000)]
    corr = 0
    for base in (0, 1000):
        events += [X("swiftkit.step", base, 1000),
                   X("swiftkit.compute_loss", base, 400), X("swiftkit.layer", base + 50, 100),
                   X("swiftkit.layer", base + 150, 100), X("swiftkit.backward", base + 400, 400),
                   X("swiftkit.recompute", base + 420, 100), X("swiftkit.optimizer", base + 800, 100)]
        for at, dur in ((base + 60, 80), (base + 160, 80), (base + 430, 60), (base + 810, 30)):
            corr += 1
            events.append(X("cudaLaunchKernel", at, 5, cat="cuda_runtime", correlation=corr))
            events.append(X("gemm", at + 10, dur, cat="kernel", correlation=corr))
        events.append(X("cudaStreamSynchronize", base + 300, 40, cat="cuda_runtime", correlation=0))
        events.append(X("cudaStreamSynchronize", base + 950, 40, cat="cuda_runtime", correlation=0))
    events.append(X("aten::mm", 60, 20, cat="cpu_op"))
    # the profiler's copies of the ranges on the GPU's timeline, later and longer: not the steps' wall time
    events += [X("swiftkit.steps", 5, 2500, cat="gpu_user_annotation"),
               X("swiftkit.step", 1005, 1900, cat="gpu_user_annotation")]
    return {"traceEvents": events}


def test_a_step_is_split_into_the_trainer_parts_with_their_gpu_time_and_launches():
    p = summarize(two_steps(), steps=2)
    assert p["wall_ms"] == 1.0 and p["step_walls_ms"] == [1.0, 1.0]
    labels = p["labels"]
    # own time: compute_loss 400 less its two layers = 200 µs; backward 400 less the recompute = 300 µs
    assert labels["compute_loss"]["wall_ms"] == 0.4 and labels["compute_loss"]["self_ms"] == 0.2
    assert labels["backward"]["self_ms"] == 0.3 and labels["recompute"]["self_ms"] == 0.1
    assert labels["layer"]["calls"] == 4 and labels["layer"]["self_ms"] == 0.2
    # the kernels count where they were launched: the innermost label
    assert labels["layer"]["gpu_ms"] == 0.16 and labels["layer"]["launches"] == 4
    assert labels["recompute"]["gpu_ms"] == 0.06 and labels["optimizer"]["gpu_ms"] == 0.03
    assert labels["backward"]["launches"] == 0
    # the time no label holds is the loop's: 1000 - 400 - 400 - 100 = 100 µs a step, with the NaN check's sync
    assert labels["loop"]["self_ms"] == 0.1 and labels["loop"]["syncs"] == 2
    assert labels["compute_loss"]["syncs"] == 2 and labels["compute_loss"]["sync_ms"] == 0.04
    assert p["syncs"] == 2.0 and p["kernel_launches"] == 4.0
    assert p["gpu_busy_ms"] == 0.25 and p["gpu_busy_fraction"] == 0.25
    assert list(labels)[0] == "backward"  # ordered by own time


def test_overlapping_kernels_count_once_in_the_busy_time():
    trace = {"traceEvents": [X("swiftkit.steps", 0, 100), X("a", 10, 50, cat="kernel"),
                             X("b", 30, 50, cat="kernel"), X("c", 90, 5, cat="gpu_memcpy")]}
    assert summarize(trace, steps=1)["gpu_busy_ms"] == 0.075


def test_a_label_still_open_when_the_window_closes_counts_up_to_it():
    trace = {"traceEvents": [X("swiftkit.steps", 0, 100), X("swiftkit.callbacks", 90, 50)]}
    p = summarize(trace, steps=1)
    assert p["labels"]["callbacks"]["wall_ms"] == 0.01 and p["labels"]["loop"]["self_ms"] == 0.09


def test_a_trace_without_the_window_is_an_error():
    with pytest.raises(ValueError, match="swiftkit.steps"):
        summarize({"traceEvents": [X("swiftkit.layer", 0, 1)]}, steps=1)


def test_operators_are_ranked_by_their_own_time():
    p = summarize(two_steps(), steps=2)
    assert p["ops"][0]["name"] == "aten::mm" and p["ops"][0]["self_ms"] == 0.01


def test_steps_spec():
    assert steps_spec("5") == (5, 3)
    assert steps_spec("5:0") == (5, 0)
    assert steps_spec("0:2") == (1, 2)


def busy(n: int) -> int:
    return sum(i * i for i in range(n))


def test_python_functions_are_ranked_by_own_time_per_step():
    stats = cProfile.Profile()
    stats.enable()
    for _ in range(4):
        busy(20000)
    stats.disable()
    top = python_top(stats, steps=2, seconds=0.5)
    assert top["wall_ms"] == 250.0 and top["steps"] == 2
    row = next(r for r in top["functions"] if r["name"].endswith("(busy)") or "(<genexpr>)" in r["name"])
    assert "test_trace_summary.py" in row["name"] and row["calls"] >= 2
