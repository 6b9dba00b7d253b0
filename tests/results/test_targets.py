"""targets: TARGET on the command line -> the model to load, from fake ms-swift dirs (no model is loaded)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from test_checkpoints import make_run, safetensors_bytes

from swiftkit.errors import UserError
from swiftkit.results import exports, targets

ARGS = {"model": "/models/base", "model_type": "qwen2", "template": "qwen2_5", "torch_dtype": "bfloat16",
        "system": "You are a helpful assistant."}


def trained(tmp_path: Path, steps=(5, 10)) -> Path:
    run = make_run(tmp_path / "out", "v0-20261128-100000", list(steps), {s: 1.0 / s for s in steps})
    for step in steps:
        (run / f"checkpoint-{step}" / "args.json").write_text(json.dumps(ARGS))
    return run


def test_an_output_dir_means_its_latest_complete_checkpoint(tmp_path):
    run = trained(tmp_path)
    t = targets.resolve(str(tmp_path / "out"))
    assert t.path == run / "checkpoint-10" and t.kind == "adapter" and t.record_path is None
    ref = t.ref()
    assert (ref.model, ref.adapter, ref.model_type, ref.template, ref.dtype) == \
        ("/models/base", run / "checkpoint-10", "qwen2", "qwen2_5", "bfloat16")
    assert ref.system == "You are a helpful assistant."
    assert t.base_ref().adapter is None and t.base_ref().model == "/models/base"


def test_a_checkpoint_dir_and_a_run_dir(tmp_path):
    run = trained(tmp_path)
    assert targets.resolve(str(run / "checkpoint-5")).path == run / "checkpoint-5"
    assert targets.resolve(str(run)).path == run / "checkpoint-10"


def test_an_incomplete_checkpoint_is_refused_and_the_complete_one_named(tmp_path):
    run = trained(tmp_path)
    (run / "checkpoint-10" / "adapter_model.safetensors").write_bytes(safetensors_bytes({"a": ("F32", [64, 64])})[:100])
    with pytest.raises(UserError) as err:
        targets.resolve(str(run / "checkpoint-10"))
    text = err.value.format()
    assert "checkpoint is incomplete" in text and "checkpoint-5, the last complete one" in text


def test_nothing_there(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no complete checkpoint under"):
        targets.resolve(str(tmp_path / "empty"))
    (tmp_path / "output").mkdir()
    code, _, err = run_cli("export", str(tmp_path / "outptu"))
    assert code == 2 and "no such checkpoint, run, output dir or recipe" in err and "did you mean" in err
    assert "Traceback" not in err


def test_a_recipe_without_a_run_says_train_first(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {id: Qwen/Qwen2.5-7B-Instruct}\ndatasets: [data.jsonl]\ntrain: {epochs: 1}\n")
    code, _, err = run_cli("chat", str(recipe), "-m", "hi")
    assert code == 2 and "no complete checkpoint" in err and f"swiftkit run {recipe}" in err


def test_an_export_dir_and_one_cut_off(tmp_path):
    run = trained(tmp_path)
    final = run / "checkpoint-10-merged"
    final.mkdir()
    (final / "config.json").write_text("{}")
    (final / "model.safetensors").write_bytes(safetensors_bytes({"w": ("F32", [16, 16])}))
    (final / "tokenizer.json").write_text("{}")
    size, digests = exports.describe(final)
    exports.write_marker(final, exports.ExportInfo(str(final), str(run / "checkpoint-10"), "/models/base", size,
                                                   digests, "bfloat16"))
    t = targets.resolve(str(final))
    assert t.kind == "export" and t.ref().model == str(final) and t.ref().adapter is None
    assert t.base_ref().model == "/models/base"
    # a weight file changed after the export: never taken for the export that was checked
    (final / "model.safetensors").write_bytes(safetensors_bytes({"w": ("F32", [16, 17])}))
    with pytest.raises(UserError, match="model.safetensors changed since the export"):
        targets.resolve(str(final))


def test_a_staging_leftover_is_named(tmp_path):
    run = trained(tmp_path)
    leftover = run / ".checkpoint-10-merged.partial-999999"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")
    with pytest.raises(UserError) as err:
        targets.resolve(str(run / "checkpoint-10-merged"))
    assert "was cut off" in err.value.format() and str(leftover) in err.value.format()
    assert exports.leftovers(run / "checkpoint-10-merged") == [leftover]
