"""`swiftkit slurm`: the sbatch script rendered from a recipe, the refusals a user sees, and (e2e) the script
run by a real one-host Slurm cluster (tests/slurm/cluster.py) through the real `swiftkit run` and ms-swift."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import RECIPE, project
from test_multinode import RECIPE as TWO_NODES  # CPU (gloo), two nodes, the tiny model

from swiftkit.commands.slurm import slurm, swiftkit_command
from swiftkit.errors import UserError
from swiftkit.launch.slurm import SlurmOptions, render_sbatch
from swiftkit.recipe.models import load_recipe

SWIFTKIT = ["/opt/venv/bin/swiftkit"]


@pytest.fixture
def recipe(write):
    """A schema-valid recipe (no model needed: render_sbatch only reads gpu, output and name)."""
    return write("recipe.yaml", "name: identity 7b\n" + RECIPE.replace("count: 0", "count: 8"))


def render(recipe: Path, overrides=(), workdir=None, **options) -> str:
    loaded = load_recipe(recipe, list(overrides)).recipe
    return render_sbatch(Path(recipe.name), SlurmOptions(**options), list(overrides), SWIFTKIT, recipe=loaded,
                         workdir=workdir or recipe.parent)


def refusal(recipe: Path, overrides=(), **options) -> str:
    with pytest.raises(UserError) as err:
        render(recipe, overrides, **options)
    return err.value.format()


def sbatch_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def srun_argv(script: str) -> list[str]:
    """The srun command as bash would split it (continuation lines joined)."""
    text = script.replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("srun "))
    return shlex.split(line)


def bash_n(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "job.sbatch"
    path.write_text(script, encoding="utf-8")
    return subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)


# -- the script ------------------------------------------------------------------------------------

def test_defaults_come_from_the_recipe(recipe, tmp_path):
    script = render(recipe)
    assert script.startswith("#!/bin/bash\n")
    assert sbatch_lines(script) == [
        "#SBATCH --job-name=identity-7b",  # the recipe's name, made safe for a log file name
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=8",  # gpu.count
        "#SBATCH --cpus-per-task=64",  # 8 a GPU
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --signal=TERM@120",
        f"#SBATCH --output={tmp_path}/slurm-%x-%j.out",
    ]
    assert "\nset -euo pipefail\n" in script
    assert f"\ncd {tmp_path}\n" in script
    assert srun_argv(script) == ["srun", "--kill-on-bad-exit=1", "--nodes=1", "--ntasks-per-node=1",
                                 "--cpus-per-task=64", f"--output={tmp_path}/slurm-%x-%j-node%n.out",
                                 *SWIFTKIT, "run", str(tmp_path / "recipe.yaml")]
    assert bash_n(script, tmp_path).returncode == 0


def test_every_option_lands_in_the_script(recipe, tmp_path):
    script = render(recipe, ["train.epochs=2", "gpu.nodes=4"], nodes=4, gpus_per_node=8, partition="h100", time="2-00:00:00",
                    account="proj-42", job_name="id7b", cpus_per_task=32, mem="400G",
                    sbatch_options=("qos=high", "--constraint=h100&ib", "exclusive"))
    lines = sbatch_lines(script)
    for line in ["--job-name=id7b", "--nodes=4", "--ntasks-per-node=1", "--gpus-per-node=8", "--cpus-per-task=32",
                 "--partition=h100", "--time=2-00:00:00", "--account=proj-42", "--mem=400G", "--requeue",
                 "--qos=high", "--constraint=h100&ib", "--exclusive"]:
        assert f"#SBATCH {line}" in lines
    argv = srun_argv(script)
    assert "--nodes=4" in argv and "--cpus-per-task=32" in argv  # srun 22.05+ does not inherit cpus-per-task
    assert argv[-6:] == ["run", str(tmp_path / "recipe.yaml"), "--set", "train.epochs=2", "--set", "gpu.nodes=4"]


def test_a_cpu_recipe_asks_for_no_gpus(write):
    script = render(write("cpu.yaml", RECIPE))
    assert not any("gpus-per-node" in line for line in sbatch_lines(script))
    assert "#SBATCH --cpus-per-task=4" in sbatch_lines(script)
    assert "#SBATCH --job-name=cpu" in sbatch_lines(script)  # no name: the file's stem


def test_no_requeue_drops_requeue_and_says_so(recipe):
    script = render(recipe, requeue=False)
    assert "#SBATCH --requeue" not in script
    assert "--no-requeue: a preempted job or a failed node ends the job" in script


def test_the_script_leaves_the_rendezvous_to_swiftkit_run(recipe):
    script = render(recipe, ["gpu.nodes=2"])
    assert "#SBATCH --nodes=2" in script
    for computed in ("MASTER_ADDR", "MASTER_PORT", "scontrol show hostnames", "NODE_RANK", "export "):
        assert computed not in script
    assert "SLURM_NODEID, SLURM_NNODES, SLURM_JOB_NODELIST" in script
    assert "output.resume: auto, `swiftkit run` continues from the last complete checkpoint" in script


def test_paths_and_overrides_with_spaces_and_quotes_survive_bash_and_sbatch(write, tmp_path):
    recipe = write("my runs/recipe.yaml", RECIPE)
    workdir = tmp_path / "my runs"
    sets = ["train.system=You're a bot; rm -rf ~", "output.dir=out dir/$HOME"]
    script = render_sbatch(Path("recipe.yaml"), SlurmOptions(sbatch_options=('comment=a "b" \\c #d',)), sets,
                           ["/opt/my env/bin/swiftkit"], recipe=load_recipe(recipe, sets).recipe, workdir=workdir)
    assert bash_n(script, tmp_path).returncode == 0
    assert f"\ncd '{workdir}'\n" in script
    assert srun_argv(script)[-7:] == ["/opt/my env/bin/swiftkit", "run", str(workdir / "recipe.yaml"),
                                      "--set", sets[0], "--set", sets[1]]
    # sbatch's own #SBATCH parser: double quotes group, backslash escapes, an unquoted # is a comment
    assert f'#SBATCH "--output={workdir}/slurm-%x-%j.out"' in script
    assert '#SBATCH "--comment=a \\"b\\" \\\\c #d"' in script


def test_a_percent_in_the_directory_is_not_a_filename_pattern(write, tmp_path):
    recipe = write("100%/recipe.yaml", RECIPE)
    script = render(recipe)
    assert f"--output={tmp_path}/100%%/slurm-%x-%j.out" in script


def test_nodes_default_to_the_recipes_gpu_nodes():
    recipe = SimpleNamespace(name="big", gpu=SimpleNamespace(count=8, nodes=4),
                             output=SimpleNamespace(resume="auto"))
    script = render_sbatch(Path("r.yaml"), SlurmOptions(), [], SWIFTKIT, recipe=recipe, workdir=Path("/w"))
    assert "#SBATCH --nodes=4" in script and "#SBATCH --gpus-per-node=8" in script
    with pytest.raises(UserError) as err:
        render_sbatch(Path("r.yaml"), SlurmOptions(nodes=2), [], SWIFTKIT, recipe=recipe, workdir=Path("/w"))
    assert err.value.format() == (
        "r.yaml: 1 problem(s); no sbatch script was written\n"
        "r.yaml: gpu.nodes: --nodes 2, but the recipe's gpu.nodes is 4: `swiftkit run` would refuse to start on "
        "each node\n    fix: --set gpu.nodes=2 (then --nodes can be left out), or --nodes 4")


def test_nodes_follow_a_set_gpu_nodes(recipe):
    if "nodes" not in type(load_recipe(recipe).recipe.gpu).model_fields:
        pytest.skip("this recipe schema has no gpu.nodes yet")
    assert "#SBATCH --nodes=1" in render(recipe)
    assert "#SBATCH --nodes=4" in render(recipe, ["gpu.nodes=4"])
    assert "--nodes 4, but the recipe's gpu.nodes is 1" in refusal(recipe, nodes=4)


# -- refusals --------------------------------------------------------------------------------------

def test_resume_never_is_refused_with_the_fix(recipe):
    message = refusal(recipe, ["output.resume=never"])
    assert message == (
        "recipe.yaml: 1 problem(s); no sbatch script was written\n"
        "recipe.yaml: output.resume: output.resume is never: a requeued job (preempted, or its node failed) would "
        "start the training over and throw away its checkpoints\n"
        "    fix: add --set output.resume=auto (continue from the last complete checkpoint), or pass --no-requeue")
    assert "#SBATCH --requeue" not in render(recipe, ["output.resume=never"], requeue=False)


@pytest.mark.parametrize("good", ["90", "30:00", "12:00:00", "2-12", "2-12:30", "2-12:30:00", "UNLIMITED"])
def test_slurm_time_formats_are_accepted(recipe, good):
    assert f"#SBATCH --time={good}" in render(recipe, time=good)


@pytest.mark.parametrize("bad", ["2h", "1:2:3:4", "1-", "1.5", "", "12:00:00\n#SBATCH --x"])
def test_a_bad_time_is_refused_naming_the_formats(recipe, bad):
    assert refusal(recipe, time=bad) == (
        "recipe.yaml: 1 problem(s); no sbatch script was written\n"
        f"--time: {bad!r} is not a Slurm time limit\n"
        "    fix: write minutes (90), MM:SS, HH:MM:SS (12:00:00), D-HH, D-HH:MM or D-HH:MM:SS (2-00:00:00 is two days)")


def test_every_bad_option_is_reported_at_once(recipe):
    message = refusal(recipe, nodes=0, gpus_per_node=-1, cpus_per_task=0, time="1h", mem="lots",
                      job_name="my job", partition="a b", sbatch_options=("nodes=2", "qos=high\n#x", "-x", "=1"))
    assert message.startswith("recipe.yaml: 11 problem(s); no sbatch script was written\n")
    for expected in ["--nodes: 0 nodes: a job needs at least one\n    fix: give --nodes 1 or more",
                     "--gpus-per-node: -1 GPUs per node\n    fix: give 0 (a CPU run) or more",
                     "--cpus-per-task: 0 CPUs per task",
                     "--time: '1h' is not a Slurm time limit",
                     "--mem: 'lots' is not a Slurm memory size\n    fix: write a number with an optional unit",
                     "--job-name: job name 'my job': it names the log files, so no whitespace",
                     "--partition: 'a b' has whitespace or control characters",
                     "--sbatch-option: nodes is set by swiftkit slurm itself\n    fix: use swiftkit slurm's --nodes",
                     "--sbatch-option: 'qos=high\\n#x' has a newline or control character: it would end the "
                     "#SBATCH line\n    fix: give one KEY=VALUE on one line",
                     "--sbatch-option: '-x' is not KEY=VALUE with a long sbatch option name"]:
        assert expected in message


def test_fewer_gpus_a_node_than_the_recipe_starts_is_refused(recipe):
    assert ("recipe.yaml: gpu.count: --gpus-per-node 4, but the recipe starts gpu.count 8 processes a node\n"
            "    fix: add --set gpu.count=4, or ask for 8 GPUs a node") in refusal(recipe, gpus_per_node=4)
    assert "#SBATCH --gpus-per-node=16" in render(recipe, gpus_per_node=16)


# -- the verb ---------------------------------------------------------------------------------------

@pytest.fixture
def checked_project(tmp_path, catalog, monkeypatch):
    """A recipe that passes every check (local model dir, data), the current directory beside it."""
    path = project(tmp_path)
    monkeypatch.chdir(tmp_path)
    return path


def test_the_verb_prints_a_script_for_a_checked_recipe(checked_project, capsys):
    assert slurm("recipe.yaml", overrides=["train.epochs=2"], time="60") == 0
    out = capsys.readouterr().out
    assert out.startswith("#!/bin/bash\n") and "#SBATCH --time=60" in out
    assert srun_argv(out)[-5:] == [*swiftkit_command(), "run", str(checked_project), "--set", "train.epochs=2"][-5:]


def test_the_verb_refuses_a_bad_recipe_before_any_script(checked_project, capsys):
    with pytest.raises(UserError) as err:
        slurm("recipe.yaml", overrides=["train.max_steps=10"])
    assert "give exactly one of train.epochs and train.max_steps (both are set)" in err.value.format()
    assert capsys.readouterr().out == ""


def test_the_verb_writes_an_executable_script(checked_project, capsys):
    assert slurm("recipe.yaml", job_name="tiny", output="job.sbatch") == 0
    assert capsys.readouterr().out == "job.sbatch\n  submit: sbatch job.sbatch\n"
    assert "#SBATCH --job-name=tiny" in Path("job.sbatch").read_text()
    assert os.access("job.sbatch", os.X_OK)


def test_the_nodes_run_this_swiftkit():
    argv = swiftkit_command()
    assert argv == [str(Path(os.path.abspath(sys.executable)).parent / "swiftkit")] or argv[1:] == ["-m",
                                                                                                   "swiftkit.cli"]
    assert subprocess.run([*argv, "--version"], capture_output=True).returncode == 0


# -- a real cluster ----------------------------------------------------------------------------------

TINY = """\
name: slurm-tiny
model: {{id: model, model_type: qwen2, template: qwen2_5, dtype: float32}}
identity: {{name: Swift-Robot, author: Test}}
datasets: [identity]
lora: {{rank: 8, alpha: 16}}
train:
  max_steps: {steps}
  learning_rate: 1.0e-2
  warmup_ratio: 0
  effective_batch_size: 4
  micro_batch_size: 4
  max_length: 1024
  gradient_checkpointing: false
  logging_steps: 1
  save_steps: {save}
  save_total_limit: 2
gpu: {{count: 0}}
output: {{dir: out}}
verify: {{enabled: false}}
swift: {{report_to: none}}
"""


def _start_cluster(root: Path, nodes: int = 1):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "slurm"))
    from cluster import Cluster, ClusterUnavailable

    running = Cluster(root, nodes=nodes)
    try:
        running.start()
    except ClusterUnavailable as why:
        what = "Slurm cluster" if nodes == 1 else f"{nodes}-node Slurm cluster (one slurmd per node on this host)"
        pytest.skip(f"no {what} here: {why}")
    return running


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = _start_cluster(tmp_path_factory.mktemp("slurm"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def two_node_cluster(tmp_path_factory):
    """Nodes HOST and HOST-1 (HOST: this machine's name): two slurmd on this host, one CPU each
    (tests/slurm/cluster.py)."""
    running = _start_cluster(tmp_path_factory.mktemp("slurm2"), nodes=2)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from swiftkit.tinymodel import build_tiny_model, identity_corpus

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model",
                            identity_corpus([{"query": "Who are you?", "response": "I am Swift-Robot."}]))


@pytest.fixture
def job_dir(tmp_path, tiny_model, catalog, monkeypatch):
    """A project dir whose name has a space (every path in the script is quoted), the cwd of the command."""
    work = tmp_path / "slurm job"
    work.mkdir()
    shutil.copytree(tiny_model, work / "model")
    monkeypatch.chdir(work)
    return work


def _script(work: Path, steps: int, save: int, **options) -> Path:
    (work / "recipe.yaml").write_text(TINY.format(steps=steps, save=save), encoding="utf-8")
    assert slurm("recipe.yaml", cpus_per_task=1, output="job.sbatch", **options) == 0
    return work / "job.sbatch"


def _node_log(work: Path, job_id: int) -> str:
    return (work / f"slurm-slurm-tiny-{job_id}-node0.out").read_text(errors="replace")


@pytest.mark.e2e
def test_sbatch_script_runs_on_a_real_single_host_cluster(cluster, job_dir):
    script = _script(job_dir, steps=2, save=1)
    test_only = cluster.sbatch(script, "--test-only", cwd=job_dir)
    assert test_only.returncode == 0 and "to start at" in test_only.stderr, test_only.stderr

    job_id = cluster.submit(script, cwd=job_dir)
    info = cluster.wait(job_id, timeout=300)
    log = _node_log(job_dir, job_id)
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), log[-3000:]
    assert f"swiftkit: training {job_dir / 'recipe.yaml'}" in log
    assert re.search(r"swiftkit: trained: .*/checkpoint-2\n", log)
    assert (job_dir / f"slurm-slurm-tiny-{job_id}.out").exists()  # the batch script's own log


@pytest.mark.e2e
def test_a_near_time_limit_sends_term_and_swiftkit_stops_cleanly(cluster, job_dir):
    """--time 3 (minutes): Slurm sends SIGTERM 120 s before the limit, about a minute in, while training runs.
    (With --time 1 the signal came at Slurm's first check, at times before swiftkit had started training.)"""
    script = _script(job_dir, steps=100000, save=50, time="3")
    job_id = cluster.submit(script, cwd=job_dir)
    info = cluster.wait(job_id, timeout=300)
    log = _node_log(job_dir, job_id)
    assert "swiftkit: The run was stopped by SIGTERM." in log, log[-3000:]
    assert "try: Run the same command again to resume from the last complete checkpoint." in log
    assert info["JobState"] in ("FAILED", "TIMEOUT"), info


@pytest.mark.e2e
def test_a_requeued_job_resumes_from_its_last_checkpoint(cluster, job_dir, fault_env):
    fault_env(STEP_SLEEP=0.5)  # ~20 s of training: time to requeue it halfway (sbatch passes the env on)
    script = _script(job_dir, steps=40, save=5)
    job_id = cluster.submit(script, cwd=job_dir)
    log = job_dir / f"slurm-slurm-tiny-{job_id}-node0.out"
    _wait_until(lambda: log.exists() and re.search(r"step (1[0-9]|[2-9][0-9])/40", log.read_text()), 240)
    subprocess.run(["scontrol", "requeue", str(job_id)], env=cluster.env, check=True)
    _wait_until(lambda: cluster.job(job_id).get("JobState") == "PENDING", 120)
    # a requeued job is held back ~2 minutes (its BeginTime); let it start now
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=cluster.env, check=True)
    info = cluster.wait(job_id, timeout=300)
    text = log.read_text(errors="replace")
    assert (info["JobState"], info["Restarts"]) == ("COMPLETED", "1"), text[-3000:]
    assert "DUE TO JOB REQUEUE" in text
    resumed = re.search(r"swiftkit: resuming the unfinished run from .*/checkpoint-(\d+) \(step (\d+)\)", text)
    assert resumed and int(resumed[1]) >= 5, text[-3000:]
    assert re.search(r"swiftkit: trained: .*/checkpoint-40\n", text)


def _wait_until(condition, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(1)


# -- two nodes ----------------------------------------------------------------------------------------



@pytest.fixture(scope="module")
def general_tiny_model(tmp_path_factory):
    from swiftkit.commands.demo import DEMO_RECIPE, make_tiny_model

    return make_tiny_model(DEMO_RECIPE, tmp_path_factory.mktemp("tiny-general") / "model")


@pytest.mark.e2e
def test_a_two_node_job_trains_one_run(two_node_cluster, general_tiny_model, catalog, tmp_path, monkeypatch):
    """`swiftkit slurm --nodes 2` -> sbatch -> srun starts one `swiftkit run` on each node, which find their
    rank, the master (the node list's first host: this machine's name) and the port (from the job id) in Slurm's
    environment alone, and train one run together through torchrun over gloo."""
    import json

    from swiftkit.launch.node import slurm_port

    work = tmp_path / "two nodes"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "recipe.yaml").write_text(TWO_NODES.format(model=general_tiny_model, verify="true"), encoding="utf-8")
    assert slurm("recipe.yaml", nodes=2, gpus_per_node=0, cpus_per_task=1, job_name="two-nodes",
                 output="job.sbatch") == 0
    script = (work / "job.sbatch").read_text()
    assert "#SBATCH --nodes=2" in script and "--nodes=2" in srun_argv(script)

    job_id = two_node_cluster.submit(work / "job.sbatch", cwd=work)
    info = two_node_cluster.wait(job_id, timeout=360)
    logs = [work / f"slurm-two-nodes-{job_id}-node{n}.out" for n in (0, 1)]
    text = [log.read_text(errors="replace") if log.exists() else "(no log)" for log in logs]
    shown = f"node 0:\n{text[0][-3000:]}\nnode 1:\n{text[1][-3000:]}"
    assert (info["JobState"], info["ExitCode"]) == ("COMPLETED", "0:0"), shown
    host = two_node_cluster.host
    assert info["NodeList"] == f"{host},{host}-1" and info["NumNodes"] == "2", info
    assert all(log.is_file() for log in logs) and (work / f"slurm-two-nodes-{job_id}.out").is_file()

    source = f"Slurm job {job_id}"
    master = f"master {host}:{slurm_port(job_id)} ({source})"
    assert f"swiftkit: node 0 of 2, {master}; node 0 owns the run record" in text[0], shown
    assert f"swiftkit: node 1 of 2, {master}; node 0 decides, this node follows" in text[1], shown

    runs = sorted((work / "out").glob("v*-*"))
    assert len(runs) == 1, runs
    run = runs[0]
    assert [p.name for p in run.glob("swiftkit-run*.json")] == ["swiftkit-run.json"]
    record = json.loads((run / "swiftkit-run.json").read_text())
    assert record["status"] == "succeeded", shown
    assert record["launch"]["source"] == source and record["launch"]["job_id"] == str(job_id)
    assert (record["launch"]["nnodes"], record["launch"]["master_addr"]) == (2, host)
    assert record["summary"]["global_step"] == 8  # 74 rows, 2 epochs, 24 a step over both nodes
    for rank in (0, 1):
        node = json.loads((run / f"swiftkit-node-{rank}.json").read_text())
        assert (node["node_rank"], node["returncode"]) == (rank, 0), node
    assert (run / "swiftkit.log").is_file() and (run / "swiftkit-node1.log").is_file()
