"""Finding the unfinished run of a recipe to continue (output.resume: auto).

A run is unfinished when its record says anything but succeeded (failed, interrupted, or
still "running" because swiftkit itself was killed). It continues from the newest complete
checkpoint among its attempts' run dirs, with the recipe its last attempt used (the OOM
ladder may have changed it); a checkpoint cut off mid-save is never chosen.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swiftkit.errors import UserError
from swiftkit.results.checkpoints import Checkpoint, find_runs
from swiftkit.results.record import read_record


# "running"/"retrying": swiftkit itself was killed mid-attempt or between attempts
UNFINISHED = ("created", "running", "retrying", "failed", "interrupted")


@dataclass(frozen=True)
class Resumable:
    record_path: Path
    checkpoint: Checkpoint
    recipe: dict | None  # the last attempt's recipe, when the ladder changed it


def find_resumable(output_dir: Path, recipe_hash: str) -> Resumable | None:
    runs = find_runs(output_dir)
    by_path = {r.path.resolve(): r for r in runs}
    for run in reversed(runs):
        record = _read(run.path / "swiftkit-run.json")
        if record is None or record.recipe_hash != recipe_hash:
            continue
        if record.status not in UNFINISHED:
            return None  # finished runs are never continued or overwritten: a new run starts fresh
        dirs = [Path(a["run_dir"]).resolve() for a in reversed(record.attempts) if a.get("run_dir")]
        for d in dirs or [run.path.resolve()]:
            found = by_path.get(d)
            checkpoint = found.last_complete() if found else None
            if checkpoint is not None:
                last_recipe = next((a.get("recipe") for a in reversed(record.attempts) if a.get("recipe")), None)
                return Resumable(run.path / "swiftkit-run.json", checkpoint, last_recipe)
        return None
    return None


def _read(path: Path):
    if not path.is_file():
        return None
    try:
        return read_record(path)
    except UserError:
        return None  # a corrupt record cannot vouch for a checkpoint; start fresh
