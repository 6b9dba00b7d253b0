"""results/step_profile.py: the profile a run leaves, read and printed as a table a user can act on."""
from __future__ import annotations

import json

from swiftkit.results.step_profile import call_lines, env, headline, lines, read, read_call, too_few_steps

PROFILE = {
    "steps": 5, "wall_ms": 500.0, "gpu_busy_ms": 100.0, "gpu_busy_fraction": 0.2, "kernel_launches": 18000.0,
    "syncs": 3.0, "sync_ms": 40.0,
    "labels": {"backward": {"calls": 5, "wall_ms": 250.0, "self_ms": 150.0, "gpu_ms": 60.0, "launches": 50000,
                            "syncs": 0, "sync_ms": 0.0},
               "recompute": {"calls": 140, "wall_ms": 100.0, "self_ms": 100.0, "gpu_ms": 20.0, "launches": 30000,
                             "syncs": 0, "sync_ms": 0.0}},
    "python": {"steps": 5, "wall_ms": 900.0, "functions": [
        {"name": "peft/tuners/lora/layer.py:700(forward)", "calls": 588.0, "self_ms": 42.5, "cumulative_ms": 300.0}]},
}


def test_the_table_says_where_a_step_goes(tmp_path):
    text = "\n".join(lines(PROFILE))
    assert "a step: 500.0 ms wall, GPU busy 100.0 ms (20 %), 18,000 kernel launches, 3 synchronisations" in text
    assert "backward" in text and "150.0" in text and "30%" in text  # own time and its share of the step
    assert "10,000" in text  # the backward's launches per step
    assert "cProfile, 5 more steps, 900 ms a step under it" in text
    assert "42.5 ms" in text and "peft/tuners/lora/layer.py:700(forward)" in text


def test_without_a_gpu_the_table_says_so():
    assert "(no GPU)" in lines({**PROFILE, "kernel_launches": 0.0})[1]


def test_read_takes_a_written_profile_and_nothing_else(tmp_path):
    assert read(None) is None and read(tmp_path) is None
    (tmp_path / "step-profile.json").write_text("{not json", encoding="utf-8")
    assert read(tmp_path) is None
    (tmp_path / "step-profile.json").write_text(json.dumps(PROFILE), encoding="utf-8")
    assert read(tmp_path)["steps"] == 5
    assert headline(PROFILE) == {"steps": 5, "wall_ms": 500.0, "gpu_busy_ms": 100.0, "gpu_busy_fraction": 0.2,
                                 "kernel_launches": 18000.0, "syncs": 3.0, "sync_ms": 40.0,
                                 "file": "step-profile.json"}


def test_the_engine_call_line_counts_forward_calls(tmp_path):
    call = {"wall_ms": 2000.0, "gpu_busy_fraction": 0.1, "kernel_launches": 90000.0,
            "labels": {"layer": {"self_ms": 1200.0}, "forward": {"calls": 100, "self_ms": 300.0},
                       "loop": {"self_ms": 500.0}}}
    (tmp_path / "answers-profile.json").write_text(json.dumps(call), encoding="utf-8")
    text = "\n".join(call_lines(read_call(tmp_path)))
    assert "2.00 s wall, 100 forward calls (20.0 ms each), GPU busy 10 %, 90,000 kernel launches" in text
    assert "layer 60 %" in text and "loop 25 %" in text


def test_the_training_process_is_told_the_steps_and_the_warm_up():
    assert env(5) == {"SWIFTKIT_PROFILE_STEPS": "5:3"}


def test_a_run_needs_warm_up_and_two_windows_of_steps():
    assert too_few_steps(5, 13) is None and too_few_steps(5, None) is None  # no plan (a CPU run): said after
    assert too_few_steps(5, 12) == ("--profile-steps 5 needs 13 steps (3 of warm-up, 5 under torch.profiler, "
                                    "5 under cProfile) and the run plans 12")
