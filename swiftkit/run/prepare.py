"""What a run needs before its first attempt: the data written into its output directory (the rendered
identity file, the held-out rows) and the run record it starts with."""
from __future__ import annotations

import os
from dataclasses import replace

from swiftkit.checks.collect import Checked
from swiftkit.datasets import IdentityFiles, holdout, render_identity
from swiftkit.errors import UserError
from swiftkit.gguf.convert import convert
from swiftkit.launch.host import host_info
from swiftkit.results.record import RunRecord, now, versions


def convert_model(checked: Checked, say) -> Checked:
    """model.id named a .gguf file: convert it now (once; later runs find it in the cache) into the dir that
    check() put in the plan as --model. A conversion cut off midway leaves nothing that is used."""
    source = checked.gguf
    if source is None or source.converted:
        return checked
    say(f"swiftkit: converting {source.path.name} into a Hugging Face dir ({source.dtype}; once, then cached)")
    made = convert(source.path, dtype=source.dtype)
    if made != source.target:  # the cache moved (SWIFTKIT_CACHE_DIR changed between check and run)
        raise UserError.one(f"the conversion of {source.path} went to {made}, not {source.target}",
                            fix="run again with the same SWIFTKIT_CACHE_DIR")
    say(f"swiftkit: converted: {made}")
    return replace(checked, gguf=replace(source, converted=True))


def prepare_data(checked: Checked):
    """Render the identity template into the run's data dir, never over the template; carve the
    held-out general rows (datasets/holdout.py). Returns the identity files, if any."""
    if checked.holdout is not None:
        holdout.write(checked.holdout, checked.loaded.recipe.train.seed)
    ident = checked.loaded.recipe.identity
    if checked.identity_template is None or ident is None:
        return None
    return render_identity(checked.identity_template, checked.plan.data_dir, name=ident.name.model_dump(),
                           author=ident.author.model_dump(), systems=checked.identity_systems)


def new_record(checked: Checked, identity: IdentityFiles | None) -> RunRecord:
    r = checked.loaded.recipe
    data = [{"path": str(rep.path), "sha256": rep.sha256, "rows": rep.rows, "usable_rows": rep.usable_rows,
             "format": rep.format, "too_long": rep.too_long} for rep in checked.reports]
    if identity is not None:
        data.append({"path": str(identity.train_path), "sha256": identity.sha256, "rows": identity.train_rows,
                     "identity": True, "heldout_rows": identity.heldout_rows})
    record = RunRecord(recipe=str(checked.loaded.path.resolve()), recipe_hash=r.digest(),
                       resolved_recipe=r.model_dump(mode="json"), cwd=os.getcwd(),
                       output_dir=str(checked.plan.output_dir), versions=versions(), host=host_info(), datasets=data,
                       started_at=now())
    if checked.gguf is not None:  # where the weights came from: the file, its sha256, its quantization types
        record.extra["model_source"] = checked.gguf.to_json()
    return record
