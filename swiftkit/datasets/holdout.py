"""A held-out slice of the recipe's own general data, for eval loss at the start and end of training.

A mixed recipe trains on identity rows and general rows so the model keeps its general ability.
swiftkit sets a few of the local general rows aside (`verify.general_holdout`, at most a tenth
of any file), trains on the rest and has ms-swift evaluate the slice at step 0 (a LoRA is a
no-op there, so that is the base model's loss) and at the end (`--val_dataset`,
`--eval_on_start`). A loss that rose says the tune drifted from the general data. Hub datasets
cannot be split here (their rows are not on disk before the run), so only local files count.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from swiftkit.datasets import read_rows, write_atomic

HELDOUT_FILE = "general.heldout.jsonl"
MIN_ROWS = 10  # fewer general rows than this: nothing to spare


@dataclass(frozen=True)
class Carve:
    source: Path  # the user's file, never written
    train_path: Path  # what training reads instead: the source less the held-out rows
    held_out: int


@dataclass(frozen=True)
class Holdout:
    carves: tuple[Carve, ...]
    heldout_path: Path

    @property
    def rows(self) -> int:
        return sum(c.held_out for c in self.carves)


def plan(files: list[tuple[Path, int]], data_dir: Path, wanted: int) -> Holdout | None:
    """How many rows each (file, usable rows) gives: in proportion to its size, at most a tenth of it."""
    total = sum(rows for _, rows in files)
    if wanted <= 0 or total < MIN_ROWS:
        return None
    carves = []
    for i, (path, rows) in enumerate(files):
        k = min(rows // 10, round(wanted * rows / total))
        if k > 0:
            carves.append(Carve(path, data_dir / "general" / f"{i}-{path.stem}.train.jsonl", k))
    return Holdout(tuple(carves), data_dir / HELDOUT_FILE) if carves else None


def write(holdout: Holdout, seed: int) -> None:
    """Split each source (the same rows for the same seed), keeping the rows' own columns and order."""
    held: list[dict] = []
    for carve in holdout.carves:
        rows = [row for _, row in read_rows(carve.source)]
        picked = set(random.Random(f"{seed}:{carve.source.name}").sample(range(len(rows)), carve.held_out))
        _write_jsonl(carve.train_path, (r for i, r in enumerate(rows) if i not in picked))
        held += [rows[i] for i in sorted(picked)]
    _write_jsonl(holdout.heldout_path, held)


def _write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows).encode())
