"""checks/distributed.py: a run over several processes or nodes is checked before anything starts."""
from __future__ import annotations

import pytest
from conftest import run_cli
from helpers import project

from swiftkit.checks.collect import check
from swiftkit.errors import UserError
from swiftkit.launch.node import Launch


def problems(tmp_path, *overrides: str, launch: Launch | None = None, recipe_extra: str = "") -> str:
    path = project(tmp_path)
    if recipe_extra:
        path.write_text(path.read_text() + recipe_extra, encoding="utf-8")
    with pytest.raises(UserError) as err:
        check(path, overrides=list(overrides), launch=launch)
    return err.value.format()


def test_the_launch_must_match_the_recipes_nodes(tmp_path):
    text = problems(tmp_path, launch=Launch(2, 1, "m", 29500, "options"))
    assert "gpu.nodes: this is node 1 of 2, master m:29500 (options), a run of 2 node(s), but the recipe's " \
           "gpu.nodes is 1" in text and "fix: --set gpu.nodes=2, or start 1 node(s)" in text


def test_effective_batch_counts_every_node(tmp_path):
    text = problems(tmp_path, "gpu.nodes=3", "train.effective_batch_size=4", "train.micro_batch_size=2")
    assert "effective batch 4 is not divisible by micro-batch 2 x 1 CPU process x 3 nodes" in text


def test_deepspeed_on_the_cpu_and_with_fsdp(tmp_path):
    text = problems(tmp_path, "distributed.deepspeed=zero2", "distributed.fsdp=fsdp2")
    assert "distributed.fsdp: DeepSpeed and FSDP both shard the model; ms-swift takes one" in text
    assert "distributed.deepspeed: deepspeed trains on GPUs; gpu.count is 0 (the CPU)" in text


def test_a_deepspeed_name_typo_and_a_missing_file(tmp_path):
    text = problems(tmp_path, "gpu.count=1", "distributed.deepspeed=zer02")
    assert "does not exist" in text and "did you mean 'zero2'?" in text


def test_a_deepspeed_file_that_is_not_json(tmp_path):
    (tmp_path / "ds.json").write_text('{"zero_optimization": {"stage": 2,}}')
    text = problems(tmp_path, "gpu.count=1", recipe_extra="distributed: {deepspeed: ds.json}\n")
    assert "ds.json:1:35 is not valid JSON" in text and "fix the JSON at that line" in text


def test_deepspeed_batch_settings_must_be_auto_or_agree(tmp_path):
    (tmp_path / "ds.json").write_text('{"train_micro_batch_size_per_gpu": 4, "zero_optimization": {"stage": 3}}')
    text = problems(tmp_path, "gpu.count=1", "lora.quant_bits=4",
                    recipe_extra="distributed: {deepspeed: ds.json}\n")
    assert "ZeRO-3 cannot partition 4-bit bitsandbytes weights (QLoRA)" in text
    assert "the DeepSpeed config sets train_micro_batch_size_per_gpu 4, the recipe 2" in text
    assert '"train_micro_batch_size_per_gpu": "auto"' in text


def test_escape_hatch_settings_that_distributed_owns(tmp_path):
    text = problems(tmp_path, "swift.ddp_timeout=60")
    assert "swift.ddp_timeout: --ddp_timeout is a recipe key now" in text and "distributed.timeout" in text


def test_a_run_refuses_deepspeed_where_it_is_not_installed(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    text = problems(tmp_path, "gpu.count=1", "distributed.deepspeed=zero2", launch=Launch())
    assert "distributed.deepspeed needs the deepspeed package, which is not installed here" in text


def test_validate_notes_how_to_start_several_nodes(tmp_path):
    code, out, err = run_cli("validate", str(project(tmp_path)), "--set", "gpu.nodes=2",
                             "--set", "train.effective_batch_size=4")
    assert code == 0, err
    assert "x 1 CPU process x 2 nodes)" in out
    assert "note: gpu.nodes 2: run `swiftkit run` on every node (--nnodes 2 --node-rank R" in out
