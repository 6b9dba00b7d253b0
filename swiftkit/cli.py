"""Click wiring only: options -> keyword arguments -> commands.*, inside one error handler.

Exit codes: 0 ok, 1 runtime failure, 2 invalid input or usage.
"""
from __future__ import annotations

import sys

import click

from swiftkit import __version__
from swiftkit.error_handler import handled


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="swiftkit")
def cli() -> None:
    """swiftkit: LoRA fine-tunes with ms-swift, from a checked recipe to a verified adapter.

    \b
    Example:
      $ swiftkit validate recipes/identity.yaml
      ok: recipes/identity.yaml (ms-swift 4.6.0; micro-batch 16 x accumulation 1 x 1 GPU(s))
    """


@cli.command()
@click.argument("recipes", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
def validate(recipes: tuple[str, ...], overrides: tuple[str, ...]) -> int:
    """Check recipes against the schema, their data, their model and the installed ms-swift.

    Nothing is run and nothing is written. Every problem is reported with its file, line,
    key and a fix.

    \b
    Example:
      $ swiftkit validate recipes/identity.yaml
      ok: recipes/identity.yaml (ms-swift 4.6.0; micro-batch 16 x accumulation 1 x 1 GPU(s))
        note: model Qwen/Qwen2.5-7B-Instruct is a hub id: it is fetched at run time and cannot be checked offline
    """
    from swiftkit.commands.validate import validate as run

    return run(list(recipes), list(overrides))


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
@click.option("--gpu-memory-gb", type=click.FloatRange(min=1), help="Plan for a card with this much memory.")
@click.option("--gpu", "gpu_name", help="Plan for this card (e.g. 4090, A100 80GB, H100): its memory and speed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: peak_memory_gib, micro_batch_size, "
                                                      "gradient_checkpointing, fits, breakdown, ...")
def plan(recipe: str, overrides: tuple[str, ...], gpu_memory_gb: float | None, gpu_name: str | None,
         as_json: bool) -> int:
    """Predict the run's peak GPU memory before anything loads: will it fit, with what margin, how fast.

    From the model's config.json (never its weights), the recipe's settings and the longest row of
    its data as ms-swift's template encodes it. The card: --gpu-memory-gb, --gpu, the recipe's
    gpu.emulate_memory_gb or gpu.memory_gb, or the GPU found. `auto` settings are resolved as a run
    would resolve them. Exit 2 when the plan does not fit.

    \b
    Example:
      $ swiftkit plan recipes/presets/24gb-identity.yaml
      plan: peak 16.4 GiB (micro-batch 16 x 61 tokens, checkpointing on); fits 23.4 GiB usable ...
      $ swiftkit plan recipes/identity.yaml --gpu 4090 --json
    """
    from swiftkit.commands.plan import plan as go

    return go(recipe, overrides=list(overrides), gpu_memory_gb=gpu_memory_gb, gpu_name=gpu_name, as_json=as_json)


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--verb", type=click.Choice(["sft", "infer", "export"]), default="sft", show_default=True)
@click.option("--json", "as_json", is_flag=True, help='Print {"argv": [...], "env": {...}}.')
@click.option("--checkpoint", type=click.Path(file_okay=False), help="For infer/export (default: the latest one).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
def render(recipe: str, verb: str, as_json: bool, checkpoint: str | None, overrides: tuple[str, ...]) -> int:
    """Print the validated swift command for a recipe, ready to copy and paste.

    For sft the identity data is rendered into the output directory first, so the
    printed command runs as is.

    \b
    Example:
      $ swiftkit render recipes/tiny-identity.yaml --json
      {"argv": ["swift", "sft", "--model", "/.../tiny-qwen", ...], "env": {"CUDA_VISIBLE_DEVICES": ""}}
    """
    from swiftkit.commands.render import render as run

    return run(recipe, verb, as_json, checkpoint, list(overrides))


@cli.command()
def schema() -> int:
    """Print the recipe's JSON Schema (editors use it through the yaml-language-server modeline).

    \b
    Example:
      $ swiftkit schema > recipe.schema.json
    """
    from swiftkit.commands.schema import schema as run

    return run()


@cli.command()
def presets() -> int:
    """List the bundled recipes, one line each.

    \b
    Example:
      $ swiftkit presets
      recipes/identity.yaml                      Qwen2.5-7B-Instruct learns a new identity (seed recipe)
    """
    from swiftkit.commands.presets import presets as run

    return run()


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
@_run_options
def run(recipe: str, overrides: tuple[str, ...], no_verify: bool, nnodes: int | None, node_rank: int | None,
        master_addr: str | None, master_port: int | None, quiet: bool, events: bool) -> int:
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
              launch_options=LaunchOptions(nnodes, node_rank, master_addr, master_port))


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
@click.option("--output", type=click.Path(file_okay=False), help="Where the tiny model and the run go.")
@_run_options
def demo(output: str | None, quiet: bool, events: bool) -> int:
    """The embedded default: make a tiny model on this CPU, teach it an identity, verify it.

    No network, no GPU: a 2-layer Qwen2-architecture model with random weights and a
    tokenizer trained on the identity data, fine-tuned by the real swift sft through
    recipes/tiny-identity.yaml, then asked by the real swift infer.

    \b
    Example:
      $ swiftkit demo --output /tmp/demo
      swiftkit demo: building the tiny model in /tmp/demo/model
      ...
      verification
        exact answers, trained probes            72/74 (97%)
    """
    from swiftkit.commands.demo import demo as go

    return go(output, quiet=quiet, events=events)


@cli.command()
@click.argument("target", default="output", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def checkpoints(target: str, as_json: bool) -> int:
    """List the runs under an output directory (or a recipe's) and their checkpoints.

    Each checkpoint: step, training loss, and whether it is complete (adapter config and
    weights readable, trainer state present); the last complete and the best are marked.

    \b
    Example:
      $ swiftkit checkpoints recipes/tiny-identity.yaml
      /work/output/tiny/v0-20261122-140101
        checkpoint-40        step 40     loss 0.05       complete  [last, best]
    """
    from swiftkit.commands.checkpoints import checkpoints as go

    return go(target, as_json)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--output", type=click.Path(file_okay=False), help="Where the merged model goes (must not exist). "
              "Default: beside the checkpoint, checkpoint-N-merged.")
@click.option("--dtype", type=click.Choice(["bfloat16", "float16", "float32"]), help="Default: the training dtype.")
@click.option("--max-shard-size", metavar="SIZE", help="Largest weight file, e.g. 2GB (ms-swift's default 5GB).")
@click.option("--quant-bits", type=click.Choice(["4", "8"]), help="Quantize the merged model (needs a GPU).")
@click.option("--quant-method", type=click.Choice(["bnb", "gptq", "gptq_v2", "awq"]),
              help="Default bnb; gptq and awq need --quant-dataset.")
@click.option("--quant-dataset", multiple=True, metavar="FILE", help="Calibration data for gptq/awq.")
@click.option("--no-verify", is_flag=True, help="Skip checking that the merged model answers as base + adapter.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def export(target: str, output: str | None, dtype: str | None, max_shard_size: str | None, quant_bits: str | None,
           quant_method: str | None, quant_dataset: tuple[str, ...], no_verify: bool, quiet: bool) -> int:
    """Merge a LoRA checkpoint into its base model, and prove the merged model answers the same.

    TARGET: a recipe (its latest complete checkpoint), an output or run dir (the same), or a
    checkpoint-N dir. The merged model then answers the identity and general probes greedily and
    must give the same answers as base + adapter (all of them in float32). An export is never
    overwritten; one that disagrees is kept but marked unverified (exit 12). The run record lists it
    under `exports`.

    \b
    Example:
      $ swiftkit export output/tiny
      swiftkit: exporting output/tiny/v0-20261128-212830/checkpoint-120 -> .../checkpoint-120-merged
      swiftkit: checking the merged model against base + adapter on 212 probes
        same greedy answer as base + adapter: 212/212 (100.0%; needed 100% in float32)
      swiftkit: exported .../checkpoint-120-merged
        0.6 MiB in 1 weight file(s), merge 7.4 s, verified
    """
    from swiftkit.commands.export import export as go

    return go(target, output=output, dtype=dtype, max_shard_size=max_shard_size,
              quant_bits=int(quant_bits) if quant_bits else None, quant_method=quant_method,
              quant_dataset=quant_dataset, do_verify=not no_verify, quiet=quiet)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--message", "-m", metavar="TEXT", help="Answer this once and print only the answer.")
@click.option("--system", metavar="TEXT", help="System prompt (default: the recipe's train.system).")
@click.option("--max-new-tokens", type=click.IntRange(1), default=512, show_default=True)
def chat(target: str, message: str | None, system: str | None, max_new_tokens: int) -> int:
    """Talk to a trained checkpoint or a merged export (ms-swift's own inference engine).

    TARGET as for export, or a merged export dir. /clear forgets the conversation; /exit or
    Ctrl-D leaves.

    \b
    Example:
      $ swiftkit chat output/tiny --message 你是谁？
      我是Swift-Robot，由CSDN 迪菲赫尔曼开发的AI助手。
    """
    from swiftkit.commands.chat import chat as go

    return go(target, message=message, system=system, max_new_tokens=max_new_tokens)


@cli.command()
@click.argument("target", type=click.Path())
@click.option("--general-probes", type=click.Path(dir_okay=False), help="Another general probe set (JSONL).")
@click.option("--no-retention", is_flag=True, help="Identity probes only.")
@click.option("--min-score", type=click.FloatRange(0, 1), help="Fail below this exact-answer rate (default: the "
              "recipe's verify.min_score).")
@click.option("--min-retention", type=click.FloatRange(0, 1), help="Fail below this retention score (default: "
              "the recipe's verify.min_retention).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def verify(target: str, general_probes: str | None, no_retention: bool, min_score: float | None,
           min_retention: float | None, quiet: bool) -> int:
    """Verify a checkpoint or an export without training: identity scorecard and retention.

    Retention compares the tuned model's greedy answers to the general probes with the base
    model's (asked once per base model and cached). Exit 1 when verify.min_score or
    verify.min_retention of the run's recipe is missed.

    \b
    Example:
      $ swiftkit verify output/tiny
      verification
        exact answers, trained probes            74/74 (100%)
      retention (general probes: tuned answers against the base model's)
        retention score                          0.93
    """
    from swiftkit.commands.verify import verify as go

    return go(target, general_probes=general_probes, retention=not no_retention, min_score=min_score,
              min_retention=min_retention, quiet=quiet)


@cli.command()
@click.argument("targets", nargs=-1, required=True, type=click.Path())
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Where the page goes. Default: report.html in the run dir; for several targets "
                   "swiftkit-comparison.html in the current dir.")
def report(targets: tuple[str, ...], output: str | None) -> int:
    """Write the run report: one HTML page with its charts inline, that opens from disk with no network.

    TARGET: a recipe (its newest run), an output dir (the same), a run dir, or a swiftkit-run.json.
    One target: report.html in its run dir (how the run ended, loss, learning rate, gradient norm and
    GPU memory against step, time, checkpoints, the identity scorecard probe by probe, retention,
    exports, what ran). Several: one comparison page (curves on one chart, results, the settings
    that differ). Prints the page's path.

    \b
    Example:
      $ swiftkit report output/tiny
      /work/output/tiny/v0-20261128-223332/report.html
      $ swiftkit report output/tiny output/tiny-mixed --output compare.html
      compare.html
    """
    from swiftkit.commands.report import report as go

    return go(list(targets), output=output)


@cli.command()
@click.argument("path")
@click.option("--output", type=click.Path(file_okay=False), help="Write the model dir here (default: swiftkit's cache).")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), default="float32", show_default=True)
def convert(path: str, output: str | None, dtype: str) -> int:
    """Turn a GGUF file (or a known model: smollm2-135m-instruct, qwen2.5-coder-0.5b-instruct) into a Hugging
    Face model dir ms-swift trains; prints the dir. Converted once, then taken from the cache.

    \b
    Example:
      $ swiftkit convert qwen2.5-coder-0.5b-instruct
      Qwen2.5-Coder-0.5B-Instruct: Qwen2ForCausalLM, 630,167,424 parameters, float32, converted in 64 s; ...
    """
    from swiftkit.commands.convert import convert as run

    return run(path, output=output, dtype=dtype)


@cli.command(name="import", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def import_cmd(args: tuple[str, ...]) -> int:
    """Turn a `swift sft ...` command line or script into a recipe (printed on stdout).

    Reads FILE, stdin (`-` or nothing), or the words after `--`. ms-swift 3.x and 4.x
    spellings, env prefixes and line continuations are understood; renamed flags are
    translated with a note, unknown ones go into the `swift:` escape hatch.

    \b
    Example:
      $ swiftkit import -- swift sft --model Qwen/Qwen2.5-7B-Instruct --train_type lora \\
          --dataset 'swift/self-cognition#500' --model_name 小黄 'Xiao Huang' --model_author 魔搭 ModelScope
      note: --train_type was renamed --tuner_type in ms-swift 4
      # yaml-language-server: $schema=./recipe.schema.json
      model:
        id: Qwen/Qwen2.5-7B-Instruct
      ...
    """
    from swiftkit.commands.import_ import import_ as run

    if len(args) == 1:
        return run(args[0], [])
    return run(None, list(args))


def main(argv: list[str] | None = None) -> int:
    """The one entry point: the command line in, an exit code out (errors mapped by error_handler)."""
    return handled(lambda: cli.main(args=argv, prog_name="swiftkit", standalone_mode=False))


if __name__ == "__main__":
    sys.exit(main())
