"""export: preflight refusals on fake dirs (nothing starts), then the real `swift export` of the demo run."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import run_cli
from test_targets import trained

from swiftkit.results import exports


def test_an_existing_output_is_never_overwritten(tmp_path):
    run = trained(tmp_path)
    (run / "checkpoint-10-merged").mkdir()
    (run / "checkpoint-10-merged" / "keep.txt").write_text("mine")
    code, _, err = run_cli("export", str(run))
    assert code == 2
    assert "checkpoint-10-merged already exists (not a complete export); swiftkit never overwrites an export" in err
    assert "fix: pass --output NEW_DIR, or delete it first" in err
    assert (run / "checkpoint-10-merged" / "keep.txt").read_text() == "mine"
    assert not (run / "exports").exists()


def test_every_preflight_problem_at_once(tmp_path):
    run = trained(tmp_path)
    leftover = run / ".checkpoint-10-merged-int4.partial-999999"
    leftover.mkdir()
    code, _, err = run_cli("export", str(run), "--quant-bits", "4", "--quant-method", "gptq")
    assert code == 2 and "nothing was exported" in err
    assert "is what an earlier export to checkpoint-10-merged-int4 left when it was cut off" in err
    assert "--quant-method gptq needs calibration data" in err and "--quant-method bnb, which needs none" in err
    assert "the base model /models/base (named in" in err and "is not there any more" in err
    assert "Traceback" not in err


def test_bnb_without_bitsandbytes_or_a_gpu(tmp_path):
    run = trained(tmp_path)
    code, _, err = run_cli("export", str(run), "--quant-bits", "4")
    assert code == 2
    assert ("needs the Python package bitsandbytes" in err) or ("no CUDA GPU" in err or "none is visible" in err)


def test_a_full_model_has_nothing_to_merge(tmp_path):
    from test_checkpoints import safetensors_bytes

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(safetensors_bytes({"w": ("F32", [16, 16])}))
    code, _, err = run_cli("export", str(model))
    assert code == 2 and "is a full model already (a model dir): there is no adapter to merge" in err




@pytest.mark.e2e
def test_export_merges_verifies_and_records(demo_run, tmp_path):
    out, code, *_ = demo_run
    assert code == 0
    final = tmp_path / "merged"
    code, _, err = run_cli("export", str(out), "--output", str(final))
    assert code == 0, err[-3000:]
    assert "same greedy answer as base + adapter:" in err and "(100.0%; needed 100% in float32)" in err
    info = json.loads((final / exports.MARKER).read_text())
    assert info["verified"] is True and info["agreement"] == 1.0 and info["probes"] >= 150
    assert set(info["sha256"]) == {"model.safetensors"} and info["size_bytes"] > 500_000
    assert info["versions"]["ms-swift"]
    assert not list(final.parent.glob(".merged.partial-*"))
    run_dir = next(out.glob("v*-*"))
    record = json.loads((run_dir / "swiftkit-run.json").read_text())
    assert record["exports"][-1]["path"] == str(final) and record["exports"][-1]["verified"] is True
    # the merged model is a model of its own: chat with it, and the second export there is refused
    code, stdout, _ = run_cli("chat", str(final), "--message", "你是谁？")
    assert code == 0 and "Swift-Robot" in stdout
    code, _, err = run_cli("export", str(out), "--output", str(final))
    assert code == 2 and "already exists (a complete export)" in err


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_disk_full_during_the_merge(demo_run, tmp_path):
    out, code, *_ = demo_run
    disk = tmp_path / "small"
    disk.mkdir()
    # room for the weights (the preflight's estimate), not for the whole export (weights, tokenizer, args)
    weights = (out / "model" / "model.safetensors").stat().st_size
    size_k = weights // 1024 + 48
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", str(disk)], check=True)
    try:
        code, _, err = run_cli("export", str(out), "--output", str(disk / "merged"), "--no-verify")
        assert code == 9, err[-2000:]
        assert "export failed: The disk is full." in err and "free space where the export goes" in err
        assert f"nothing was left at {disk / 'merged'}" in err
        assert list(disk.iterdir()) == []  # neither the export nor its staging dir
    finally:
        subprocess.run(["umount", str(disk)], check=False)
