"""`swiftkit slurm RECIPE`: an sbatch script that runs `swiftkit run RECIPE` on every node of a Slurm job.

The recipe is checked first (as `swiftkit validate` does), so a bad recipe is refused here, not on the
cluster after the job waited in the queue.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import click

from swiftkit.checks.collect import check
from swiftkit.errors import EXIT_OK, UserError
from swiftkit.launch.slurm import SlurmOptions, render_sbatch


def slurm(recipe: str, *, overrides: list[str] | None = None, nodes: int | None = None,
          gpus_per_node: int | None = None, partition: str | None = None, time: str | None = None,
          account: str | None = None, job_name: str | None = None, cpus_per_task: int | None = None,
          mem: str | None = None, sbatch_options: tuple[str, ...] | list[str] = (), requeue: bool = True,
          output: str | None = None) -> int:
    overrides = list(overrides or [])
    checked = check(recipe, overrides=overrides)
    options = SlurmOptions(nodes=nodes, gpus_per_node=gpus_per_node, partition=partition, time=time,
                           account=account, job_name=job_name, cpus_per_task=cpus_per_task, mem=mem,
                           sbatch_options=tuple(sbatch_options), requeue=requeue)
    script = render_sbatch(Path(recipe), options, overrides, swiftkit_command(), recipe=checked.loaded.recipe)
    if output is None:
        click.echo(script, nl=False)
        return EXIT_OK
    path = Path(output)
    if path.is_dir():
        raise UserError.one(f"{output} is a directory", key="--output", fix="give a file name, e.g. train.sbatch")
    try:
        path.write_text(script, encoding="utf-8")
    except OSError as err:
        raise UserError.one(f"cannot write {output}: {err.strerror or err}", key="--output",
                            fix="choose a path in a directory that exists and that you can write") from None
    path.chmod(0o755)
    click.echo(f"{path}\n  submit: sbatch {path}")
    return EXIT_OK


def swiftkit_command() -> list[str]:
    """How a node starts this same swiftkit: the console script beside the running interpreter (a venv's
    bin; not resolved, so the venv stays the venv), else this interpreter with `-m swiftkit` where the
    package has a __main__, else `-m swiftkit.cli` (its `__main__` block; a --target install has no script)."""
    python = os.path.abspath(sys.executable)
    script = Path(python).parent / "swiftkit"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    module = "swiftkit" if importlib.util.find_spec("swiftkit.__main__") is not None else "swiftkit.cli"
    return [python, "-m", module]
