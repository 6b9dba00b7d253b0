"""Failures in the real ms-swift child, recovered or explained: an OOM injected inside the
training process is recovered by the ladder with the effective batch unchanged and the
resume taken; a SIGKILL mid-run followed by `swiftkit run` again resumes, skipping a
checkpoint cut off mid-save; SIGINT stops cleanly with no process left."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from swiftkit.commands.demo import DEMO_RECIPE, make_tiny_model
from swiftkit.results.checkpoints import find_runs

pytestmark = pytest.mark.e2e

RECIPE = """\
model: {{id: {model}, model_type: qwen2, template: qwen2_5, dtype: float32}}
identity: {{name: Swift-Robot, author: CSDN 迪菲赫尔曼}}
datasets: [identity]
lora: {{rank: 32, alpha: 64}}
train:
  epochs: 4
  learning_rate: 1.0e-2
  warmup_ratio: 0
  effective_batch_size: 25
  micro_batch_size: auto
  max_length: 128
  gradient_checkpointing: false
  logging_steps: 1
  save_steps: 2
  save_total_limit: 10
gpu: {{count: 0}}
output: {{dir: out}}
verify: {{enabled: false}}
swift: {{report_to: none}}
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(DEMO_RECIPE, tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def recipe(tmp_path, model):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(model=model), encoding="utf-8")
    return path


def record_of(output: Path) -> dict:
    newest = find_runs(output)[-1]
    return json.loads((newest.path / "swiftkit-run.json").read_text())


def logged_steps(run_dir: Path) -> list[int]:
    steps = []
    for line in (run_dir / "logging.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "global_step/max_steps" in row and "loss" in row:
            steps.append(int(row["global_step/max_steps"].split("/")[0]))
    return steps


def test_oom_ladder_recovers_and_resumes(recipe, fault_env):
    fault_env(OOM_ABOVE_MICRO_BATCH=12, OOM_AFTER_STEP=6)  # 25 per step "does not fit" once 6 steps are done
    code, _, err = run_cli("run", str(recipe))
    assert code == 0, err[-3000:]
    assert "out of memory (attempt 1); retrying with micro-batch 25 x accumulation 1 -> 5 x 5" in err
    record = record_of(recipe.parent / "out")
    first, second = record["attempts"]
    assert first["diagnosis"]["kind"] == "cuda_oom" and "CUDA out of memory" in first["diagnosis"]["evidence"]
    assert first["next"]["step"] == "halve_micro_batch"
    assert (first["micro_batch"], first["gradient_accumulation"]) == (25, 1)
    assert (second["micro_batch"], second["gradient_accumulation"]) == (5, 5)  # effective batch still 25
    assert second["resume_from"].endswith("checkpoint-6")
    steps = logged_steps(Path(second["run_dir"]))
    assert steps and min(steps) > 6, "no finished step is trained twice"
    assert record["status"] == "succeeded" and record["checkpoint"].endswith("checkpoint-12")
    first_copy = json.loads((Path(first["run_dir"]) / "swiftkit-run.json").read_text())
    assert first_copy["status"] == "retrying"  # the failed attempt's own dir says what became of it


def test_oom_ladder_exhausted_is_explained(recipe, fault_env):
    fault_env(OOM_ABOVE_MICRO_BATCH=0)  # nothing fits
    text = recipe.read_text().replace("swift: {report_to: none}", "swift: {report_to: none}\non_oom: {max_retries: 1}")
    recipe.write_text(text)
    code, _, err = run_cli("run", str(recipe))
    assert code == 3, err[-2000:]
    assert "swiftkit: The GPU ran out of memory. Tried to allocate 354.00 MiB" in err
    assert "evidence: torch.OutOfMemoryError: CUDA out of memory." in err
    assert "the OOM ladder is exhausted; tried, in order:\n  - micro-batch 25 x accumulation 1 -> 5 x 5" in err
    assert "try: a card with more memory, or more rungs in the recipe's on_oom.steps" in err
    assert record_of(recipe.parent / "out")["status"] == "failed"


def _start(recipe: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "swiftkit.cli", "run", str(recipe), "--events"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=recipe.parent)


def _wait_for_step(proc: subprocess.Popen, step: int) -> None:
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        if line.startswith("{") and json.loads(line).get("event") == "Progress" and json.loads(line)["step"] >= step:
            return
        assert time.monotonic() < deadline
    raise AssertionError("the run ended before the step was reached")


def _sft_pids(marker: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
                state = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in cmd and "swift" in cmd and state != "Z" and int(entry) != os.getpid():
                pids.append(int(entry))
    return pids


def test_sigkill_then_run_again_resumes_skipping_a_truncated_checkpoint(recipe, fault_env):
    fault_env(STEP_SLEEP=0.7)
    out = recipe.parent / "out"
    proc = _start(recipe)
    _wait_for_step(proc, 7)  # checkpoints 2, 4 and 6 are saved by now
    for pid in _sft_pids(str(out)):
        if "cli/sft.py" in open(f"/proc/{pid}/cmdline", "rb").read().decode():
            os.kill(pid, signal.SIGKILL)  # the training process dies (as under the host's OOM killer)
    proc.stdout.read()
    assert proc.wait(timeout=60) == 4  # host_oom: the training process was killed
    killed = record_of(out)
    assert killed["status"] == "failed" and killed["diagnosis"]["kind"] == "host_oom"
    run_dir = Path(killed["run_dir"])
    newest = max(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    weights = newest / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a save cut off mid-write
    expected = int(newest.name.split("-")[1]) - 2

    os.environ.pop("SWIFTKIT_TEST_STEP_SLEEP")
    code, _, err = run_cli("run", str(recipe))
    assert code == 0, err[-3000:]
    assert f"resuming the unfinished run from {run_dir / f'checkpoint-{expected}'} (step {expected})" in err
    record = record_of(out)
    assert record["resumed_from"]["step"] == expected and record["status"] == "succeeded"
    assert min(logged_steps(Path(record["run_dir"]))) > expected
    assert run_cli("run", str(recipe))[0] == 0
    again = record_of(out)
    assert again["status"] == "succeeded" and "resumed_from" not in again, \
        "a finished run is never resumed: the next run starts fresh"
    assert again["run_dir"] != record["run_dir"]


def test_sigint_stops_cleanly(recipe, fault_env):
    fault_env(STEP_SLEEP=0.7)
    out = recipe.parent / "out"
    proc = _start(recipe)
    _wait_for_step(proc, 2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C reaches swiftkit; it forwards it to the child's group
    rest = proc.stdout.read()
    assert proc.wait(timeout=60) == 130, rest[-2000:]
    time.sleep(0.5)
    assert _sft_pids(str(out)) == [], "no ms-swift process may outlive an interrupted run"
    record = record_of(out)
    assert record["status"] == "interrupted" and record["exit_code"] == 130
