"""What the steps after training cost on the embedded default (tiny model, CPU):
- `swiftkit export` of the demo's checkpoint: merge time (swift export), verification time (base +
  adapter and merged model on every probe), merged size, agreement;
- what verification adds to a run's wall time: the tiny recipe run with --no-verify, with identity
  probes only (verify.retention=false), and with identity + retention, the base model's answers
  cold (first run) and warm (cached), interleaved.

usage: python bench/after_training.py [REPEATS]   -> bench/results/after-training.md
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from common import ROOT, SWIFTKIT, machine, median, timed, write

RECIPE = str(ROOT / "recipes" / "tiny-identity.yaml")


def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SWIFTKIT_CACHE_DIR": f"{tmp}/cache", "MODELSCOPE_CACHE": f"{tmp}/ms"}
        demo = Path(tmp) / "demo"
        assert timed([*SWIFTKIT, "demo", "--output", str(demo), "--quiet"], env)[1] == 0
        model = demo / "model"
        exports = []
        for i in range(repeats):
            seconds, code = timed([*SWIFTKIT, "export", str(demo), "--output", f"{tmp}/merged-{i}", "--quiet"], env)
            assert code == 0
            info = json.loads((Path(tmp) / f"merged-{i}" / "swiftkit-export.json").read_text())
            exports.append((seconds, info))
        walls: dict[str, list[float]] = {"no-verify": [], "identity": [], "retention-cold": [], "retention-warm": []}
        for i in range(repeats):
            for label, extra in (("no-verify", ["--no-verify"]), ("identity", ["--set", "verify.retention=false"]),
                                 ("retention-cold", []), ("retention-warm", [])):
                cache = f"{tmp}/cache-{i}" if label == "retention-cold" else env["SWIFTKIT_CACHE_DIR"]
                seconds, code = timed([*SWIFTKIT, "run", RECIPE, "--quiet", "--set", f"model.id={model}",
                                       "--set", f"output.dir={tmp}/run-{label}-{i}", *extra],
                                      {**env, "SWIFTKIT_CACHE_DIR": cache})
                assert code == 0, label
                walls[label].append(seconds)
    info = exports[0][1]
    lines = [f"# After training, on the tiny model\n\nMachine: {machine()}. "
             f"Command: `python bench/after_training.py {repeats}`.\n",
             "## swiftkit export (merge + check against base + adapter)\n",
             "| run | wall | merge (swift export) | verification | merged size | agreement |", "|---|---|---|---|---|---|"]
    for n, (seconds, i) in enumerate(exports, 1):
        lines.append(f"| {n} | {seconds:.1f} s | {i['seconds']['merge']:.1f} s | {i['seconds']['verify']:.1f} s"
                     f" | {i['size_bytes'] / 1024:.0f} KiB | {i['agreement']:.0%} of {i['probes']} probes |")
    lines += [f"\nWeights: {', '.join(info['sha256'])}, {info['dtype']}.\n",
              "## What verification adds to `swiftkit run` (tiny-identity recipe)\n",
              f"| run | median of {repeats} | runs (s) |", "|---|---|---|"]
    names = {"no-verify": "--no-verify", "identity": "identity probes only (92)",
             "retention-cold": "identity + 120 general probes, base answers not cached",
             "retention-warm": "identity + 120 general probes, base answers cached"}
    for label, values in walls.items():
        lines.append(f"| {names[label]} | {median(values):.1f} s | {', '.join(f'{x:.1f}' for x in values)} |")
    write("after-training.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
