"""Rendering: batch arithmetic, flag spelling per ms-swift version, shell-safe display, and every
bundled recipe's commands accepted by the installed ms-swift's own parser."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from helpers import project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swiftkit.checks.collect import check, planned_invocations
from swiftkit.flags.catalog import Catalog, parse_with_swift
from swiftkit.recipe.models import Recipe
from swiftkit.render import CHILD_DIR, Plan, model_ref, render_sft, resolve_batch

BUNDLED = sorted((ROOT / "recipes").rglob("*.yaml"))


def recipe(**train) -> Recipe:
    gpu = train.pop("gpu", 1)
    return Recipe.model_validate({"model": {"id": "Qwen/Qwen2.5-7B-Instruct"}, "datasets": ["a/b"],
                                  "train": {"epochs": 1, **train}, "gpu": {"count": gpu}})


@pytest.mark.parametrize("train,expected", [
    ({"effective_batch_size": 16, "micro_batch_size": "auto"}, (16, 1)),
    ({"effective_batch_size": 16, "micro_batch_size": 4}, (4, 4)),
    ({"effective_batch_size": 16, "micro_batch_size": 4, "gpu": 2}, (4, 2)),
    ({"effective_batch_size": 16, "micro_batch_size": "auto", "gpu": 4}, (4, 1)),
    ({"effective_batch_size": None, "micro_batch_size": 2, "gradient_accumulation": 3}, (2, 3)),
    ({"effective_batch_size": 16, "micro_batch_size": 2, "gradient_accumulation": 8}, (2, 8)),
])
def test_resolve_batch(train, expected):
    assert resolve_batch(recipe(**train)) == expected


def test_resolve_batch_explains():
    assert "not divisible by micro-batch 3 x 1 GPU(s); use micro_batch_size 1, 2, 4, 8, 16, or effective_batch_size 15 or 18" \
        in resolve_batch(recipe(effective_batch_size=16, micro_batch_size=3))
    assert "!= micro-batch 2 x accumulation 2 x 1 GPU(s) = 4" in resolve_batch(
        recipe(effective_batch_size=16, micro_batch_size=2, gradient_accumulation=2))


def _plan(r: Recipe) -> Plan:
    return Plan(r, r.model.id, False, None, None, ["a/b"], Path("/out"), Path("/out/data"), 1, 16)


def test_flags_spelled_for_the_installed_major(catalog):
    r = recipe()
    assert "--tuner_type" in render_sft(_plan(r), catalog).argv
    old = Catalog({**catalog.data, "swift_version": "3.9.0"})
    argv = render_sft(_plan(r), old).argv
    assert "--train_type" in argv and "--tuner_type" not in argv


def test_env_for_gpus(catalog):
    r = Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"], "train": {"epochs": 1},
                               "gpu": {"count": 2, "visible_devices": [2, 3]}})
    env = render_sft(_plan(r), catalog).env
    assert env == {"CUDA_VISIBLE_DEVICES": "2,3", "NPROC_PER_NODE": "2",
                   "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True", "SWIFTKIT_NO_CUDNN_SDPA": "1",
                   "SWIFTKIT_RANK_STATS": "/out/.swiftkit/ranks-node0", "PYTHONPATH": str(CHILD_DIR),
                   "SWIFTKIT_DATASET_FINGERPRINT": "random", "SWIFTKIT_DATASET_IN_PROCESS": "1"}
    cpu = Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"], "train": {"epochs": 1},
                                 "gpu": {"count": 0}})
    inv = render_sft(_plan(cpu), catalog)
    assert inv.env == {"CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(CHILD_DIR),
                       "SWIFTKIT_DATASET_IN_PROCESS": "1", "SWIFTKIT_DATASET_FINGERPRINT": "random"}
    assert inv.display().startswith(f"CUDA_VISIBLE_DEVICES= PYTHONPATH={CHILD_DIR} SWIFTKIT_DATASET_IN_PROCESS=1 "
                                    "SWIFTKIT_DATASET_FINGERPRINT=random swift sft ")


def test_datasets_cache_names_are_hashed_only_where_ms_swift_reads_them_back(catalog):
    r = Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"], "train": {"epochs": 1},
                               "swift": {"load_from_cache_file": True}})
    env = render_sft(_plan(r), catalog).env
    assert "SWIFTKIT_DATASET_FINGERPRINT" not in env and env["SWIFTKIT_DATASET_IN_PROCESS"] == "1"


@pytest.mark.parametrize("gpus", [0, 1])
def test_no_dataloader_workers_unless_the_recipe_asks(catalog, gpus):
    """Rows are encoded before training; a worker costs 5 s at exit on a CUDA host. swift: settings win."""
    def argv(swift):
        r = Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"], "train": {"epochs": 1},
                                   "gpu": {"count": gpus}, "swift": swift})
        return render_sft(_plan(r), catalog).argv
    assert argv({})[argv({}).index("--dataloader_num_workers") + 1] == "0"
    asked = argv({"dataloader_num_workers": 4})
    assert asked.count("--dataloader_num_workers") == 1 and asked[asked.index("--dataloader_num_workers") + 1] == "4"
    assert "--dataloader_num_workers" not in argv({"lazy_tokenize": True})  # encoded per batch: workers help
    assert argv({"dataloader_num_workers": 0}).count("--dataloader_num_workers") == 1  # 0 is a setting too
    unset = argv({"lazy_tokenize": False})
    assert unset[unset.index("--dataloader_num_workers") + 1] == "0"


def test_the_users_allocator_setting_wins(catalog, monkeypatch):
    """expandable_segments is swiftkit's default on GPUs (the memory plan holds with it); a user's own wins."""
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:False")
    r = Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"], "train": {"epochs": 1}})
    assert "PYTORCH_CUDA_ALLOC_CONF" not in render_sft(_plan(r), catalog).env


def test_cudnn_attention_is_off_on_gpus_unless_the_recipe_asks(catalog):
    """On a GPU every process of the child runs attention without cuDNN (child/sitecustomize.py), verification's
    answer worker too; gpu.cudnn_attention: true leaves PyTorch's choice alone, and the CPU has nothing to turn off."""
    base = {"model": {"id": "a/b"}, "datasets": ["c/d"], "train": {"epochs": 1}}
    plan = _plan(Recipe.model_validate(base))
    assert render_sft(plan, catalog).env["SWIFTKIT_NO_CUDNN_SDPA"] == "1"
    assert render_sft(plan, catalog).env["PYTHONPATH"] == str(CHILD_DIR)
    assert model_ref(plan, None).env["SWIFTKIT_NO_CUDNN_SDPA"] == "1"  # what verification's processes run in
    for gpu in ({"cudnn_attention": True}, {"count": 0}):
        env = render_sft(_plan(Recipe.model_validate({**base, "gpu": gpu})), catalog).env
        assert "SWIFTKIT_NO_CUDNN_SDPA" not in env


def test_gpu_count_limits_the_visible_cards(catalog, monkeypatch):
    """gpu.count 2 on an 8-GPU host must not become naive model parallelism over all 8."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    r = Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"], "train": {"epochs": 1},
                               "gpu": {"count": 2}})
    assert render_sft(_plan(r), catalog).env["CUDA_VISIBLE_DEVICES"] == "0,1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6")  # what the user exported wins
    assert render_sft(_plan(r), catalog).env["CUDA_VISIBLE_DEVICES"] == "5,6"


text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(system=text, name=text, path=text)
def test_display_round_trips_through_shlex(catalog, system, name, path):
    r = Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"],
                               "train": {"epochs": 1, "system": system}, "name": name})
    plan = Plan(r, path, True, None, None, [path, "c/d#5"], Path(path), Path(path), 1, 16)
    inv = render_sft(plan, catalog)
    words = [f"{k}={v}" for k, v in inv.env.items()]
    assert shlex.split(inv.display()) == words + inv.argv
    # the model or a dataset may itself be spelled "--system": look for the flag followed by the value
    # (a value that starts with '-' goes as one word, --system=VALUE, which ms-swift's parser reads as the value)
    assert any(a == "--system" and b == system for a, b in zip(inv.argv, inv.argv[1:])) \
        or f"--system={system}" in inv.argv


def test_render_json_is_the_whole_command(tmp_path, catalog):
    code, out, err = run_cli("render", str(project(tmp_path)), "--json")
    assert code == 0, err
    cmd = json.loads(out)
    assert cmd["argv"][1] == "sft" and Path(cmd["argv"][0]).name in ("swift", "python", "python3")
    assert cmd["env"] == {"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                          "PYTHONPATH": str(CHILD_DIR), "SWIFTKIT_DATASET_FINGERPRINT": "random",
                          "SWIFTKIT_DATASET_IN_PROCESS": "1"}
    identity = next(a for a in cmd["argv"] if a.endswith("identity.train.jsonl"))
    assert Path(identity).is_file(), "render writes the identity data the command needs"
    assert str(tmp_path / "out" / "data") in identity


def test_identity_data_rendered_not_over_template(tmp_path, catalog):
    template = ROOT / "datasets" / "self_cognition.jsonl"
    before = template.read_bytes()
    run_cli("render", str(project(tmp_path)))
    assert template.read_bytes() == before
    rows = [json.loads(line) for line in (tmp_path / "out/data/identity.train.jsonl").read_text().splitlines()]
    assert any("Tiny-Robot" in m["content"] for r in rows for m in r["messages"])
    assert not any("{{" in m["content"] for r in rows for m in r["messages"])


def test_every_bundled_recipe_is_accepted_by_ms_swift(catalog, tmp_path):
    """Parse only, with ms-swift's own HfArgumentParser (abbreviations off): nothing left over."""
    from helpers import make_model_dir

    tiny = [f"model.id={make_model_dir(tmp_path / 'model')}"]  # the demo builds the real one
    requests, names = [], []
    for path in BUNDLED:
        overrides = tiny if path.name.startswith("tiny-") else []
        if path.name.startswith("real-"):  # demo --real sets model.id: SmolLM2, a chatml model
            overrides = tiny + ["model.template=chatml"]
        for verb, inv in planned_invocations(check(path, catalog=catalog, overrides=overrides)).items():
            requests.append((verb, inv.argv[2:]))
            names.append(f"{path.name} {verb}")
    assert len(BUNDLED) >= 5
    leftovers = parse_with_swift(requests)
    assert {n: left for n, left in zip(names, leftovers) if left} == {}


def test_ms_swift_parser_really_rejects(catalog):
    """The acceptance test above can fail: the same parser rejects a renamed and an abbreviated flag."""
    assert parse_with_swift([("sft", ["--model", "x", "--train_type", "lora", "--lora_r", "8"])]) == [
        ["--train_type", "lora", "--lora_r", "8"]]
