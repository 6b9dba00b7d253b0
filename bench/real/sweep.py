"""Identity settings on real instruct weights, through `swiftkit run`, one run per configuration.

    python bench/real/sweep.py --model FILE.gguf --out DIR [--dtype float32] [--gpu] [--export NAME...] CONFIG...

A CONFIG is a name that spells its settings, e.g. `lr1e-3-ep10`, `lr2e-3-ep3-b8`, `lr1e-3-ep5-mix300`:
  lrX    train.learning_rate
  epN    train.epochs
  sN     train.max_steps (instead of epochs)
  bN     train.effective_batch_size (default 16, the seed's)
  rN     lora.rank (alpha stays 4 x rank, the seed's ratio)
  mixN   N of the bundled written general rows (datasets/general_rows.jsonl, its first 540) beside the identity rows
  replayN  N replay rows: the base model's own answers to N prompts of the bundled pool (datasets/general_prompts.jsonl)
  sysdef the identity rows trained under the recipe's system prompt and the template's default in turn
         (identity.train_systems: [recipe, default])
A name may start with `best`: the cheapest configuration so far (fewest rows trained) whose identity took
(trained probes >= 95 % exact, held-out names and authors >= 90 %, no base-identity claims), e.g. `best-mix300`.
`--deadline S` starts no run that the slowest run so far says would end after S seconds.
`--heldout` evaluates every run on the same 60 written general rows (the last 60 of general_rows.jsonl, which no
mixN run trains on) at step 0 and at the end: eval loss for every configuration, replay or not.
Every run starts from bench/real/identity.yaml (the seed's settings otherwise) and writes DIR/NAME.record.json
and DIR/NAME.txt; `--export NAME` also exports that run merged in float32 and bfloat16 and records agreement
with base + adapter. DIR/summary.md and DIR/summary.json gather one row per run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "bench" / "real" / "identity.yaml"
GENERAL_ROWS = ROOT / "datasets" / "general_rows.jsonl"
PART = re.compile(r"(lr|ep|s|b|r|mix|replay)([0-9.e-]+?)(?=-(?:lr|ep|s|b|r|mix|replay)[0-9]|-sysdef|$)|(sysdef)")
HELDOUT = 60  # the last rows of general_rows.jsonl: evaluated, never trained


def split_general(folder: Path) -> tuple[Path, Path]:
    """general_rows.jsonl as (the rows mixN samples from, the held-out rows every run is evaluated on)."""
    lines = GENERAL_ROWS.read_text(encoding="utf-8").splitlines(keepends=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "general-train.jsonl").write_text("".join(lines[:-HELDOUT]), encoding="utf-8")
    (folder / "general-heldout.jsonl").write_text("".join(lines[-HELDOUT:]), encoding="utf-8")
    return folder / "general-train.jsonl", folder / "general-heldout.jsonl"


def overrides_of(name: str, train_rows: Path = GENERAL_ROWS) -> list[str]:
    out, seen = [], ""
    for key, value, flag in PART.findall(name):
        seen += f"-{key}{value}{flag}"
        if flag == "sysdef":
            out.append("identity.train_systems=[recipe, default]")
        elif key == "lr":
            out.append(f"train.learning_rate={float(value)}")
        elif key == "ep":
            out.append(f"train.epochs={int(value)}")
        elif key == "s":
            out += [f"train.max_steps={int(value)}", "train.epochs=null"]
        elif key == "b":
            out.append(f"train.effective_batch_size={int(value)}")
        elif key == "r":
            out += [f"lora.rank={int(value)}", f"lora.alpha={4 * int(value)}"]
        elif key == "mix":
            out.append(f"datasets=[identity, {{path: {train_rows}, samples: {int(value)}}}]")
        elif key == "replay":
            out.append(f"datasets=[identity, {{replay: {{n: {int(value)}, max_new_tokens: 384}}}}]")
    if seen.lstrip("-") != name:
        sys.exit(f"cannot read the configuration name {name!r} (read {seen.lstrip('-')!r})")
    return out


def took(row: dict) -> bool:
    def share(text: str) -> float:
        hits, total = text.split("/")
        return int(hits) / int(total) if total not in ("None", "0") and hits != "None" else 0.0
    return (row["exit"] in (0, 1) and (row["exact_rate"] or 0) >= 0.95 and share(row["heldout_name"]) >= 0.9
            and share(row["heldout_author"]) >= 0.9 and row["base_claims"] == 0)


def cost(row: dict) -> int:
    """Rows trained: steps x batch."""
    batch = next((int(v) for k, v, _ in PART.findall(row["name"]) if k == "b"), 16)
    return (row["steps"] or 10**9) * batch


def best(rows: list[dict]) -> str:
    passing = [r for r in rows if took(r) and "mix" not in r["name"]]
    if not passing:
        sys.exit("no configuration so far took: nothing to call best")
    return min(passing, key=cost)["name"]


def swiftkit(*args: str, log: Path) -> tuple[int, float]:
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.run([sys.executable, "-m", "swiftkit.cli", *args], stdout=f, stderr=subprocess.STDOUT,
                              cwd=ROOT).returncode
    return code, round(time.monotonic() - start, 1)


def row_of(name: str, record: dict, code: int, wall: float) -> dict:
    card = record.get("verification") or {}
    ret = record.get("retention") or {}
    summary = record.get("summary") or {}
    timings = record.get("timings") or {}
    return {
        "name": name, "exit": code, "wall_s": wall, "steps": summary.get("global_step"),
        "final_loss": summary.get("final_loss"), "train_runtime_s": summary.get("train_runtime"),
        "training_s": timings.get("training"), "verification_s": timings.get("verification"),
        "trained_exact": f"{card.get('trained_exact')}/{card.get('trained')}",
        "exact_rate": round(card["trained_exact"] / card["trained"], 3) if card.get("trained") else None,
        "heldout_name": f"{card.get('heldout_name_hits')}/{card.get('heldout_name')}",
        "heldout_author": f"{card.get('heldout_author_hits')}/{card.get('heldout_author')}",
        "base_claims": card.get("base_claims"),
        **{f"holds_{h.get('name')}": f"{h.get('held')}/{h.get('eligible')}" for h in card.get("system_prompts") or []},
        "challenges": f"{card.get('challenge_held')}/{card.get('challenge')}" if card.get("challenge") else None,
        "bleed": f"{(card.get('bleed') or {}).get('hits')}/{(card.get('bleed') or {}).get('asked')}"
        if card.get("bleed") else None,
        "retention": ret.get("score"), "retention_exact": ret.get("exact"),
        "eval_loss": ret.get("eval_loss") or held_out(summary),
        "replay": [{k: m.get(k) for k in ("kept", "asked", "dropped", "seconds", "share")}
                   for m in record.get("replay") or [] if isinstance(m, dict)] or None,
        "exports": [{"dtype": e.get("dtype"), "agreement": e.get("agreement"), "verified": e.get("verified")}
                    for e in record.get("exports") or []],
    }


def held_out(summary: dict) -> dict | None:
    """Eval loss on swift.val_dataset at step 0 and the end (--heldout), as the record keeps the recipe's own."""
    start, end = summary.get("eval_loss_start"), summary.get("eval_loss_end")
    if not start or not end or start.get("step") != 0:
        return None
    return {"start": start["loss"], "end": end["loss"], "end_step": end["step"]}


def main() -> int:
    if sys.argv[1:2] == ["gguf"]:  # sweep.py gguf MERGED KEEP TYPE...
        gguf_export(Path(sys.argv[2]), sys.argv[4:], Path(sys.argv[3]))
        return 0
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dtype", default="float32")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--runs", type=Path, default=Path("/tmp/real-runs"))
    p.add_argument("--export", action="append", default=[])
    p.add_argument("--deadline", type=float, default=None)
    p.add_argument("--export-dtype", action="append", default=[], help="float32 and bfloat16 unless given")
    p.add_argument("--set", dest="extra", action="append", default=[], help="a recipe override for every run")
    p.add_argument("--heldout", action="store_true", help="every run evaluated on the same held-out written rows")
    p.add_argument("--gguf", action="append", default=[], help="GGUF types written (and checked in llama.cpp) "
                   "from each merged export; its marker, Modelfiles and answers are kept in OUT")
    p.add_argument("configs", nargs="+")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    train_rows, heldout = split_general(a.runs / "general")
    if a.heldout:  # the recipe's own held-out carving off: the same rows for every configuration
        a.extra += ["verify.general_holdout=0", f"swift.val_dataset={heldout}", "swift.eval_on_start=true"]
    rows = []
    summary_json = a.out / "summary.json"
    if summary_json.is_file():
        rows = json.loads(summary_json.read_text())
    start, slowest = time.monotonic(), 0.0
    for name in a.configs:
        if name.startswith("best"):
            name = best(rows) + name[len("best"):]
            a.export = [best(rows) + e[len("best"):] if e.startswith("best") else e for e in a.export]
        if a.deadline and time.monotonic() - start + slowest > a.deadline:
            print(f"{name}: not started, the deadline is near", flush=True)
            continue
        run_dir, began = a.runs / name, time.monotonic()
        shutil.rmtree(run_dir, ignore_errors=True)
        common = ["--set", f"model.id={a.model}", "--set", f"model.dtype={a.dtype}",
                  "--set", f"output.dir={run_dir}", "--set", f"gpu.count={1 if a.gpu else 0}"]
        sets = [x for o in overrides_of(name, train_rows if a.heldout else GENERAL_ROWS) + a.extra
                for x in ("--set", o)]
        code, wall = swiftkit("run", str(RECIPE), *common, *sets, log=a.out / f"{name}.txt")
        records = sorted(run_dir.glob("v*/swiftkit-run.json"))
        if name in a.export and records:
            for dtype in a.export_dtype or ("float32", "bfloat16"):
                xcode, xwall = swiftkit("export", str(records[-1].parent), "--dtype", dtype,
                                        "--output", str(run_dir / f"merged-{dtype}"),
                                        log=a.out / f"{name}.export-{dtype}.txt")
                print(f"{name}: export {dtype} exit {xcode} in {xwall} s", flush=True)
                if a.gguf and xcode == 0:
                    gguf_export(run_dir / f"merged-{dtype}", a.gguf, a.out / f"{name}.gguf-{dtype}")
                if not a.gguf:  # kept for more GGUF types: bench/real/gpu.sh gguf
                    shutil.rmtree(run_dir / f"merged-{dtype}", ignore_errors=True)  # keep the disk
        record = json.loads(records[-1].read_text()) if records else {}
        if records:
            shutil.copy(records[-1], a.out / f"{name}.record.json")
        row = row_of(name, record, code, wall)
        slowest = max(slowest, time.monotonic() - began)
        rows = [r for r in rows if r["name"] != name] + [row]
        print(json.dumps(row), flush=True)
        summary_json.write_text(json.dumps(rows, indent=1) + "\n")
        (a.out / "summary.md").write_text(table(rows))
    return 0


def gguf_export(merged: Path, types: list[str], keep: Path) -> None:  # also: python bench/real/sweep.py gguf ...
    """`swiftkit export MERGED --format gguf`, its marker, Modelfiles, logs and llama.cpp's answers kept (not the
    GGUF files: too big to bring back)."""
    out = merged.with_name(merged.name + "-gguf")
    args = [x for t in types for x in ("--quant", t)]
    code, wall = swiftkit("export", str(merged), "--format", "gguf", *args, "--output", str(out),
                          log=keep.parent / f"{keep.name}.txt")
    print(f"{merged.name}: gguf exit {code} in {wall} s", flush=True)
    keep.mkdir(parents=True, exist_ok=True)
    for f in list(out.glob("*.json")) + list(out.glob("*Modelfile")) + list((merged.parent / "exports" / out.name).glob("*")):
        if f.is_file() and f.suffix != ".gguf":
            shutil.copy(f, keep / f.name)
    shutil.rmtree(out, ignore_errors=True)


def table(rows: list[dict]) -> str:
    cols = ["name", "exit", "steps", "final_loss", "training_s", "verification_s", "wall_s", "trained_exact",
            "heldout_name", "heldout_author", "base_claims", "holds_recipe", "holds_default", "holds_custom",
            "challenges", "bleed", "retention", "retention_exact", "eval_loss", "replay", "exports"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if c == "exports":
                v = ", ".join(f"{e['dtype']} {e['agreement']}" for e in v) if v else ""
            elif c == "eval_loss" and v:
                v = f"{v['start']:.3f} -> {v['end']:.3f}"
            elif c == "replay" and v:
                v = "; ".join(f"{m['kept']}/{m['asked']} kept, {m['seconds']} s" for m in v)
            elif isinstance(v, float):
                v = f"{v:.4g}"
            cells.append("" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
