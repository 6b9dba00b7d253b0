"""Retention on the embedded default: identity-only against mixed, on the tiny model that first learned
the bundled general answers (recipes/tiny-general.yaml).

usage: python bench/retention_tiny.py   -> bench/results/retention-tiny.md
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import ROOT, SWIFTKIT, machine, timed, write

RECIPES = ROOT / "recipes"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SWIFTKIT_CACHE_DIR": f"{tmp}/cache", "MODELSCOPE_CACHE": f"{tmp}/ms"}
        demo_seconds, code = timed([*SWIFTKIT, "demo", "--output", f"{tmp}/demo", "--quiet"], env)
        assert code == 0
        model = Path(tmp) / "demo" / "model"
        rows = []
        for name in ("tiny-identity", "tiny-mixed"):
            seconds, code = timed([*SWIFTKIT, "run", str(RECIPES / f"{name}.yaml"), "--quiet",
                                   "--set", f"model.id={model}", "--set", f"output.dir={tmp}/{name}"], env)
            assert code == 0, name
            record = json.loads(next(Path(tmp, name).glob("v*-*/swiftkit-run.json")).read_text())
            rows.append((name, seconds, record))
    lines = [f"# Retention on the tiny model: identity-only against mixed\n\nMachine: {machine()}. "
             "Command: `python bench/retention_tiny.py`.\n",
             "The base: the tiny random model after `recipes/tiny-general.yaml` (a full fine-tune on the 120 "
             "bundled general probes; it answers all 120 as written). Then each recipe trains a LoRA (r32, "
             "40 epochs) on it; retention compares the tuned model's greedy answers to the general probes with "
             "the base model's.\n",
             "| recipe | training rows | identity: exact, trained probes | held-out name / author | retention score (chrF) "
             "| general answers unchanged | eval loss on 12 held-out general rows (start -> end) | train runtime | "
             "whole run |", "|---|---|---|---|---|---|---|---|---|"]
    for name, seconds, r in rows:
        v, ret, s = r["verification"], r["retention"], r["summary"]
        loss = ret.get("eval_loss")
        loss_text = f"{loss['start']:.4f} -> {loss['end']:.4f}" if loss else "- (no general rows)"
        trained = sum(d.get("usable_rows") or d.get("rows") or 0 for d in r["datasets"])
        lines.append(f"| {name} | {trained} | {v['trained_exact']}/{v['trained']} | "
                     f"{v['heldout_name_hits']}/{v['heldout_name']} / {v['heldout_author_hits']}/{v['heldout_author']} | "
                     f"{ret['score']:.2f} | {ret['exact']:.0%} | {loss_text} | {s.get('train_runtime', 0):.1f} s | "
                     f"{seconds:.0f} s |")
    lines.append(f"\nThe demo that built the base (random model, general fine-tune, identity run): {demo_seconds:.0f} s.\n")
    write("retention-tiny.md", "\n".join(lines))


if __name__ == "__main__":
    main()
