"""Did the checks get slower? Warm `swiftkit validate` of the bundled recipes in this checkout and in another
revision, side by side in one run (alternating, each in its own Python process with the other tree on its path).

usage: python bench/validate_side_by_side.py REV [ROUNDS]   -> bench/results/validate-side-by-side.md
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine, median, write

RECIPES = ["recipes/identity.yaml", "recipes/mixed.yaml", "recipes/presets/12gb-identity.yaml",
           "recipes/presets/24gb-identity.yaml", "recipes/presets/24gb-mixed.yaml"]
# In the measured tree: one validate to warm imports and the catalog, then five timed ones of all recipes.
PROBE = """
import contextlib, io, json, sys, time
from swiftkit.cli import main
recipes = [f"{sys.argv[1]}/{r}" for r in json.loads(sys.argv[2])]
def once():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["validate", *recipes]) == 0
once()
times = []
for _ in range(5):
    start = time.perf_counter(); once(); times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def measure(tree: Path, cache: str) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "SWIFTKIT_CACHE_DIR": cache}
    out = subprocess.run([sys.executable, "-c", PROBE, str(tree), json.dumps(RECIPES)], env=env, cwd=tree,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(rev: str, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), rev], cwd=ROOT, check=True)
        try:
            now, then = [], []
            for _ in range(rounds):
                then += measure(other, f"{tmp}/cache")
                now += measure(ROOT, f"{tmp}/cache")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    lines = [f"# Warm validate, side by side\n\nMachine: {machine()}. Command: "
             f"`python bench/validate_side_by_side.py {rev} {rounds}` (this tree: {head.strip()}).\n",
             f"All {len(RECIPES)} bundled 7B recipes validated in one call, warm (imports done, flag catalog "
             f"cached); {rounds} rounds of 5, the two trees alternating.\n",
             "| tree | min | median | max |", "|---|---|---|---|",
             f"| {rev} | {min(then):.3f} s | {median(then):.3f} s | {max(then):.3f} s |",
             f"| this tree | {min(now):.3f} s | {median(now):.3f} s | {max(now):.3f} s |",
             f"\nRatio of medians (this tree / {rev}): {median(now) / median(then):.2f}.\n"]
    write("validate-side-by-side.md", "\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3)
