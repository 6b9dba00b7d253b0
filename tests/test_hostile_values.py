"""Values that parse but mean nothing: a boolean where a number goes, .inf and .nan, absurd magnitudes, an
output dir that cannot hold a run, a model dir without weights, an unknown card, a malformed --set. Each is
refused at its key or at the command line (exit 2, where, what, a fix), never taken as a setting."""
from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml
from conftest import run_cli

from swiftkit.errors import UserError
from swiftkit.recipe.models import Recipe, load_recipe
from swiftkit.recipe.numbers import kinds

BASE = "model: {id: Qwen/Qwen2.5-7B-Instruct}\ntrain: {epochs: 1}\ndatasets: [identity]\n" \
       "identity: {name: a, author: b}\n"


def validate(path, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli("validate", str(path), *extra)
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, out + err


# -- numbers ---------------------------------------------------------------------------------------

def numeric_fields(model=Recipe, prefix: tuple = ()) -> list[tuple]:
    """The key path of every field of the recipe that takes a number (a datasets entry as datasets[0])."""
    from swiftkit.recipe.schema_errors import _inner_model

    out = []
    for name, field in model.model_fields.items():
        path = prefix + (name,)
        inner = _inner_model(field.annotation)
        if inner is not None:
            out += numeric_fields(inner, path + ((0,) if name == "datasets" else ()))
        elif "number" in kinds(field.annotation) and name != "swift":
            out.append(path)
    return out


def with_value(path: tuple, value: Any) -> dict:
    data = yaml.safe_load(BASE)
    data["datasets"] = [{"hub": "a/b"}] if path[0] == "datasets" else data["datasets"]
    node = data
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[path[-1]] = [value] if path[-1] == "visible_devices" else value
    return data


def test_the_walk_finds_the_numeric_fields():
    found = numeric_fields()
    for path in [("lora", "rank"), ("train", "epochs"), ("train", "learning_rate"), ("gpu", "memory_gb"),
                 ("gpu", "emulate_memory_gb"), ("datasets", 0, "samples"), ("gpu", "visible_devices"),
                 ("train", "micro_batch_size"), ("on_oom", "max_length_factor"), ("verify", "batch_size")]:
        assert path in found
    assert len(found) > 30


@pytest.mark.parametrize("value", [True, float("inf"), float("-inf"), float("nan"), 1e30, 10**30, "1e400"],
                         ids=["true", "inf", "-inf", "nan", "1e30", "int1e30", "str1e400"])
def test_every_numeric_field_refuses_booleans_non_finite_and_absurd_values(tmp_path, value):
    from swiftkit.recipe.yamlfile import dotted

    for path in numeric_fields():
        recipe = tmp_path / "r.yaml"
        recipe.write_text(yaml.safe_dump(with_value(path, value)), encoding="utf-8")
        with pytest.raises(UserError) as refused:
            load_recipe(recipe)
        keys = [p.key for p in refused.value.problems]
        assert any(k and k.startswith(dotted(path)) for k in keys), (path, value, keys)
        assert all(p.line for p in refused.value.problems), (path, refused.value.format())
        assert WHY.get(str(value), "") in refused.value.format(), (path, refused.value.format())


# what the refusal says, where pydantic alone would have taken the value or said something beside the point
WHY = {"True": "expected a number, got true (a YAML boolean)", "inf": "expected a finite number, got .inf",
       "-inf": "expected a finite number, got -.inf", "nan": "expected a finite number, got .nan"}


def test_a_boolean_rank_is_refused_at_its_line(write):
    code, text = validate(write("r.yaml", BASE + "lora: {rank: true}\n"))
    assert code == 2
    assert "r.yaml:5:14: lora.rank: expected a number, got true (a YAML boolean)" in text
    assert "fix: write a number here" in text


@pytest.mark.parametrize("key,value,message", [
    ("train.epochs", ".inf", "train.epochs: expected a finite number, got .inf"),
    ("train.learning_rate", ".nan", "train.learning_rate: expected a finite number, got .nan"),
    ("gpu.memory_gb", ".inf", "gpu.memory_gb: expected a finite number, got .inf"),
    ("gpu.emulate_memory_gb", ".nan", "gpu.emulate_memory_gb: expected a finite number, got .nan"),
    ("train.epochs", "1e12", "train.epochs: must be less than or equal to 100000 (got '1e12')"),
    ("lora.rank", "1.0e+30", "lora.rank: expected an integer of a sane size, got 1e+30"),
    ("lora.rank", "100000", "lora.rank: must be less than or equal to 65536 (got 100000)"),
    ("train.seed", "-1", "train.seed: must be greater than or equal to 0"),
    ("lora.quant_bits", "true", "lora.quant_bits: true is not one of: 4, 8"),
])
def test_non_finite_and_absurd_values_are_refused_at_the_key(write, key, value, message):
    code, text = validate(write("r.yaml", BASE), "--set", f"{key}={value}")
    assert code == 2 and message in text, text
    assert "fix:" in text


# -- --set -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("item,message,fix", [
    ("train..epochs=1", "--set train..epochs=1: an empty part in the key 'train..epochs'", "--set train.epochs=3"),
    (".epochs=1", "--set .epochs=1: an empty part in the key '.epochs'", "--set train.epochs=3"),
    ("datasets.0.samples=5", "--set datasets.0.samples=5: datasets is a list: --set cannot reach into it",
     "set the whole list: --set 'datasets=[...]'"),
    ("datasets[0].samples=5", "--set datasets[0].samples=5: 'datasets[0]': --set cannot reach into a list",
     "set the whole list"),
    ("train.epochs.x=1", "--set train.epochs.x=1: train.epochs is a value, not a section with keys",
     "write --set train.epochs=VALUE"),
    ("train.foo.bar=1", "command line (--set): train.foo: unknown key 'foo'", "valid keys here: epochs"),
    ("lora.rnak.x=1", "command line (--set): lora.rnak: unknown key 'rnak'", "did you mean 'rank'?"),
])
def test_a_malformed_set_names_the_command_line_not_the_recipe(write, item, message, fix):
    code, text = validate(write("r.yaml", BASE), "--set", item)
    assert code == 2 and message in text, text
    assert f"fix: {fix}" in text or fix in text.split("fix:")[1], text
    assert "r.yaml:" not in text


def test_set_still_reaches_free_form_mappings(write):
    code, text = validate(write("r.yaml", BASE), "--set", "swift.max_grad_norm=1")
    assert code == 0, text


# -- plan --gpu ------------------------------------------------------------------------------------

def test_plan_refuses_an_unknown_card_name_with_the_known_names(write):
    recipe = write("r.yaml", BASE)
    code, out, err = run_cli("plan", str(recipe), "--gpu", "H300")
    assert code == 2 and "Traceback" not in err
    assert "--gpu H300: 'H300' is not a card swiftkit knows" in err
    assert "fix: did you mean 'H200'? Known cards: RTX 3060, " in err and "H100, H200; or give --gpu-memory-gb N" in err
    code, _out, err = run_cli("plan", str(recipe), "--gpu", "quantum")
    assert code == 2 and "fix: known cards: RTX 3060" in err


# -- output.dir ------------------------------------------------------------------------------------

def test_an_output_dir_that_is_a_file_or_the_root_is_refused(write, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    code, text = validate(write("r.yaml", BASE + "output: {dir: notes.txt}\n"))
    assert code == 2 and f"r.yaml:5:15: output.dir: {tmp_path / 'notes.txt'} is a file, not a directory" in text
    assert "fix: choose another path, or move the file away" in text
    code, text = validate(write("r.yaml", BASE + "output: {dir: /}\n"))
    assert code == 2 and "output.dir: / is the root of the filesystem" in text
    assert "fix: give the runs a directory of their own" in text
    code, text = validate(write("r.yaml", BASE + "output: {dir: notes.txt/runs}\n"))
    assert code == 2 and f"{tmp_path / 'notes.txt'} is a file, so no directory can be made under it" in text


def test_an_output_dir_inside_a_checkpoint_or_a_model_dir_is_refused(write, tmp_path):
    (tmp_path / "out/v0-run/checkpoint-20").mkdir(parents=True)
    code, text = validate(write("r.yaml", BASE + "output: {dir: out/v0-run/checkpoint-20/again}\n"))
    assert code == 2
    assert f"is inside the checkpoint {tmp_path / 'out/v0-run/checkpoint-20'}" in text
    assert "fix: write runs beside the model or checkpoint" in text
    model = tmp_path / "Qwen2.5-0.5B"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    code, text = validate(write("r.yaml", BASE + "output: {dir: Qwen2.5-0.5B/runs}\n"))
    assert code == 2 and f"{model / 'runs'} is inside the model dir {model}" in text


def test_an_output_dir_that_cannot_be_written_is_refused_even_for_root(write):
    # /sys refuses new files to root as well: the check makes a file rather than trusting permission bits
    code, text = validate(write("r.yaml", BASE + "output: {dir: /sys/swiftkit-runs}\n"))
    assert code == 2
    assert "output.dir: /sys/swiftkit-runs: cannot create a file in /sys (Permission denied)" in text
    assert "fix: choose a directory you can write to" in text


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits; /sys covers root above")
def test_an_output_dir_without_write_permission_is_refused(write, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, text = validate(write("r.yaml", BASE + "output: {dir: locked/runs}\n"))
    finally:
        locked.chmod(0o755)
    assert code == 2 and f"cannot create a file in {locked} (Permission denied)" in text


# -- model dir -------------------------------------------------------------------------------------

def model_dir(tmp_path, config: str, weights: bool = True):
    from helpers import make_model_dir

    model = make_model_dir(tmp_path / "model")
    (model / "config.json").write_text(config)
    if not weights:  # make_model_dir writes an (empty) weight file
        (model / "model.safetensors").unlink()
    return model


def test_a_config_json_that_is_not_an_object_is_refused(write, tmp_path):
    model = model_dir(tmp_path, "[1, 2]")
    code, text = validate(write("r.yaml", BASE.replace("Qwen/Qwen2.5-7B-Instruct", "model")))
    assert code == 2
    assert f"r.yaml:1:13: model.id: {model / 'config.json'} is not a model config: a JSON list, not an object" in text
    assert "fix: restore config.json from the model's source" in text
    model_dir(tmp_path, '"qwen2"')
    code, text = validate(write("r.yaml", BASE.replace("Qwen/Qwen2.5-7B-Instruct", "model")))
    assert code == 2 and "is not a model config: a JSON str, not an object" in text


def test_a_model_dir_without_weight_files_is_refused(write, tmp_path):
    model = model_dir(tmp_path, '{"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}', weights=False)
    code, text = validate(write("r.yaml", BASE.replace("Qwen/Qwen2.5-7B-Instruct", "model")))
    assert code == 2
    assert (f"r.yaml:1:13: model.id: {model} has no weight files (*.safetensors, *.bin, *.safetensors.index.json, "
            "*.bin.index.json)") in text
    assert "fix: copy the weights from the model's source" in text


@pytest.mark.parametrize("fields, said", [
    ({"architectures": 5}, "architectures is 5, expected a list of class names"),
    ({"hidden_size": "big"}, "hidden_size is 'big', expected a positive whole number"),
    ({"num_hidden_layers": True}, "num_hidden_layers is True, expected a positive whole number"),
    ({"vocab_size": -3}, "vocab_size is -3, expected a positive whole number"),
])
def test_a_config_json_field_of_the_wrong_type_is_named(write, tmp_path, fields, said):
    config = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, **fields}
    model = model_dir(tmp_path, json.dumps(config))
    code, text = validate(write("r.yaml", BASE.replace("Qwen/Qwen2.5-7B-Instruct", "model")))
    assert code == 2 and f"r.yaml:1:13: model.id: {model / 'config.json'}: {said}" in text
    code, out, err = run_cli("plan", str(tmp_path / "r.yaml"), "--gpu", "RTX 4090")
    assert code == 2 and said in err and "could not encode" not in err
