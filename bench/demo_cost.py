"""What the embedded default costs end to end: `swiftkit demo` (tiny model built, 120 CPU training
steps, 92 probes through swift infer) with a cold and a warm flag catalog.

usage: python bench/demo_cost.py [REPEATS]   -> bench/results/demo.md
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from common import SWIFTKIT, machine, median, timed, write


def main(repeats: int) -> None:
    cold, warm, scores = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for label, cache, bucket in (("cold", f"{tmp}/cache-{i}", cold), ("warm", f"{tmp}/cache-{i}", warm)):
                out = Path(tmp) / f"{label}-{i}"
                seconds, code = timed([*SWIFTKIT, "demo", "--output", str(out), "--quiet"],
                                      {"SWIFTKIT_CACHE_DIR": cache, "MODELSCOPE_CACHE": f"{tmp}/ms"})
                assert code == 0
                bucket.append(seconds)
                record = json.loads(next(out.glob("v*/swiftkit-run.json")).read_text())
                scores.append(record["verification"]["exact_rate"])
    lines = [f"# The demo, end to end\n\nMachine: {machine()}. Command: `python bench/demo_cost.py {repeats}`.\n",
             f"| what | median of {repeats} | runs (s) |", "|---|---|---|",
             f"| swiftkit demo, cold flag catalog (first run on a machine) | {median(cold):.1f} s | "
             f"{', '.join(f'{x:.1f}' for x in cold)} |",
             f"| swiftkit demo, warm | {median(warm):.1f} s | {', '.join(f'{x:.1f}' for x in warm)} |",
             f"\nExact answers on the 74 trained probes: {', '.join(f'{s:.0%}' for s in scores)}.\n"]
    write("demo.md", "\n".join(lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
