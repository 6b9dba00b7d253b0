"""Click wiring only: options -> keyword arguments -> commands.*, inside one error handler.

Exit codes: 0 ok, 1 runtime failure, 2 invalid input or usage.
"""
from __future__ import annotations

import sys
import traceback

import click

from . import __version__
from .errors import EXIT_FAILURE, EXIT_USAGE, UserError


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
    from .commands.validate import validate as run

    return run(list(recipes), list(overrides))


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
    from .commands.render import render as run

    return run(recipe, verb, as_json, checkpoint, list(overrides))


@cli.command()
def schema() -> int:
    """Print the recipe's JSON Schema (editors use it through the yaml-language-server modeline).

    \b
    Example:
      $ swiftkit schema > recipe.schema.json
    """
    from .commands.schema import schema as run

    return run()


@cli.command()
def presets() -> int:
    """List the bundled recipes, one line each.

    \b
    Example:
      $ swiftkit presets
      recipes/identity.yaml                      Qwen2.5-7B-Instruct learns a new identity (seed recipe)
    """
    from .commands.presets import presets as run

    return run()


def _run_options(fn):
    fn = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")(fn)
    fn = click.option("--events", is_flag=True, help="One JSON object per event on stdout, for programs.")(fn)
    return fn


@cli.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key, e.g. train.epochs=3.")
@click.option("--no-verify", is_flag=True, help="Skip asking the trained model the probes.")
@_run_options
def run(recipe: str, overrides: tuple[str, ...], no_verify: bool, quiet: bool, events: bool) -> int:
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
    """
    from .commands.run import run as go

    return go(recipe, overrides=list(overrides), quiet=quiet, events=events, do_verify=not no_verify)


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
    from .commands.demo import demo as go

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
    from .commands.checkpoints import checkpoints as go

    return go(target, as_json)


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
    from .commands.import_ import import_ as run

    if len(args) == 1:
        return run(args[0], [])
    return run(None, list(args))


def main(argv: list[str] | None = None) -> int:
    """The one entry point: maps exceptions to exit codes and messages."""
    try:
        result = cli.main(args=argv, prog_name="swiftkit", standalone_mode=False)
    except UserError as exc:
        click.echo(exc.format(), err=True)
        return EXIT_USAGE
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - last resort: the message, and the traceback in a file
        from .paths import cache_dir

        log = cache_dir() / "last-error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc(), encoding="utf-8")
        click.echo(f"swiftkit: unexpected error: {sys.exc_info()[1]}\n  traceback: {log}", err=True)
        return EXIT_FAILURE
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
