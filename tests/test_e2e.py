"""The embedded default for real: the tiny model is built, the real `swift sft` trains it on
the CPU, the real `swift infer` answers the probes, and the run record holds the proof."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(demo_run):
    return demo_run


def test_demo_succeeds_and_verifies(demo):
    out, code, events, stderr = demo
    assert code == 0, (events[-5:], stderr[-3000:])
    runs = sorted(out.glob("v*-*"))
    assert len(runs) == 1
    record = json.loads((runs[0] / "swiftkit-run.json").read_text())
    assert record["schema"] == 1 and record["status"] == "succeeded" and record["exit_code"] == 0
    ver = record["verification"]
    assert ver["trained"] >= 60 and ver["exact_rate"] >= 0.8, ver
    assert ver["heldout"] > 0 and ver["missing"] == 0
    answers = [json.loads(x) for x in Path(ver["answers"]).read_text().splitlines()]
    retention = record["retention"]
    # every probe was really asked, identity and general in one call
    assert len(answers) == ver["trained"] + ver["heldout"] + retention["probes"]
    assert retention["probes"] >= 100 and 0 <= retention["score"] <= 1 and 0 <= retention["exact"] <= 1
    assert set(retention["by_category"]) >= {"arithmetic", "facts", "translation", "code"}
    assert record["summary"]["train_runtime"] > 0 and record["summary"]["final_loss"] is not None
    assert record["attempts"][0]["returncode"] == 0
    assert record["versions"]["ms-swift"] and record["recipe_hash"]
    identity = next(d for d in record["datasets"] if d.get("identity"))
    assert Path(identity["path"]).is_file() and len(identity["sha256"]) == 64
    assert (runs[0] / "swiftkit.log").read_text().count("global_step/max_steps") >= 2


def test_demo_events_stream(demo):
    _, _, events, _ = demo
    kinds = [e["event"] for e in events]
    assert "OutputDir" in kinds and "Progress" in kinds and "message" in kinds
    steps = [e["step"] for e in events if e["event"] == "Progress"]
    assert steps == sorted(steps) and steps[-1] == [e for e in events if e["event"] == "Progress"][-1]["max_steps"]


def test_checkpoint_discovery_after_a_real_run(demo):
    out, *_ = demo
    code, stdout, _ = run_cli("checkpoints", str(out), "--json")
    assert code == 0
    (run,) = json.loads(stdout)
    assert run["last"] and run["checkpoints"][-1]["complete"] is True
    code, stdout, _ = run_cli("checkpoints", str(out))
    assert "complete  [last, best]" in stdout
