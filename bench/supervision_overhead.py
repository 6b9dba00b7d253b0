"""What supervision costs: `swiftkit run` (checks, data rendering, streaming, parsing, run record,
checkpoint discovery; verification off) against the bare rendered `swift sft` command on the same
tiny CPU recipe, interleaved A/B so both see the same machine.

usage: python bench/supervision_overhead.py [PAIRS]   -> bench/results/supervision.md
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, SWIFTKIT, machine, median, timed, write

from swiftkit.commands.demo import DEMO_RECIPE, make_tiny_model


def main(pairs: int) -> None:
    swiftkit, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        model = make_tiny_model(DEMO_RECIPE, Path(tmp) / "model")
        env = {"MODELSCOPE_CACHE": f"{tmp}/ms", "SWIFTKIT_CACHE_DIR": f"{tmp}/cache"}
        base = ["--set", f"model.id={model}"]
        subprocess.run([*SWIFTKIT, "validate", str(DEMO_RECIPE), *base], env={**os.environ, **env},
                       cwd=ROOT, check=True, capture_output=True)  # warm the flag catalog for both sides
        for i in range(pairs):
            out_a, out_b = f"{tmp}/a{i}", f"{tmp}/b{i}"
            rendered = subprocess.run([*SWIFTKIT, "render", str(DEMO_RECIPE), *base, "--set", f"output.dir={out_b}",
                                       "--json"], env={**os.environ, **env}, cwd=ROOT, check=True,
                                      capture_output=True, text=True)
            cmd = json.loads(rendered.stdout)
            seconds, code = timed([*SWIFTKIT, "run", str(DEMO_RECIPE), *base, "--set", f"output.dir={out_a}",
                                   "--no-verify", "--quiet"], env)
            assert code == 0
            swiftkit.append(seconds)
            seconds, code = timed(cmd["argv"], {**env, **cmd["env"]})
            assert code == 0
            bare.append(seconds)
    a, b = median(swiftkit), median(bare)
    lines = [f"# Supervision overhead\n\nMachine: {machine()}. Command: `python bench/supervision_overhead.py {pairs}`.",
             "Recipe: recipes/tiny-identity.yaml (120 training steps on the CPU), verification off, runs interleaved.\n",
             f"| what | median of {pairs} | runs (s) |", "|---|---|---|",
             f"| swiftkit run --no-verify --quiet | {a:.2f} s | {', '.join(f'{x:.2f}' for x in swiftkit)} |",
             f"| bare rendered swift sft | {b:.2f} s | {', '.join(f'{x:.2f}' for x in bare)} |",
             f"\nOverhead: {a - b:+.2f} s ({(a - b) / b:+.1%}); the goal is under 3 % or 1 s, whichever is larger "
             f"(here {max(0.03 * b, 1.0):.2f} s).\n"]
    write("supervision.md", "\n".join(lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
