"""`swiftkit run --profile-steps N` for real: the real `swift sft` on the tiny model, profiled by torch.profiler
and cProfile from inside its training process (child/step_profile.py), and verification's first engine call;
the table the user sees, the files it leaves, and a training that is not changed by being watched."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import run_cli

from swiftkit import paths


@pytest.fixture(scope="module")
def profiled(demo_run, tmp_path_factory):
    demo_out, code, _events, _err = demo_run
    assert code == 0
    out = tmp_path_factory.mktemp("profiled")
    code, stdout, stderr = run_cli("run", str(paths.RECIPES_DIR / "tiny-identity.yaml"),
                                   "--set", f"model.id={demo_out / 'model'}", "--set", f"output.dir={out}",
                                   "--profile-steps", "3")
    run_dir = next(out.glob("v*-*"))
    assert "SWIFTKIT_PROFILE_ANSWERS" not in os.environ  # later runs in this process are not profiled
    return code, stdout + stderr, run_dir, demo_out


@pytest.mark.e2e
def test_the_step_table_names_the_trainer_parts(profiled):
    code, text, run_dir, _ = profiled
    assert code == 0, text[-3000:]
    assert "step profile: 3 steps (torch.profiler), step-profile.json" in text
    assert "a step: " in text and "ms wall (no GPU)" in text
    table = text[text.index("step profile:"):]
    for part in ("compute_loss", "backward", "layer", "optimizer", "data", "loss", "lm_head", "token_acc", "loop"):
        assert f"\n  {part} " in table, part
    assert "Python functions of the training thread by own time (cProfile, 3 more steps" in text
    assert "run_backward" in table  # the autograd engine's call, the largest Python-side cost on this CPU


@pytest.mark.e2e
def test_the_profile_files_and_the_record(profiled):
    _, _, run_dir, _ = profiled
    p = json.loads((run_dir / "step-profile.json").read_text(encoding="utf-8"))
    assert p["steps"] == 3 and len(p["step_walls_ms"]) == 3 and p["wall_ms"] > 0
    assert p["labels"]["layer"]["calls"] == 3 * 2  # two decoder layers, no gradient checkpointing
    assert sum(r["self_ms"] for r in p["labels"].values()) == pytest.approx(p["wall_ms"], rel=0.02)
    assert p["python"]["steps"] == 3 and p["python"]["functions"]
    assert (run_dir / p["trace"]).stat().st_size > 0  # the trace, for Perfetto / chrome://tracing
    record = json.loads((run_dir / "swiftkit-run.json").read_text(encoding="utf-8"))
    assert record["step_profile"]["steps"] == 3 and record["step_profile"]["file"] == "step-profile.json"


@pytest.mark.e2e
def test_verification_first_engine_call_is_profiled(profiled):
    _, text, run_dir, _ = profiled
    call = json.loads((run_dir / "verify" / "answers-profile.json").read_text(encoding="utf-8"))
    forward = call["labels"]["forward"]["calls"]
    assert forward > 10  # one forward a generated token
    assert "verification's first engine call: " in text and f"{forward} forward calls" in text


@pytest.mark.e2e
def test_profiling_does_not_change_the_training(profiled):
    # the demo trained the same recipe on the same model unwatched: the same steps and the same final loss
    _, _, run_dir, demo_out = profiled
    watched = json.loads((run_dir / "swiftkit-run.json").read_text(encoding="utf-8"))["summary"]
    demo_record = next(Path(demo_out).glob("v*-*/swiftkit-run.json"))
    unwatched = json.loads(demo_record.read_text(encoding="utf-8"))["summary"]
    assert watched["global_step"] == unwatched["global_step"]
    assert watched["final_loss"] == unwatched["final_loss"]


def test_a_run_too_short_to_profile_is_refused_before_anything_runs(tmp_path):
    # the 24 GB preset plans 50 steps (74 rows, batch 16, 10 epochs); 30 profiled steps need 3 + 30 + 30
    code, stdout, stderr = run_cli("run", str(paths.RECIPES_DIR / "presets" / "24gb-identity.yaml"),
                                   "--set", f"output.dir={tmp_path / 'out'}", "--profile-steps", "30")
    assert code == 2
    assert "too short to profile; nothing was run" in stderr
    assert "--profile-steps 30 needs 63 steps (3 of warm-up, 30 under torch.profiler, 30 under cProfile) and the " \
           "run plans 50" in stderr
    assert "fix: --profile-steps 23, or train longer (train.epochs)" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "out").exists()
