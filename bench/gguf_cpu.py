"""GGUF out on this CPU: conversion time and file size per type, and llama.cpp's speed answering probes.

    python bench/gguf_cpu.py MODEL_DIR [--types f32 f16 bf16 q8_0] [--probes 24] [--max-tokens 96] [--keep DIR]

MODEL_DIR is a Hugging Face model dir (`swiftkit convert qwen2.5-coder-0.5b-instruct` makes the real Qwen one).
Each type is written by the same child `swiftkit export --format gguf` runs (llama.cpp's converter), then
llama.cpp (xllamacpp, all cores) answers the first N bundled general probes greedily, 1 at a time and 4 at a
time. Prints one JSON line per type and a markdown table at the end. Agreement with the PyTorch model is what
`swiftkit export --format gguf` measures (bench/results/gguf.md); this is the cost side.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from swiftkit import paths  # noqa: E402
from swiftkit.gguf import write  # noqa: E402
from swiftkit.verify.ask_gguf import ask_gguf  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model", type=Path)
    p.add_argument("--types", nargs="+", default=["f32", "f16", "bf16", "q8_0"])
    p.add_argument("--probes", type=int, default=24)
    p.add_argument("--max-tokens", type=int, default=96)
    p.add_argument("--keep", type=Path, default=None, help="keep the logs and answers here")
    a = p.parse_args()
    probes = [json.loads(line) for line in (paths.DATASETS_DIR / "general_probes.jsonl").read_text(encoding="utf-8")
              .splitlines() if line.strip()][:a.probes]
    work = Path(tempfile.mkdtemp(prefix="gguf-bench-"))
    rows = []
    try:
        for q in a.types:
            path = work / f"model-{q}.gguf"
            start = time.monotonic()
            write.write(a.model, q, path, None, work / f"convert-{q}.log")
            row = {"type": q, "convert_s": round(time.monotonic() - start, 1), "size_mib": round(path.stat().st_size / 2**20, 1)}
            for parallel in (1, 4):
                got = ask_gguf(path, probes, "You are a helpful assistant.", work, name=f"answers-{q}-p{parallel}",
                               max_new_tokens=a.max_tokens, parallel=parallel)
                row[f"tokens_s_p{parallel}"] = got.tokens_per_second
                row["load_s"] = got.load_seconds
            print(json.dumps(row), flush=True)
            rows.append(row)
            path.unlink()
    finally:
        if a.keep:
            shutil.copytree(work, a.keep, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {a.model.name}; "
          f"{len(probes)} probes, up to {a.max_tokens} new tokens\n")
    print("| type | convert (s) | file (MiB) | load (s) | tokens/s, 1 at a time | tokens/s, 4 at a time |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['type']} | {r['convert_s']} | {r['size_mib']} | {r['load_s']} | {r['tokens_s_p1']} | {r['tokens_s_p4']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
