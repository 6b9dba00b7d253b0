"""How fast a bad recipe is caught: `swiftkit validate recipes/identity.yaml` cold (no flag catalog
cached) and warm, beside the time the installed `swift sft` needs to reject one renamed flag on the
tiny CPU model.

usage: python bench/validate_speed.py [REPEATS]   -> bench/results/validate.md
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import ROOT, SWIFTKIT, machine, median, timed, write

from swiftkit import paths
from swiftkit.commands.demo import DEMO_RECIPE, make_tiny_model


def main(repeats: int) -> None:
    recipe = str(ROOT / "recipes" / "identity.yaml")
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            cache = {"SWIFTKIT_CACHE_DIR": f"{tmp}/cold-{i}"}
            seconds, code = timed([*SWIFTKIT, "validate", recipe], cache)
            assert code == 0
            cold.append(seconds)
        cache = {"SWIFTKIT_CACHE_DIR": f"{tmp}/cold-0"}
        for _ in range(repeats):
            seconds, code = timed([*SWIFTKIT, "validate", recipe], cache)
            assert code == 0
            warm.append(seconds)
        model = make_tiny_model(DEMO_RECIPE, Path(tmp) / "model")
        data = Path(tmp) / "d.jsonl"
        data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
        bad = [*paths.swift_command(), "sft", "--model", str(model), "--model_type", "qwen2", "--template", "qwen2_5",
               "--dataset", str(data), "--torch_dtype", "float32", "--check_model", "false", "--train_type", "lora",
               "--output_dir", f"{tmp}/out"]
        swift = []
        for _ in range(repeats):
            seconds, code = timed(bad, {"MODELSCOPE_CACHE": f"{tmp}/ms", "CUDA_VISIBLE_DEVICES": ""})
            assert code != 0
            swift.append(seconds)
    rows = [("swiftkit validate, cold (flag catalog built: imports ms-swift once)", cold),
            ("swiftkit validate, warm (catalog cached per ms-swift version)", warm),
            ("swift sft rejecting --train_type on the tiny CPU model", swift)]
    lines = [f"# Validate speed\n\nMachine: {machine()}. Command: `python bench/validate_speed.py {repeats}`.\n",
             "| what | median of %d | runs (s) |" % repeats, "|---|---|---|"]
    lines += [f"| {name} | {median(v):.2f} s | {', '.join(f'{x:.2f}' for x in v)} |" for name, v in rows]
    lines.append(f"\nA warm validate answers in {median(warm):.2f} s, {median(swift) / median(warm):.0f}x sooner than "
                 f"ms-swift's own rejection ({median(swift):.1f} s), and it checks the data, the model and every "
                 "flag, where ms-swift stops at the first bad flag.\n")
    write("validate.md", "\n".join(lines))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
