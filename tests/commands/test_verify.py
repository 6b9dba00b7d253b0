"""`swiftkit verify` on the demo's real checkpoint: identity and retention without training."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e


def test_verify_a_checkpoint_without_training(demo_run, tmp_path):
    out, code, *_ = demo_run
    assert code == 0
    run_dir = next(out.glob("v*-*"))
    code, _, err = run_cli("verify", str(out))
    assert code == 0, err[-3000:]
    assert "exact answers, trained probes" in err and "retention score" in err
    assert "answered exactly as the base model" in err
    record = json.loads((run_dir / "swiftkit-run.json").read_text())
    entry = record["verifications"][-1]
    assert entry["retention"]["probes"] >= 100 and entry["scorecard"]["trained"] >= 60
    # the base model's answers were computed by the run and reused here (cached by fingerprint)
    folder = run_dir / "verify" / Path(record["checkpoint"]).name
    assert (folder / "answers.jsonl").is_file() and not (folder / "base-answers.jsonl").exists()


def test_a_broken_probe_file_is_refused_before_anything_runs(demo_run, tmp_path):
    out, *_ = demo_run
    bad = tmp_path / "probes.jsonl"
    bad.write_text('{"id": "a", "query": "ok"}\n{"id": "b"}\n', encoding="utf-8")
    code, _, err = run_cli("verify", str(out), "--general-probes", str(bad))
    assert code == 2 and "1 broken probe row(s)" in err and f"{bad}:2" in err and "Traceback" not in err


def test_thresholds_fail_the_verification_with_the_reason(demo_run):
    out, *_ = demo_run
    code, _, err = run_cli("verify", str(out), "--min-retention", "0.99")
    assert code == 1
    assert "is below verify.min_retention 0.99: the tune changed the model's general answers" in err


def test_checkpoints_of_something_that_is_not_a_lora_run_are_refused_before_anything_loads(demo_run):
    out, *_ = demo_run
    code, _, err = run_cli("verify", str(out / "model"), "--checkpoints", "all")
    assert code == 2 and "Traceback" not in err
    assert f"--checkpoints all: {out / 'model'} is a model dir, not a checkpoint of a LoRA run" in err
    assert "fix: verify it alone (drop --checkpoints)" in err
