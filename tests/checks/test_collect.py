"""Every bad input gets a clear error: file, line, key, a fix; exit 2; no traceback; nothing written."""
from __future__ import annotations

import json

import pytest
from conftest import run_cli
from helpers import RECIPE, project, tree


def validate_fails(tmp_path, recipe_text: str | None = None, **kw) -> str:
    path = project(tmp_path, recipe_text or RECIPE, **kw)
    before = tree(tmp_path)
    code, out, err = run_cli("validate", str(path))
    assert code == 2, (out, err)
    assert "Traceback" not in err
    assert tree(tmp_path) == before, "a failed validate must write nothing"
    return err


def test_good_recipe_passes(tmp_path, catalog):
    path = project(tmp_path)
    before = tree(tmp_path)
    code, out, err = run_cli("validate", str(path))
    assert code == 0, err
    assert "micro-batch 2 x accumulation 2 x 1 GPU(s)" in out
    assert tree(tmp_path) == before, "validate writes nothing"


def test_yaml_syntax_error(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("  rank: 8", "  rank: [8"))
    assert "recipe.yaml:" in err and "YAML syntax error" in err
    assert "fix:" in err


def test_unknown_key_did_you_mean(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("  rank: 8", "  rnak: 8"))
    assert "recipe.yaml:13:3: lora.rnak: unknown key 'rnak'" in err
    assert "did you mean 'rank'?" in err


def test_enum_value_did_you_mean(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("dtype: float32", "dtype: float23"))
    assert "model.dtype: 'float23' is not one of: bfloat16, float16, float32" in err
    assert "did you mean 'float32'?" in err


def test_wrong_type(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("max_length: 256", "max_length: long"))
    assert "train.max_length: expected an integer, got 'long'" in err


@pytest.mark.parametrize("rank", ["0", "-4"])
def test_rank_must_be_positive(tmp_path, catalog, rank):
    err = validate_fails(tmp_path, RECIPE.replace("rank: 8", f"rank: {rank}"))
    assert f"recipe.yaml:13:9: lora.rank: must be greater than 0 (got {rank})" in err


def test_all_schema_errors_at_once(tmp_path, catalog):
    bad = RECIPE.replace("rank: 8", "rank: 0").replace("dtype: float32", "dtype: fp32").replace("  epochs: 1", "  epoch: 1")
    err = validate_fails(tmp_path, bad)
    assert "lora.rank" in err and "model.dtype" in err and "train.epoch" in err


def test_missing_dataset_file(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("- data.jsonl", "- dta.jsonl"))
    assert "recipe.yaml:11:5: datasets[1]: dataset file not found" in err
    assert "did you mean 'data.jsonl'?" in err
    assert "hub id" in err  # says why we stop it here


def test_malformed_json_dataset(tmp_path, catalog):
    path = project(tmp_path)
    (tmp_path / "data.jsonl").write_text('{"messages": []}\n{"messages": [oops]}\n')
    code, _, err = run_cli("validate", str(path))
    assert code == 2
    assert "data.jsonl:2:" in err and "Traceback" not in err


def test_dataset_with_no_known_columns(tmp_path, catalog):
    path = project(tmp_path)
    (tmp_path / "data.jsonl").write_text('{"foo": "a", "bar": "b"}\n')
    code, _, err = run_cli("validate", str(path))
    assert code == 2
    assert "data.jsonl" in err and "foo" in err


def test_empty_dataset(tmp_path, catalog):
    path = project(tmp_path)
    (tmp_path / "data.jsonl").write_text("")
    code, _, err = run_cli("validate", str(path))
    assert code == 2 and "empty" in err


def test_identity_dataset_without_identity(tmp_path, catalog):
    bad = RECIPE.replace("identity:\n  name: Tiny-Robot\n  author: Test Team\n", "")
    err = validate_fails(tmp_path, bad)
    assert "datasets[0]: the identity dataset needs an `identity:` section" in err


def test_scoring_every_checkpoint_needs_adapters_and_more_than_one_kept(tmp_path, catalog):
    full = RECIPE.replace("  alpha: 32\n", "  alpha: 32\n  tuner: full\n") + "verify:\n  checkpoints: all\n"
    err = validate_fails(tmp_path, full)
    assert "recipe.yaml:26:16: verify.checkpoints: all swaps each checkpoint's adapter into one engine" in err
    assert "a full fine-tune's checkpoints are whole models" in err and "swiftkit verify CHECKPOINT" in err
    one = RECIPE.replace("  max_length: 256\n", "  max_length: 256\n  save_total_limit: 1\n") + \
        "verify:\n  checkpoints: best\n"
    err = validate_fails(tmp_path, one)
    assert "verify.checkpoints: best with train.save_total_limit 1 has one checkpoint to score" in err
    assert "save_total_limit: 5" in err


def test_model_dir_without_config(tmp_path, catalog):
    err = validate_fails(tmp_path, config=False)
    assert "model.id" in err and "has no config.json" in err


def test_model_dir_with_code_needs_opt_in(tmp_path, catalog):
    err = validate_fails(tmp_path, code=True)
    assert "ships Python code (modeling_custom.py)" in err
    assert "trust_remote_code: true" in err
    ok = project(tmp_path, RECIPE.replace("dtype: float32", "dtype: float32\n  trust_remote_code: true"), code=True)
    assert run_cli("validate", str(ok))[0] == 0


def test_unknown_flag_in_escape_hatch(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE + "swift:\n  neftune_alpha: 5\n")
    assert "swift.neftune_alpha" in err and "has no flag --neftune_alpha" in err


def test_abbreviated_flag(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE + "swift:\n  lora_drop: 0.1\n")
    assert "--lora_drop is an abbreviation: ms-swift would silently read it as --lora_dropout" in err


def test_renamed_flag_in_escape_hatch(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE + "swift:\n  train_type: lora\n")
    assert "renamed --tuner_type" in err


def test_managed_flag_in_escape_hatch(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE + "swift:\n  lora_rank: 4\n")
    assert "--lora_rank is set by the recipe key lora.rank" in err


def test_model_name_flag_is_refused(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE + "swift:\n  model_name: [a, b]\n")
    assert "does nothing" in err


def test_escape_hatch_value_checked(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE + "swift:\n  neftune_noise_alpha: lots\n")
    assert "--neftune_noise_alpha expects a number, got 'lots'" in err


def test_effective_batch_not_divisible(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("micro_batch_size: 2", "micro_batch_size: 3"))
    assert "effective batch 4 is not divisible by micro-batch 3 x 1 GPU(s)" in err
    assert "micro_batch_size 1, 2, 4" in err


def test_epochs_xor_max_steps(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("  epochs: 1", "  epochs: 1\n  max_steps: 5"))
    assert "give exactly one of train.epochs and train.max_steps (both are set)" in err


def test_eval_steps_without_split(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("  epochs: 1", "  epochs: 1\n  eval_steps: 5"))
    assert "eval_steps does nothing without an eval split" in err


def test_unknown_template_and_old_model_type(tmp_path, catalog):
    bad = RECIPE.replace("model_type: qwen2", "model_type: qwen2_5").replace("template: qwen2_5", "template: qwen25")
    err = validate_fails(tmp_path, bad)
    assert "'qwen2_5' is not a model_type in ms-swift" in err and "model_type: qwen2" in err
    assert "unknown template 'qwen25'" in err and "did you mean 'qwen2_5'?" in err


def test_local_model_type_detected(tmp_path, catalog):
    """A local dir not named like a hub id: model_type from config.json; template asked for."""
    bad = RECIPE.replace("  model_type: qwen2\n", "").replace("  template: qwen2_5\n", "")
    err = validate_fails(tmp_path, bad)
    assert "chat template of model is ambiguous for model_type qwen2" in err
    ok = project(tmp_path, RECIPE.replace("  model_type: qwen2\n", ""))
    code, out, _ = run_cli("render", str(ok), "--json")
    argv = json.loads(out)["argv"]
    assert argv[argv.index("--model_type") + 1] == "qwen2"


def test_hub_references_are_notes(tmp_path, catalog):
    path = project(tmp_path, RECIPE.replace("- data.jsonl", "- AI-ModelScope/alpaca-gpt4-data-en#50"))
    code, out, err = run_cli("validate", str(path))
    assert code == 0, err
    assert "AI-ModelScope/alpaca-gpt4-data-en is a hub id: accepted as a reference, it cannot be checked offline" in out


def test_rows_longer_than_max_length_reported(tmp_path, catalog):
    path = project(tmp_path, RECIPE.replace("max_length: 256", "max_length: 40"))
    long_row = {"messages": [{"role": "user", "content": "who are you " * 20},
                             {"role": "assistant", "content": "I am a helpful assistant"}]}
    with open(tmp_path / "data.jsonl", "a") as f:
        f.write(json.dumps(long_row) + "\n")
    code, out, err = run_cli("validate", str(path))
    assert code == 0, err
    assert "data.jsonl: 1 of 4 rows are longer than max_length 40 tokens; ms-swift drops them silently" in out


def test_every_row_too_long_is_an_error(tmp_path, catalog):
    err = validate_fails(tmp_path, RECIPE.replace("max_length: 256", "max_length: 3"))
    assert "every usable row is longer than max_length 3" in err


def test_override_errors_point_at_the_command_line(tmp_path, catalog):
    path = project(tmp_path)
    code, _, err = run_cli("validate", str(path), "--set", "train.epochs=abc", "--set", "lora.rnak=4")
    assert code == 2
    assert "command line (--set): train.epochs: expected a number, got 'abc'" in err
    assert "command line (--set): lora.rnak: unknown key 'rnak'" in err


def test_training_under_the_template_default_needs_the_template(tmp_path, catalog):
    text = RECIPE.replace("  author: Test Team\n", "  author: Test Team\n  train_systems: [recipe, default]\n")
    hub = text.replace("  id: model\n  model_type: qwen2\n  template: qwen2_5\n", "  id: Qwen/Qwen2.5-7B-Instruct\n")
    assert hub != text
    err = validate_fails(tmp_path, hub)
    assert "identity.train_systems: default needs the model's chat template" in err
    assert "fix: set model.template (a Qwen2.5 model uses qwen2_5)" in err


def test_identity_rows_take_the_system_prompts_in_turn(tmp_path, catalog):
    from swiftkit.checks.collect import check
    from swiftkit.run.prepare import prepare_data

    text = RECIPE.replace("  author: Test Team\n", "  author: Test Team\n  train_systems: [recipe, default]\n")
    checked = check(project(tmp_path, text), catalog=catalog)
    qwen = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    assert checked.identity_systems == [None, qwen]
    files = prepare_data(checked)
    rows = [json.loads(line)["messages"] for line in files.train_path.read_text(encoding="utf-8").splitlines()]
    assert rows[0][0]["role"] == "user"  # train.system applies (swift sft --system)
    assert rows[1][0] == {"role": "system", "content": qwen} and rows[1][1]["role"] == "user"
    assert sum(1 for r in rows if r[0]["role"] == "system") == len(rows) // 2
