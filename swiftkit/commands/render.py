from __future__ import annotations

import json
from pathlib import Path

import click

from .. import paths
from ..checks import check, planned_invocations
from ..errors import EXIT_OK, UserError
from ..render import render_export, render_infer


def render(recipe: str, verb: str, as_json: bool, checkpoint: str | None) -> int:
    """Print the command swiftkit would run, validated first."""
    checked = check(recipe)
    plan, swift = checked.plan, paths.swift_command()
    if verb == "sft":
        from ..prepare import prepare_data

        prepare_data(checked)
        inv = planned_invocations(checked)["sft"]
        inv = type(inv)(swift + inv.argv[1:], inv.env, inv.sources)
    else:
        ckpt = _checkpoint(checked, checkpoint)
        if verb == "infer":
            from ..datasets import IDENTITY_PROBES_FILE

            inv = render_infer(plan, checked.catalog, checkpoint=ckpt, val_dataset=plan.data_dir / IDENTITY_PROBES_FILE,
                               result_path=plan.output_dir / "probes.jsonl", swift=swift)
        else:
            inv = render_export(plan, checked.catalog, checkpoint=ckpt, output_dir=Path(f"{ckpt}-merged"), swift=swift)
    click.echo(json.dumps(inv.to_json(), ensure_ascii=False) if as_json else inv.display())
    return EXIT_OK


def _checkpoint(checked, given: str | None) -> Path:
    if given:
        path = Path(given)
        if not path.is_dir():
            raise UserError.one(f"checkpoint not found: {given}", fix="pass a checkpoint-N directory of a run")
        return path.resolve()
    from ..checkpoints import latest_checkpoint

    found = latest_checkpoint(checked.plan.output_dir)
    if found is None:
        raise UserError.one(f"no complete checkpoint under {checked.plan.output_dir} yet",
                            fix="train first (swiftkit run RECIPE), or pass --checkpoint DIR")
    return Path(found.path)
