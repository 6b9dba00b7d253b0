"""Writes the data a run needs into its output directory (the rendered identity file)."""
from __future__ import annotations

from swiftkit.checks.collect import Checked
from swiftkit.datasets import holdout, render_identity


def prepare_data(checked: Checked):
    """Render the identity template into the run's data dir, never over the template; carve the
    held-out general rows (datasets/holdout.py). Returns the identity files, if any."""
    if checked.holdout is not None:
        holdout.write(checked.holdout, checked.loaded.recipe.train.seed)
    ident = checked.loaded.recipe.identity
    if checked.identity_template is None or ident is None:
        return None
    return render_identity(checked.identity_template, checked.plan.data_dir, name=ident.name.model_dump(),
                           author=ident.author.model_dump())
