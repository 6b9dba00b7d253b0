"""`swiftkit import`: a pasted `swift sft` command or script -> a recipe that renders the same run."""
from __future__ import annotations

import io
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from swiftkit.checks.collect import check, planned_invocations
from swiftkit.commands.import_ import import_
from swiftkit.errors import UserError
from swiftkit.flags.catalog import RENAMED
from swiftkit.importer.command import find_sft_command, import_command
from swiftkit.importer.recipe_yaml import to_yaml
from swiftkit.recipe.models import Recipe
from swiftkit.render import CHILD_DIR

# The ms-swift 3.x command of the Qwen2.5-7B self-cognition blog posts, as people keep it in a script.
BLOG_SCRIPT = r"""#!/bin/bash
# Qwen2.5-7B-Instruct learns who it is (ms-swift 3.x)
CUDA_VISIBLE_DEVICES=0 \
swift sft \
    --model Qwen/Qwen2.5-7B-Instruct \
    --train_type lora \
    --dataset 'AI-ModelScope/alpaca-gpt4-data-zh#500' \
              'AI-ModelScope/alpaca-gpt4-data-en#500' \
              'swift/self-cognition#500' \
    --torch_dtype bfloat16 \
    --num_train_epochs 1 \
    --per_device_train_batch_size 1 \
    --per_device_eval_batch_size 1 \
    --learning_rate 1e-4 \
    --lora_rank 8 \
    --lora_alpha 32 \
    --target_modules all-linear \
    --gradient_accumulation_steps 16 \
    --eval_steps 50 \
    --save_steps 50 \
    --save_total_limit 2 \
    --logging_steps 5 \
    --max_length 2048 \
    --output_dir output \
    --system 'You are a helpful assistant.' \
    --warmup_ratio 0.05 \
    --dataloader_num_workers 4 \
    --model_author swift \
    --model_name swift-robot
"""

# Flags a rendered command adds that the blog command leaves to ms-swift: each is ms-swift 4.6's default.
SWIFT_DEFAULTS_RENDERED = {
    "--lora_dropout": [0.05],
    "--gradient_checkpointing": ["true"],
    "--lr_scheduler_type": ["cosine"],
    "--seed": [42.0],
    "--split_dataset_ratio": [0.0],
}


def flag_map(argv: list[str]) -> dict[str, list]:
    """argv after the verb -> {--flag: [values]}, numbers compared as numbers, booleans lower-case."""
    out: dict[str, list] = {}
    flag = None
    for word in argv:
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            out[flag] = [word.split("=", 1)[1]] if "=" in word else []
        else:
            out[flag].append(word)
    return {f: [_norm(v) for v in values] for f, values in out.items()}


def _norm(value: str):
    try:
        return float(value)
    except ValueError:
        return value.lower() if value.lower() in ("true", "false") else value


def command_argv(script: str) -> list[str]:
    return find_sft_command(script).args


def save(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- (a) the blog-post 3.x command --------------------------------------------------------------------

def test_blog_command_imports():
    result = import_command(BLOG_SCRIPT)
    r = result.recipe
    assert r["model"] == {"id": "Qwen/Qwen2.5-7B-Instruct", "dtype": "bfloat16"}
    assert r["datasets"] == ["AI-ModelScope/alpaca-gpt4-data-zh#500", "AI-ModelScope/alpaca-gpt4-data-en#500",
                             "identity#500"]
    assert r["identity"] == {"name": {"zh": "swift-robot", "en": "swift-robot"},
                             "author": {"zh": "swift", "en": "swift"}}
    assert r["lora"] == {"tuner": "lora", "rank": 8, "alpha": 32, "target_modules": "all-linear"}
    assert r["train"] == {"epochs": 1, "learning_rate": 1e-4, "warmup_ratio": 0.05, "effective_batch_size": 16,
                          "micro_batch_size": 1, "gradient_accumulation": 16, "max_length": 2048, "save_steps": 50,
                          "logging_steps": 5, "save_total_limit": 2, "system": "You are a helpful assistant."}
    assert r["gpu"] == {"count": 1, "visible_devices": [0]}
    assert r["output"] == {"dir": "output"}
    assert r["swift"] == {"per_device_eval_batch_size": 1, "dataloader_num_workers": 4}
    notes = "\n".join(result.notes)
    assert RENAMED["train_type"][1] in notes
    assert "--model_name/--model_author" in notes and "do nothing for local data" in notes
    assert "dropped --eval_steps 50" in notes and "eval_split" in notes
    assert "kept --dataloader_num_workers 4 (swift:)" in notes and "5 s at exit" in notes


# -- (b) round trip: import -> check -> render == the original command ------------------------------------

def test_blog_round_trip_renders_an_equivalent_command(tmp_path, catalog):
    path = save(tmp_path, to_yaml(import_command(BLOG_SCRIPT)))
    checked = check(path, catalog=catalog)
    inv = planned_invocations(checked)["sft"]
    assert inv.argv[:2] == ["swift", "sft"]
    assert inv.env == {"CUDA_VISIBLE_DEVICES": "0", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
                       "SWIFTKIT_NO_CUDNN_SDPA": "1", "PYTHONPATH": str(CHILD_DIR),
                       "SWIFTKIT_DATASET_FINGERPRINT": "random", "SWIFTKIT_DATASET_IN_PROCESS": "1"}

    original = flag_map(command_argv(BLOG_SCRIPT))
    for old, (new, _note) in RENAMED.items():
        if f"--{old}" in original:
            original[f"--{new}"] = original.pop(f"--{old}")
    rendered = flag_map(inv.argv[2:])

    # identity replaces swift/self-cognition + --model_name/--model_author, with the same sample count
    name, author = original.pop("--model_name"), original.pop("--model_author")
    assert (name, author) == (["swift-robot"], ["swift"])
    *general, self_cognition = original.pop("--dataset")
    assert self_cognition == "swift/self-cognition#500"
    *rendered_general, identity_file = rendered.pop("--dataset")
    assert rendered_general == general
    assert identity_file.endswith("identity.train.jsonl#500")
    # dropped on import (no eval set in ms-swift 4 without a split), with a note
    assert original.pop("--eval_steps") == [50.0] and "--eval_steps" not in rendered
    # recipe paths are relative to the recipe file
    assert Path(rendered.pop("--output_dir")[0]) == tmp_path / original.pop("--output_dir")[0]

    extra = {f: v for f, v in rendered.items() if f not in original}
    assert extra == SWIFT_DEFAULTS_RENDERED
    assert {f: rendered[f] for f in original} == original


def test_bundled_identity_recipe_survives_render_then_import(tmp_path, catalog):
    """The other direction: a recipe's rendered command imports back to the same recipe values."""
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "mixed.yaml"
    checked = check(recipe, catalog=catalog)
    inv = planned_invocations(checked)["sft"]
    argv = [a.replace(str(checked.plan.output_dir / "data" / "identity.train.jsonl"), "swift/self-cognition")
            for a in inv.argv] + ["--model_name", "Swift-Robot", "--model_author", "CSDN 迪菲赫尔曼"]
    imported = import_command(shlex.join([f"{k}={v}" for k, v in inv.env.items()] + argv)).recipe
    original = checked.loaded.recipe
    assert imported["datasets"] == checked.loaded.doc.data["datasets"]
    assert imported["identity"]["author"] == {"zh": "CSDN 迪菲赫尔曼", "en": "CSDN 迪菲赫尔曼"}
    for key in ("epochs", "learning_rate", "warmup_ratio", "micro_batch_size", "max_length", "system"):
        assert imported["train"][key] == getattr(original.train, key), key
    assert imported["train"]["effective_batch_size"] == original.train.effective_batch_size


# -- (c) ms-swift 4.x, --flag=value, a local dataset, a flag swiftkit has no key for -------------------

CPU_COMMAND = """\
CUDA_VISIBLE_DEVICES= swift sft --model=model --model_type=qwen2 --template=qwen2_5 \\
  --tuner_type=lora --dataset=data.jsonl#20 --torch_dtype=float32 --max_steps=5 \\
  --per_device_train_batch_size=2 --gradient_accumulation_steps=2 --max_length=256 \\
  --neftune_noise_alpha 5 --dataloader_num_workers 0 --check_model false --output_dir=out
"""


def test_local_4x_command_with_equals_form(tmp_path, catalog):
    from helpers import make_model_dir, pairs_jsonl

    make_model_dir(tmp_path / "model")
    pairs_jsonl(tmp_path / "data.jsonl")
    result = import_command(CPU_COMMAND)
    r = result.recipe
    assert r["model"] == {"id": "model", "model_type": "qwen2", "template": "qwen2_5", "dtype": "float32"}
    assert r["datasets"] == ["data.jsonl#20"]
    assert r["gpu"] == {"count": 0}
    assert r["train"]["max_steps"] == 5 and "epochs" not in r["train"]
    assert r["train"]["effective_batch_size"] == 4
    assert r["swift"] == {"neftune_noise_alpha": 5}
    notes = "\n".join(result.notes)
    assert "dropped --dataloader_num_workers" in notes and "dropped --check_model" in notes
    assert "relative paths (model, data.jsonl, out)" in notes

    checked = check(save(tmp_path, to_yaml(result)), catalog=catalog)
    rendered = flag_map(planned_invocations(checked)["sft"].argv[2:])
    assert rendered["--neftune_noise_alpha"] == [5.0]
    assert rendered["--dataset"] == [f"{tmp_path / 'data.jsonl'}#20"]
    assert rendered["--check_model"] == ["false"] and rendered["--dataloader_num_workers"] == [0.0]
    original = flag_map(command_argv(CPU_COMMAND))
    for flag in ("--max_steps", "--per_device_train_batch_size", "--gradient_accumulation_steps", "--torch_dtype",
                 "--model_type", "--template", "--max_length", "--tuner_type"):
        assert rendered[flag] == original[flag], flag


def test_eval_steps_kept_with_a_split_and_with_val_dataset():
    split = import_command("swift sft --model a/b --dataset c/d --split_dataset_ratio 0.05 --eval_steps 20")
    assert split.recipe["train"]["eval_split"] == 0.05 and split.recipe["train"]["eval_steps"] == 20
    val = import_command("swift sft --model a/b --dataset c/d --val_dataset v.jsonl --eval_steps 20")
    assert "eval_steps" not in val.recipe["train"]
    assert val.recipe["swift"] == {"val_dataset": "v.jsonl", "eval_steps": 20}


# -- (d) python -m swift.cli.main sft, inside a longer script --------------------------------------------

def test_python_module_form_in_a_script():
    script = """\
set -e
pip install -U ms-swift  # 4.x
export CUDA_VISIBLE_DEVICES=0,1
export NPROC_PER_NODE=2
MODEL=Qwen/Qwen2.5-7B-Instruct
python3 -u -m swift.cli.main sft --model "$MODEL" --tuner-type lora \\
    --dataset data/train.jsonl --per_device_train_batch_size 4 --num_train_epochs 2 \\
    --deepspeed zero2 2>&1 | tee train.log   # keep a log
swift infer --adapters output/last --stream true
"""
    result = import_command(script)
    r = result.recipe
    assert r["model"]["id"] == "Qwen/Qwen2.5-7B-Instruct"
    assert r["gpu"] == {"count": 2, "visible_devices": [0, 1]}
    # ms-swift's default accumulation: ceil(16 / 4 / 2 processes) = 2; 4 x 2 x 2 GPUs
    assert r["train"]["gradient_accumulation"] == 2 and r["train"]["effective_batch_size"] == 16
    assert r["distributed"] == {"deepspeed": "zero2"} and "swift" not in r
    assert any("ceil(16 / 4 / 2 process(es)) = 2" in n for n in result.notes)


@pytest.mark.parametrize("launch", ["python -m swift.cli.main sft", "python3.11 -m swift.cli.sft",
                                    "/opt/venv/bin/python /opt/venv/lib/python3.11/site-packages/swift/cli/sft.py",
                                    "nohup env NPROC_PER_NODE=1 /usr/local/bin/swift sft"])
def test_launch_forms(launch):
    result = import_command(f"{launch} --model a/b --dataset c/d#10 --lora_rank 16 > log.txt 2>&1 &")
    assert result.recipe["lora"]["rank"] == 16 and result.recipe["datasets"] == ["c/d#10"]
    assert "swift" not in result.recipe


# -- (e) not a training command ----------------------------------------------------------------------------

def test_swift_infer_is_rejected_with_what_was_found():
    with pytest.raises(UserError) as exc:
        import_command("CUDA_VISIBLE_DEVICES=0 swift infer --adapters output/v0/checkpoint-10 --stream true")
    text = exc.value.format()
    assert "no `swift sft` command in the input (found `swift infer --adapters ...`)" in text
    assert "expected a `swift sft ...` command" in text and "fix:" in text


@pytest.mark.parametrize("text", ["", "  \n# only a comment\n", "\\\n"])
def test_no_command_at_all(text):
    with pytest.raises(UserError, match="no command found in the input"):
        import_command(text)


def test_unterminated_quote():
    with pytest.raises(UserError, match="unterminated ' quote starting on line 2"):
        import_command("swift sft --model a/b \\\n  --system 'oops")


# -- (f) the command function: stdin and argv --------------------------------------------------------------

def test_cli_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(BLOG_SCRIPT))
    assert import_("-", []) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out) == import_command(BLOG_SCRIPT).recipe
    assert out.startswith("# yaml-language-server: $schema=")
    assert "note: --train_type was renamed --tuner_type in ms-swift 4" in err.splitlines()


def test_cli_reads_argv(capsys):
    argv = shlex.split(BLOG_SCRIPT.split("\n", 2)[2].replace("\\\n", " "))
    assert argv[0] == "CUDA_VISIBLE_DEVICES=0"
    assert import_(None, argv) == 0
    out, err = capsys.readouterr()
    assert yaml.safe_load(out) == import_command(BLOG_SCRIPT).recipe
    assert all(line.startswith("note: ") for line in err.splitlines())


def test_cli_reads_a_file_and_reports_a_missing_one(tmp_path, capsys):
    script = save(tmp_path, BLOG_SCRIPT, "train.sh")
    assert import_(str(script), []) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["id"] == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(UserError, match="file not found: .*nope.sh"):
        import_(str(tmp_path / "nope.sh"), [])
    with pytest.raises(UserError, match="both a file"):
        import_(str(script), ["swift", "sft"])


# -- smaller rules -------------------------------------------------------------------------------------------

def test_identity_zh_en_forms_and_unicode():
    result = import_command("swift sft --model a/b --dataset swift/self-cognition "
                            "--model_name 小黄 'Xiao Huang' --model_author 魔搭 ModelScope")
    assert result.recipe["identity"] == {"name": {"zh": "小黄", "en": "Xiao Huang"},
                                         "author": {"zh": "魔搭", "en": "ModelScope"}}
    assert result.recipe["datasets"] == ["identity"]
    assert "小黄" in to_yaml(result)


def test_model_name_without_self_cognition_is_dropped():
    result = import_command("swift sft --model a/b --dataset c/d --model_name x --model_author y")
    assert "identity" not in result.recipe and "swift" not in result.recipe
    assert any("dropped --model_name and --model_author" in n for n in result.notes)


def test_old_model_type_removed_flag_and_defaults():
    result = import_command("swift sft --model ./qwen --model_type qwen2_5 --sft_type full --dataset d.jsonl "
                            "--overwrite_output_dir --lora_target_modules q_proj v_proj --no_gradient_checkpointing")
    r, notes = result.recipe, "\n".join(result.notes)
    assert r["model"] == {"id": "./qwen", "model_type": "qwen2", "template": "qwen2_5"}
    assert r["lora"] == {"tuner": "full", "target_modules": ["q_proj", "v_proj"]}
    assert r["train"]["epochs"] == 3 and r["train"]["learning_rate"] == 1e-5 and r["train"]["warmup_ratio"] == 0
    assert r["train"]["gradient_checkpointing"] is False
    assert r["train"]["gradient_accumulation"] == 16 and r["train"]["effective_batch_size"] == 16
    assert "model_type qwen2_5 (ms-swift 3) is model_type qwen2 with template qwen2_5" in notes
    assert "dropped --overwrite_output_dir" in notes and RENAMED["sft_type"][1] in notes
    assert "epochs 3 is ms-swift's default" in notes


def test_escape_hatch_values():
    r = import_command("swift sft --model a/b --dataset c/d --report_to tensorboard wandb --packing "
                       "--weight_decay 0.1 --attn_impl flash_attn --use_hf false").recipe
    assert r["swift"] == {"report_to": ["tensorboard", "wandb"], "packing": True, "weight_decay": 0.1,
                          "attn_impl": "flash_attn", "use_hf": False}


def test_max_steps_wins_over_epochs_and_unset_variables_are_noted():
    result = import_command("swift sft --model $MODEL --dataset c/d --num_train_epochs 2 --max_steps 100")
    assert result.recipe["train"]["max_steps"] == 100 and "epochs" not in result.recipe["train"]
    notes = "\n".join(result.notes)
    assert "--max_steps overrides it" in notes and "kept $MODEL verbatim" in notes


def test_unexported_launch_variable_is_noted():
    result = import_command("NPROC_PER_NODE=4\nswift sft --model a/b --dataset c/d")
    assert result.recipe["gpu"] == {"count": 1}
    assert any("NPROC_PER_NODE=4 is set in the script but not exported" in n for n in result.notes)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)),
                        min_size=1), max_size=6))
def test_words_survive_shell_quoting(words):
    """Whatever shlex.join quotes (#, quotes, newlines, backslashes, ;, |, &, >) comes back intact."""
    assert find_sft_command(shlex.join(["swift", "sft", *words])).args == words


def test_warmup_steps_gets_a_zero_ratio():
    """A recipe always renders --warmup_ratio; ms-swift 4.6 refuses a non-zero one beside --warmup_steps."""
    result = import_command("swift sft --model a/b --dataset c/d --warmup_steps 10")
    assert result.recipe["train"]["warmup_ratio"] == 0 and result.recipe["swift"] == {"warmup_steps": 10}
    assert any("--warmup_steps sets the warmup" in n for n in result.notes)


# -- what ms-swift's own examples use (tests/importer/test_command_corpus.py runs all of them) ---------------------

def test_shell_arithmetic_is_evaluated():
    script = ("nproc_per_node=2\nNPROC_PER_NODE=$nproc_per_node swift sft --model a/b --dataset c/d "
              "--gradient_accumulation_steps $(expr 16 / $nproc_per_node) --per_device_train_batch_size $((9 / 2))")
    train = import_command(script).recipe["train"]
    assert train["gradient_accumulation"] == 8 and train["micro_batch_size"] == 4


@pytest.mark.parametrize("text, message", [
    ("swift sft --model a/b --dataset c/d --max_length $(cat len.txt)", "command substitution"),
    ("swift sft examples/train/sft.yaml", "reads its options from a config file"),
    ("swift sft --model a/b --dataset '<your-dataset>'", "--dataset <your-dataset> is a placeholder"),
])
def test_what_cannot_be_read_is_refused(text, message):
    with pytest.raises(UserError, match=re.escape(message)) as exc:
        import_command(text)
    assert "fix:" in exc.value.format()


def test_hub_prefixes_and_subsets_keep_their_meaning():
    r = import_command("swift sft --model a/b --dataset 'HF::linxy/LaTeX_OCR:full#20000' MS::org/x org/y:a/b#5 "
                       "org/z:sub#3").recipe
    assert r["datasets"] == [{"hub": "HF::linxy/LaTeX_OCR:full", "samples": 20000}, {"hub": "MS::org/x"},
                             {"hub": "org/y:a/b", "samples": 5}, "org/z:sub#3"]
    Recipe.model_validate(r)


@pytest.mark.parametrize("datasets, names, why", [
    ("swift/self-cognition:empty_think#600", "--model_name 小黄 'Xiao Huang' --model_author swift", "subset :empty_think"),
    ("swift/self-cognition#600", "--model_name robot", "no --model_author"),
    ("HF::swift/self-cognition", "--model_name robot --model_author swift", "names the hub"),
])
def test_self_cognition_the_identity_cannot_reproduce_stays_on_the_hub(datasets, names, why):
    result = import_command(f"swift sft --model a/b --dataset {datasets} {names}")
    r = result.recipe
    assert "identity" not in r and r["swift"]["model_name"] in (["小黄", "Xiao Huang"], "robot")
    assert any(why in n for n in result.notes)
    Recipe.model_validate(r)


def test_save_total_limit_minus_one_keeps_every_checkpoint():
    r = import_command("swift sft --model a/b --dataset c/d --save_total_limit -1").recipe
    assert r["train"]["save_total_limit"] is None and r["swift"] == {"save_total_limit": -1}


@pytest.mark.parametrize("tuner", ["adalora", "adapter", "boft", "bone", "fourierft", "ia3", "llamapro",
                                   "longlora", "lora_llm", "reft", "vera"])
def test_every_ms_swift_tuner_imports(tuner):
    r = import_command(f"swift sft --model a/b --dataset c/d --tuner_type {tuner} --lora_rank 16 "
                       "--galore_rank 64 --use_galore true").recipe
    assert r["lora"]["tuner"] == tuner and r["lora"]["rank"] == 16
    assert "learning_rate" not in r["train"]  # ms-swift's 1e-4 for every tuner but full is the recipe's default
    assert r["swift"] == {"galore_rank": 64, "use_galore": True}
    Recipe.model_validate(r)


def test_cached_dataset_needs_no_dataset():
    result = import_command("swift sft --model a/b --cached_dataset ./cache/train --cached_val_dataset ./cache/val "
                            "--eval_steps 20")
    r = result.recipe
    assert r["datasets"] == [] and r["swift"] == {"eval_steps": 20, "cached_dataset": "./cache/train",
                                                  "cached_val_dataset": "./cache/val"}
    assert not any("no --dataset" in n for n in result.notes)
    Recipe.model_validate(r)
    with pytest.raises(ValueError, match="datasets: must not be empty"):
        Recipe.model_validate({**r, "swift": {}})
