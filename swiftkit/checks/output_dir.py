"""The output dir: somewhere a run can be written, checked before anything starts (a run that cannot write
its first file fails after the model has loaded, or crashes)."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from swiftkit.errors import Problem
from swiftkit.recipe.models import LoadedRecipe

CHECKPOINT_NAME = re.compile(r"^checkpoint-\d+(-merged)?$")
CHECKPOINT_FILES = ("trainer_state.json", "adapter_config.json")
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def check_output_dir(loaded: LoadedRecipe) -> list[Problem]:
    """A dir a run can be written to: not a file, not the root, not inside a model or checkpoint (a run's files
    among its weights: a later load reads them, a cleanup deletes the model), and writable, checked by making
    a file there (root passes every permission check; a read-only filesystem does not)."""
    out, key = loaded.paths.output_dir, ("output", "dir")
    if out == Path(out.anchor):
        return [loaded.problem(f"{out} is the root of the filesystem", key,
                               "give the runs a directory of their own, e.g. `dir: output`")]
    if out.exists() and not out.is_dir():
        return [loaded.problem(f"{out} is a file, not a directory", key,
                               "choose another path, or move the file away")]
    inside = _inside_model_or_checkpoint(out, loaded)
    if inside:
        return [loaded.problem(f"{out} is inside the {inside}", key,
                               "write runs beside the model or checkpoint, e.g. `dir: output` next to the recipe")]
    why = _cannot_write(out)
    return [loaded.problem(f"{out}: {why}", key, "choose a directory you can write to, or fix its "
                           "permissions")] if why else []


def _inside_model_or_checkpoint(out: Path, loaded: LoadedRecipe) -> str | None:
    for d in (out, *out.parents):
        if loaded.paths.model_is_local and d == loaded.paths.model:
            return f"model dir {d} (model.id)"
        if not d.is_dir():
            continue
        if CHECKPOINT_NAME.match(d.name) or any((d / f).is_file() for f in CHECKPOINT_FILES):
            return f"checkpoint {d}"
        if (d / "config.json").is_file() and has_weights(d):
            return f"model dir {d}"
    return None


def has_weights(d: Path) -> bool:
    return any(next(d.glob(g), None) for g in WEIGHT_GLOBS)


def _cannot_write(out: Path) -> str | None:
    """Why no run could be written under `out` (checked at its nearest existing dir), or None."""
    base = next(d for d in (out, *out.parents) if d.exists())
    if not base.is_dir():
        return f"{base} is a file, so no directory can be made under it"
    try:
        fd, probe = tempfile.mkstemp(prefix=".swiftkit-probe-", dir=base)
    except OSError as exc:
        return f"cannot create a file in {base} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None
