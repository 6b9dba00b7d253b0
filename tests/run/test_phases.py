"""run/phases.py: seconds per phase of a swift child, from the lines of real ms-swift output as they arrive."""
from __future__ import annotations

from pathlib import Path

from swiftkit.run.phases import PhaseClock, infer_clock

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


def feed(clock: PhaseClock, log: str) -> float:
    """Each line of a real log arrives one second after the one before it."""
    lines = (LOGS / log).read_text(encoding="utf-8").splitlines()
    for second, line in enumerate(lines):
        clock.line(float(second), line)
    return float(len(lines))


def test_sft_phases_follow_the_order_of_a_real_gpu_run():
    clock = PhaseClock()
    end = feed(clock, "gpu-h100-microbatch16.log")
    found = clock.durations(end)
    assert list(found) == ["start", "arguments", "model_load", "data", "setup", "training", "save_exit"]
    assert all(v >= 0 for v in found.values()) and sum(found.values()) == end
    assert found["start"] == 2.0  # `[INFO:swift] rank: ...` is the log's third line
    assert found["training"] > 0 and found["model_load"] >= 1


def test_infer_phases_of_a_real_run():
    clock = infer_clock()
    end = feed(clock, "cpu-tiny-infer.log")
    found = clock.durations(end)
    assert list(found) == ["start", "arguments", "model_load", "setup", "generation"]
    assert sum(found.values()) == end and found["generation"] > 0


def test_a_child_that_dies_early_keeps_what_it_reached():
    clock = PhaseClock()
    clock.line(3.0, "[INFO:swift] rank: -1, local_rank: -1, world_size: 1, local_world_size: 1")
    assert clock.durations(5.5) == {"start": 3.0, "until_exit": 2.5}
