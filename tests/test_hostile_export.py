"""Hostile input, export: an output inside what is exported, options that would fail inside ms-swift after the
merge, and a checkpoint whose adapter was cut off; each refused before anything starts, nothing written."""
from __future__ import annotations

import pytest

from conftest import run_cli
from test_targets import trained


def export(*args: str) -> tuple[int, str]:
    code, out, err = run_cli("export", *args)
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, out + err


@pytest.mark.parametrize("inside, said", [
    ("checkpoint-10/merged", "inside {run}/checkpoint-10, the checkpoint being exported"),
    ("checkpoint-5/x", "inside {run}/checkpoint-5, a checkpoint of the run being exported"),
    ("", "the run dir {run}"),
])
def test_an_output_inside_the_checkpoint_or_the_run_is_refused(tmp_path, inside, said):
    run = trained(tmp_path)
    output = run / inside if inside else run
    code, text = export(str(run / "checkpoint-10"), "--output", str(output))
    assert code == 2 and "swiftkit export: nothing was exported" in text
    assert f"--output {output} is {said.format(run=run)}" in text
    assert f"fix: pass a dir outside it, e.g. {run}/checkpoint-10-merged" in text
    assert not (run / "checkpoint-10" / "merged").exists() and not (run / "checkpoint-5" / "x").exists()


@pytest.mark.parametrize("size", ["banana", "5 bananas", "-1GB", "1e9"])
def test_a_bad_shard_size_is_refused_before_the_merge(tmp_path, size):
    run = trained(tmp_path)
    code, text = export(str(run / "checkpoint-10"), "--max-shard-size", size, "--output", str(tmp_path / "e"))
    assert code == 2 and f"--max-shard-size {size}: not a size" in text
    assert "fix: a number and a unit, such as 2GB or 500MB" in text
    assert not (tmp_path / "e").exists() and not list(tmp_path.glob("e.*"))


def test_a_cut_off_adapter_is_named_not_train_first(tmp_path):
    run = trained(tmp_path, steps=(10,))
    adapter = run / "checkpoint-10" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])
    for target in (run, tmp_path / "out"):
        code, text = export(str(target))
        assert code == 2 and "train first" not in text
        assert "1 checkpoint(s) here are incomplete" in text
        assert f"{run / 'checkpoint-10'}: incomplete: adapter_model.safetensors: header length" in text
        assert "(truncated?)" in text
