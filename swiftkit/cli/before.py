"""Click wiring of the verbs before training: validate, plan, render, schema, presets, convert, import."""
from __future__ import annotations

import click

from swiftkit.cli.group import cli


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
