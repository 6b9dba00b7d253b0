"""The command group: every verb of the CLI registers on it (cli/before.py, cli/training.py, cli/after.py)."""
from __future__ import annotations

import click

from swiftkit import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="swiftkit")
def cli() -> None:
    """swiftkit: LoRA fine-tunes with ms-swift, from a checked recipe to a verified adapter.

    \b
    Example:
      $ swiftkit validate recipes/identity.yaml
      ok: recipes/identity.yaml (ms-swift 4.6.0; micro-batch 16 x accumulation 1 x 1 GPU(s))
    """
