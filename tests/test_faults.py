"""Faults a long run meets, made to happen for real in the ms-swift child (CPU, tiny model): a second
run on the same output dir, a hang, the step count of a run whose last step is not a logged one, a
missing `swift`, and run records or trainer states that are corrupt or cut off."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli
from test_recovery import RECIPE, _sft_pids, _start, _wait_for_step, record_of

from swiftkit.results.checkpoints import find_runs
from swiftkit.run import lock as runlock
from swiftkit.run.resume import find_resumable
from swiftkit.tinymodel import build_tiny_model, identity_corpus



@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random tiny model (no general fine-tune): these faults need a run, not a good model."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                            identity_corpus([{"query": "Who are you?", "response": "I am Swift-Robot."}]))


@pytest.fixture
def recipe(tmp_path, model):
    path = tmp_path / "recipe.yaml"
    # the random tokenizer knows few words: rows are longer in its tokens than in the demo model's
    path.write_text(RECIPE.format(model=model).replace("max_length: 128", "max_length: 1024"), encoding="utf-8")
    return path


@pytest.mark.e2e
def test_a_second_run_on_the_same_output_dir_refuses_at_once_and_names_the_first(recipe, fault_env):
    fault_env(STEP_SLEEP=0.7)
    out = recipe.parent / "out"
    first = _start(recipe)
    try:
        _wait_for_step(first, 1)
        start = time.monotonic()
        code, _, err = run_cli("run", str(recipe))
        assert code == 2 and time.monotonic() - start < 30, err[-2000:]
        assert f"{out} is in use by another swiftkit run (pid {first.pid} on " in err
        assert "fix: wait for it to finish (or stop it), or give this run another output.dir" in err
        assert "Traceback" not in err

        first.kill()  # swiftkit dies; its training process trains on, and still holds the dir
        first.wait(timeout=30)
        assert _sft_pids(str(out)), "the training process outlives a killed swiftkit"
        assert run_cli("run", str(recipe))[0] == 2
    finally:
        first.kill()
        lock = out / ".swiftkit" / runlock.LOCK_NAME
        deadline = time.monotonic() + 60
        while _lock_holders(lock) and time.monotonic() < deadline:
            for pid in _lock_holders(lock):
                if pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
    assert os.getpid() not in _lock_holders(lock), "a refused run must not keep the lock open"
    with runlock.hold(out, recipe):  # every holder is dead: the lock is free, nothing stale is left
        pass


def _lock_holders(lock: Path) -> list[int]:
    """The live processes with the lock file open (from /proc: whoever they are)."""
    holders = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[0]
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if state != "Z" and os.readlink(f"/proc/{entry}/fd/{fd}") == str(lock):
                    holders.append(int(entry))
                    break
            except OSError:
                continue
    return holders


@pytest.mark.e2e
def test_a_hung_child_is_stopped_as_stalled_and_the_run_resumes(recipe, fault_env):
    fault_env(HANG_AT_STEP=5)
    # 45 s: longer than any quiet spell of a healthy start-up on a busy 2-core machine (model load, imports)
    text = recipe.read_text().replace("output: {dir: out}", "output: {dir: out, stall_timeout: 45}")
    recipe.write_text(text)
    start = time.monotonic()
    code, _, err = run_cli("run", str(recipe))
    assert code == 13, err[-3000:]
    assert time.monotonic() - start < 300
    assert "swiftkit: The run stalled: no output for 4" in err and "so swiftkit stopped it" in err
    assert "try: run again: it resumes from the last complete checkpoint" in err
    out = recipe.parent / "out"
    time.sleep(0.5)
    assert _sft_pids(str(out)) == [], "the hung process group is stopped"
    record = record_of(out)
    assert record["status"] == "failed" and record["exit_code"] == 13
    assert record["diagnosis"]["kind"] == "stalled"

    os.environ.pop("SWIFTKIT_TEST_HANG_AT_STEP")
    code, _, err = run_cli("run", str(recipe))
    assert code == 0, err[-3000:]
    assert "resuming the unfinished run from" in err and "checkpoint-4 (step 4)" in err


@pytest.mark.e2e
def test_the_summary_counts_the_last_step_not_the_last_logged_one(recipe):
    text = recipe.read_text().replace("logging_steps: 1", "logging_steps: 5").replace("epochs: 4", "epochs: 3")
    recipe.write_text(text.replace("save_steps: 2", "save_steps: 100"))  # 3 epochs x 3 steps = 9 steps
    code, _, err = run_cli("run", str(recipe))
    assert code == 0, err[-3000:]
    record = record_of(recipe.parent / "out")
    assert record["summary"]["global_step"] == 9 and record["checkpoint"].endswith("checkpoint-9")
    assert "  steps 9, final loss" in err

    # the same run's files, corrupted: clear errors or safe behaviour, never a traceback
    run_dir = Path(record["run_dir"])
    (run_dir / "swiftkit-run.json").write_text('{"schema": 1, "status": "succ', encoding="utf-8")
    code, out, err = run_cli("checkpoints", str(recipe.parent / "out"))
    assert code == 0 and "checkpoint-9" in out and "complete" in out
    code, _, err = run_cli("verify", str(run_dir / "checkpoint-9"), "--no-retention")
    assert code == 2 and "run record is not valid JSON" in err and "Traceback" not in err
    assert "fix: restore it or delete it" in err
    assert find_resumable(recipe.parent / "out", "any") is None  # an unreadable record is never resumed
    (run_dir / "checkpoint-9" / "trainer_state.json").write_text('{"global_step": 9, "log_hi', encoding="utf-8")
    code, out, _ = run_cli("checkpoints", str(recipe.parent / "out"))
    assert code == 0 and "INCOMPLETE: trainer_state.json: not valid JSON (cut short?)" in out


def test_a_missing_swift_is_a_clear_error(recipe, monkeypatch, tmp_path):
    monkeypatch.setenv("SWIFTKIT_SWIFT", str(tmp_path / "no-such-swift"))
    code, _, err = run_cli("run", str(recipe))
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    assert "no-such-swift" in err and "SWIFTKIT_SWIFT" in err


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_the_disk_filling_up_during_training_is_diagnosed_and_the_last_checkpoint_kept(recipe, tmp_path):
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    # room for the data, the logs and two checkpoints of ~0.9 MB each: the third save fills it
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2600k", "tmpfs", str(disk)], check=True)
    try:
        recipe.write_text(recipe.read_text().replace("output: {dir: out}", f"output: {{dir: {disk}}}"))
        code, _, err = run_cli("run", str(recipe))
        assert code == 9, err[-3000:]
        assert "Traceback" not in err.split("evidence:")[0]
        assert "swiftkit: The disk is full" in err or "No space left on device" in err
        runs = find_runs(disk)
        last = runs[-1].last_complete()
        assert last is not None and last.step in (2, 4), [c.path for c in runs[-1].checkpoints]
        written = (runs[-1].path / "swiftkit-run.json").is_file()
        record = json.loads((runs[-1].path / "swiftkit-run.json").read_text()) if written else None
        if record is not None and record["status"] == "failed":
            assert record["diagnosis"]["kind"] == "disk_full"
        else:
            assert "the run record could not be written to" in err and "No space left on device" in err
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_swift_of_another_major_version_is_refused(recipe, monkeypatch, tmp_path):
    """`swift` on PATH from another environment (ms-swift 3.x there): its flags differ, so no run."""
    site = tmp_path / "other-env"
    dist = site / "ms_swift-3.9.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ms-swift\nVersion: 3.9.0\n")
    python = tmp_path / "python3"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} -S \"$@\"\n")
    python.chmod(0o755)
    swift = tmp_path / "swift"
    swift.write_text(f"#!{python}\nraise SystemExit('not reached')\n")
    swift.chmod(0o755)
    monkeypatch.setenv("SWIFTKIT_SWIFT", str(swift))
    code, _, err = run_cli("run", str(recipe))
    assert code == 2, err[-2000:]
    assert f"{swift} (from SWIFTKIT_SWIFT) starts ms-swift 3.9.0" in err and "checked against ms-swift 4." in err
    assert not (recipe.parent / "out").exists()


def test_an_abort_at_shutdown_after_the_work_is_saved_still_counts_as_trained(recipe, fault_env):
    """gloo's teardown abort (cpu-tiny-ddp2-teardown-abort.log), injected into the real child after it saved:
    training finished and the last checkpoint is complete, so the run is trained, with the abort noted."""
    recipe.write_text(recipe.read_text().replace("epochs: 4", "epochs: 1"))
    fault_env(ABORT_AT_EXIT=1)
    code, _, err = run_cli("run", str(recipe))
    assert code == 0, err[-3000:]
    assert "a training process then aborted while shutting down (terminate called without an active exception)" \
           in err
    record = record_of(recipe.parent / "out")
    assert record["status"] == "succeeded" and record["attempts"][0]["returncode"] != 0
    assert record["attempts"][0]["aborted_at_exit"] == "terminate called without an active exception"
