from __future__ import annotations

import click

from swiftkit.checks.collect import check
from swiftkit.errors import EXIT_OK, EXIT_USAGE, UserError, printable
from swiftkit.plan.sizing import plan_for_run
from swiftkit.render import world_text


def validate(recipes: list[str], overrides: list[str] | None = None) -> int:
    """Check each recipe; report every problem of every recipe, then exit 2 if any failed."""
    status = EXIT_OK
    for path in recipes:
        try:
            checked = check(path, overrides=overrides)
            planned = plan_for_run(checked)
        except UserError as exc:
            click.echo(exc.format(), err=True)
            status = EXIT_USAGE
            continue
        plan = checked.plan
        click.echo(f"ok: {printable(path)} (ms-swift {checked.catalog.version}; micro-batch {plan.micro_batch} x "
                   f"accumulation {plan.grad_accum} x {world_text(checked.loaded.recipe)})")
        if planned is not None:
            click.echo(f"  {planned.line()}")
            if planned.choice:
                click.echo(f"  auto: {planned.choice}")
            if planned.fits is False:  # only where the rows are assumed: measured rows that cannot fit are refused
                click.echo(f"  run: goes ahead, since the rows are {planned.longest_from} ({planned.longest} tokens), "
                           "not measured; if they are that long it runs out of memory and the OOM ladder (on_oom) "
                           "steps down. Set train.micro_batch_size: auto to plan for the worst case, or a "
                           "train.max_length that holds the data")
        for note in checked.notes:
            click.echo(f"  note: {printable(note)}")
    return status
