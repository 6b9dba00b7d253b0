"""launch/node.py: which node this is, from options, Slurm's environment or NNODES/NODE_RANK; and the commands
every combination renders (1 GPU, n GPUs, n nodes, DeepSpeed, FSDP, CPU, a Slurm environment)."""
from __future__ import annotations

from pathlib import Path

import pytest

from swiftkit.errors import UserError
from swiftkit.launch.node import Launch, LaunchOptions, expand_hostlist, resolve_launch, slurm_port
from swiftkit.recipe.models import Recipe
from swiftkit.render import Plan, render_sft


@pytest.mark.parametrize("text, hosts", [
    ("gpu01", ["gpu01"]),
    ("gpu[01-03]", ["gpu01", "gpu02", "gpu03"]),
    ("gpu[08-10,15],login1", ["gpu08", "gpu09", "gpu10", "gpu15", "login1"]),
    ("a[1-2]-ib", ["a1-ib", "a2-ib"]),
    ("n[1-2]r[1-2]", ["n1r1", "n1r2", "n2r1", "n2r2"]),
])
def test_expand_hostlist(text, hosts):
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("text, why", [("", "empty"), ("gpu[01-03", "unbalanced"), ("gpu[3-1]", "backwards"),
                                       ("gpu[a-b]", "not a number"), ("a,,b", "empty host")])
def test_expand_hostlist_refuses(text, why):
    with pytest.raises(ValueError, match=why):
        expand_hostlist(text)


def test_one_node_when_nothing_says_otherwise():
    assert resolve_launch(LaunchOptions(), {}) == Launch()
    assert Launch().env() == {} and Launch().is_primary


def test_options_win_over_the_environment():
    env = {"SLURM_JOB_ID": "7", "SLURM_NNODES": "4", "SLURM_NODEID": "3", "SLURM_JOB_NODELIST": "x[1-4]"}
    launch = resolve_launch(LaunchOptions(2, 1, "10.0.0.1", 29555), env)
    assert launch.env() == {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29555"}
    assert launch.source == "options" and not launch.is_primary


def test_slurm_environment():
    env = {"SLURM_JOB_ID": "123456", "SLURM_NNODES": "3", "SLURM_NODEID": "2",
           "SLURM_JOB_NODELIST": "gpu[07-09]", "SLURM_NTASKS_PER_NODE": "1"}
    launch = resolve_launch(None, env)
    assert (launch.nnodes, launch.node_rank, launch.master_addr) == (3, 2, "gpu07")
    assert launch.master_port == slurm_port(123456) == 20000 + 123456 % 20000
    assert launch.job_id == "123456" and "Slurm job 123456" in launch.describe()


def test_slurm_one_task_per_node():
    env = {"SLURM_JOB_ID": "5", "SLURM_NNODES": "2", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "a[1-2]",
           "SLURM_NTASKS_PER_NODE": "4"}
    with pytest.raises(UserError) as err:
        resolve_launch(None, env)
    text = err.value.format()
    assert "SLURM_NTASKS_PER_NODE=4: swiftkit runs once per node" in text and "--ntasks-per-node=1" in text


def test_slurm_batch_script_itself_is_not_a_node():
    env = {"SLURM_JOB_ID": "5", "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "a[1-2]"}
    with pytest.raises(UserError, match="SLURM_NODEID is not set: this is the batch script"):
        resolve_launch(None, env)


def test_nnodes_environment():
    env = {"NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "m", "MASTER_PORT": "29600"}
    assert resolve_launch(None, env).env() == env


@pytest.mark.parametrize("options, env, says", [
    (LaunchOptions(nnodes=2, master_addr="m"), {}, "--nnodes 2 without --node-rank"),
    (LaunchOptions(nnodes=2, node_rank=1), {}, "--nnodes 2 without --master-addr"),
    (LaunchOptions(nnodes=2, node_rank=2, master_addr="m"), {}, "node rank 2 is not one of 0..1 (options)"),
    (None, {"NNODES": "two"}, "NNODES='two' is not a whole number"),
    (None, {"NNODES": "2", "NODE_RANK": "0"}, "NNODES=2 without MASTER_ADDR"),
    (None, {"SLURM_JOB_ID": "1", "SLURM_NNODES": "2", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "a[1-"},
     "SLURM_JOB_NODELIST='a[1-': unbalanced brackets"),
])
def test_unclear_launch_is_refused_with_the_fix(options, env, says):
    with pytest.raises(UserError) as err:
        resolve_launch(options, env)
    text = err.value.format()
    assert says in text and "fix:" in text and "nothing was run" in text


# -- what each combination renders --------------------------------------------------------------------

def _recipe(gpu: dict, distributed: dict | None = None, **train) -> Recipe:
    return Recipe.model_validate({"model": {"id": "a/b"}, "datasets": ["c/d"], "gpu": gpu,
                                  "distributed": distributed or {},
                                  "train": {"epochs": 1, "effective_batch_size": 16, **train}})


def _render(recipe: Recipe, catalog, launch: Launch = Launch(), **plan):
    from swiftkit.render import resolve_batch

    micro, accum = resolve_batch(recipe)
    p = Plan(recipe, "a/b", False, None, None, ["c/d"], Path("/out"), Path("/out/data"), micro, accum,
             launch=launch, **plan)
    inv = render_sft(p, catalog)
    args = inv.argv[2:]
    flags = {args[i][2:]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")
             and not args[i + 1].startswith("--")}
    return inv.env, flags


def test_one_gpu_is_one_process(catalog):
    env, flags = _render(_recipe({"count": 1}), catalog)
    assert "NPROC_PER_NODE" not in env and "NNODES" not in env
    assert not {"ddp_timeout", "ddp_backend", "ddp_find_unused_parameters", "deepspeed"} & set(flags)
    assert flags["per_device_train_batch_size"] == "16"


def test_gpus_of_one_node(catalog):
    env, flags = _render(_recipe({"count": 4}), catalog)
    assert env["NPROC_PER_NODE"] == "4" and env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" and "NNODES" not in env
    assert flags["per_device_train_batch_size"] == "4" and flags["ddp_timeout"] == "1800"
    assert flags["ddp_find_unused_parameters"] == "false"  # LoRA: every trainable matrix gets a gradient
    assert "ddp_backend" not in flags  # nccl, torch's default on GPUs


def test_nodes(catalog):
    launch = Launch(2, 1, "10.0.0.1", 29500, "options")
    env, flags = _render(_recipe({"count": 4, "nodes": 2}), catalog, launch)
    assert {k: env[k] for k in ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")} == {
        "NPROC_PER_NODE": "4", "NNODES": "2", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    assert env["SWIFTKIT_RANK_STATS"] == "/out/.swiftkit/ranks-node1"
    assert flags["per_device_train_batch_size"] == "2"  # 16 = 2 x 1 x 4 GPUs x 2 nodes


def test_slurm_environment_renders_the_same_as_options(catalog):
    env = {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "g[1-2]"}
    rendered, _ = _render(_recipe({"count": 2, "nodes": 2}), catalog, resolve_launch(None, env))
    assert (rendered["MASTER_ADDR"], rendered["MASTER_PORT"], rendered["NODE_RANK"]) == ("g1", "24242", "1")


def test_cpu_nodes_use_gloo(catalog):
    env, flags = _render(_recipe({"count": 0, "nodes": 2}), catalog, Launch(2, 0, "127.0.0.1", 29500))
    assert env["NPROC_PER_NODE"] == "1" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert flags["ddp_backend"] == "gloo" and flags["per_device_train_batch_size"] == "8"


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_deepspeed_builtin_on_one_gpu_still_uses_torchrun(catalog, name):
    env, flags = _render(_recipe({"count": 1}, {"deepspeed": name}), catalog)
    assert flags["deepspeed"] == name and env["NPROC_PER_NODE"] == "1"
    assert "ddp_find_unused_parameters" not in flags  # DeepSpeed has its own engine


def test_deepspeed_file_and_mapping(catalog):
    _, flags = _render(_recipe({"count": 2}, {"deepspeed": "ds.json"}), catalog, deepspeed_config=Path("/r/ds.json"))
    assert flags["deepspeed"] == "/r/ds.json"
    _, flags = _render(_recipe({"count": 2}, {"deepspeed": {"zero_optimization": {"stage": 2}}}), catalog)
    assert flags["deepspeed"] == '{"zero_optimization": {"stage": 2}}'


def test_fsdp(catalog):
    env, flags = _render(_recipe({"count": 2}, {"fsdp": "fsdp2"}), catalog)
    assert flags["fsdp"] == "fsdp2" and env["NPROC_PER_NODE"] == "2"


def test_distributed_settings_are_rendered_as_given(catalog):
    _, flags = _render(_recipe({"count": 2}, {"timeout": 600, "find_unused_parameters": True, "backend": "gloo"}),
                       catalog)
    assert (flags["ddp_timeout"], flags["ddp_find_unused_parameters"], flags["ddp_backend"]) == ("600", "true", "gloo")
