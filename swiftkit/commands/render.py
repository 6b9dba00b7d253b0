from __future__ import annotations

import json
from pathlib import Path

import click

from swiftkit import paths
from swiftkit.checks.collect import Checked, check, planned_invocations
from swiftkit.errors import EXIT_OK, UserError
from swiftkit.run.prepare import prepare_data


def render(recipe: str, verb: str, as_json: bool, checkpoint: str | None, overrides: list[str] | None = None) -> int:
    """Print the command swiftkit would run, validated first. For sft the identity data is written
    into the output dir first, so the printed command runs as is."""
    checked = check(recipe, overrides=overrides)
    if verb == "sft":
        prepare_data(checked)
        ckpt = None
    else:
        ckpt = _checkpoint(checked, checkpoint)
    inv = planned_invocations(checked, checkpoint=ckpt, swift=paths.swift_command())[verb]
    click.echo(json.dumps(inv.to_json(), ensure_ascii=False) if as_json else inv.display())
    return EXIT_OK


def _checkpoint(checked: Checked, given: str | None) -> Path:
    if given:
        path = Path(given)
        if not path.is_dir():
            raise UserError.one(f"checkpoint not found: {given}", fix="pass a checkpoint-N directory of a run")
        return path.resolve()
    from swiftkit.results.checkpoints import latest_checkpoint

    found = latest_checkpoint(checked.plan.output_dir)
    if found is None:
        raise UserError.one(f"no complete checkpoint under {checked.plan.output_dir} yet",
                            fix="train first (swiftkit run RECIPE), or pass --checkpoint DIR")
    return Path(found.path)
