"""`swiftkit checkpoints`: the runs under an output dir and their checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

import click

from swiftkit.errors import EXIT_OK, UserError, printable
from swiftkit.results.checkpoints import find_runs


def output_dir_of(target: str) -> Path:
    """An output dir, or a recipe file (its output.dir)."""
    path = Path(target)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        from swiftkit.recipe.models import load_recipe

        loaded = load_recipe(path)
        return loaded.paths.output_dir
    if not path.is_dir():
        raise UserError.one(f"no such output directory: {target}",
                            fix="pass a recipe's output.dir (or the recipe file itself)")
    return path


def checkpoints(target: str, as_json: bool) -> int:
    runs = find_runs(output_dir_of(target))
    if as_json:
        click.echo(json.dumps([_run_json(r) for r in runs], indent=2, default=str))
        return EXIT_OK
    if not runs:
        click.echo(printable(f"no runs under {target}"))
    for run in runs:
        last, best = run.last_complete(), run.best()
        click.echo(printable(f"{run.path}{'  (empty leftover of a failed start)' if run.leftover else ''}"))
        for c in run.checkpoints:
            tags = [t for t, hit in (("last", c is last), ("best", c is best)) if hit]
            state = "complete" if c.complete else "INCOMPLETE: " + "; ".join(c.problems)
            loss = "-" if c.loss is None else f"{c.loss:.4g}"
            click.echo(printable(f"  {Path(c.path).name:20} step {c.step:<6} loss {loss:<10} {state}"
                                 f"{'  [' + ', '.join(tags) + ']' if tags else ''}"))
    return EXIT_OK


def _run_json(run) -> dict:
    last, best = run.last_complete(), run.best()
    return {"run": str(run.path), "leftover": run.leftover,
            "last": str(last.path) if last else None, "best": str(best.path) if best else None,
            "checkpoints": [{"path": str(c.path), "step": c.step, "loss": c.loss, "complete": c.complete,
                             "problems": list(c.problems)} for c in run.checkpoints]}
