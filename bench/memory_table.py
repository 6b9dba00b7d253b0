"""Predicted against measured peak for every GPU run of the memory plan (bench/results/gpu-memory/):
recomputes the plan of each run with today's swiftkit/plan/memory.py and writes the table to
bench/results/gpu-memory/table.md (and prints it).

    python bench/memory_table.py
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from swiftkit.plan import memory as memplan  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "gpu-memory"
FILES = {"measured.jsonl": "grid 1: rows of one length", "measured-2.jsonl": "grid 2: rows of many lengths",
         "measured-3.jsonl": "presets and auto, through swiftkit run",
         "measured-4.jsonl": "grid 4: long rows, 1.5B/7B/14B",
         "measured-real.jsonl": "real models (GGUF in), through swiftkit run",
         "measured-capped.jsonl": "7B preset and speed levers under a 23 GiB cap, through swiftkit run",
         "measured-5.jsonl": "grid 5: small models (SmolLM2-135M's and Qwen2.5-0.5B's shapes)",
         "measured-6.jsonl": "grid 6: small models on real data (identity, mixed), rows of many lengths",
         "measured-7.jsonl": "grid 7: small models' identity runs, uncapped and under caps near the plan"}


def longest(run: dict) -> int:
    return int(float(run["dataset_token_length"].split("max=")[1].split(",")[0]))


LOGIT_TOKENS = RESULTS / "logit-tokens.json"  # runs recorded before the plan counted them: bench/memory_logits.py


def setup_of(run: dict) -> memplan.Setup:
    """The settings of the attempt that made the run's peak: the run's own record where it has one (an attempt
    after an OOM trained at a smaller micro-batch), the logits kept from logit-tokens.json where it predates them."""
    if run.get("memory_plan"):
        s = run["memory_plan"]["setup"]
        setup = memplan.Setup(**{**s, "targets": tuple(s["targets"])})
    else:
        setup = memplan.Setup(micro_batch=run["mb"], tokens=longest(run), rank=run["rank"],
                              gradient_checkpointing=run["gc"])
    known = _logit_tokens().get(run["name"])
    if setup.logit_tokens is None and known and known["tokens"] == setup.tokens:
        setup = replace(setup, logit_tokens=known["logit_tokens"])
    attempts = _attempts(run["record"]) if run.get("record") else []
    if attempts and attempts[-1].get("micro_batch") not in (None, setup.micro_batch):
        setup = replace(setup, micro_batch=attempts[-1]["micro_batch"])
    return setup


def peak_attempt(run: dict) -> int:
    """Which attempt of the run made its peak (1 unless the OOM ladder retried)."""
    return len(_attempts(run["record"])) if run.get("record") else 1


@lru_cache(maxsize=None)
def _logit_tokens() -> dict:
    return json.loads(LOGIT_TOKENS.read_text()) if LOGIT_TOKENS.is_file() else {}


@lru_cache(maxsize=None)
def _attempts(record: str) -> list[dict]:
    return json.loads((ROOT / record).read_text()).get("attempts") or []


def shape_of(run: dict) -> memplan.Shape:
    if run.get("shape"):
        return memplan.Shape(**run["shape"])
    if (run.get("memory_plan") or {}).get("model"):
        return memplan.Shape(**run["memory_plan"]["model"])
    return memplan.Shape.from_config(json.loads((RESULTS / f"config-{run['size']}.json").read_text()))


def planned(run: dict) -> memplan.MemoryPlan:
    """The plan for a run, from its config.json and settings (the run's own record where it has one)."""
    return memplan.plan_memory(shape_of(run), setup_of(run))


def expandable(run: dict) -> bool:
    """Whether the run's allocator had expandable segments (swiftkit's default since grid 2)."""
    if run.get("alloc_conf"):
        return "True" in run["alloc_conf"]
    return bool(run.get("expandable") or run.get("preset") or run["split"] in ("auto", "long", "real"))


def runs() -> list[dict]:
    out = []
    for name, what in FILES.items():
        for line in (RESULTS / name).read_text().splitlines():
            run = json.loads(line)
            if run.get("measured_gib") is None:
                continue
            plan = planned(run)
            run.update(grid=what, planned_gib=plan.peak_gib, longest=longest(run), expandable_segments=expandable(run),
                       error=(plan.peak_gib - run["measured_gib"]) / run["measured_gib"])
            out.append(run)
    return out


def main() -> None:
    lines = ["| run | grid | split | micro-batch | rank | checkpointing | longest row | expandable segments "
             "| measured GiB | planned GiB | error |", "|" + "---|" * 11]
    for r in runs():
        setup = setup_of(r)
        lines.append(f"| {r['name']} | {r['grid']} | {r['split']} | {setup.micro_batch} "
                     f"| {r['rank']} | {'on' if setup.gradient_checkpointing else 'off'} "
                     f"| {r['longest']} | {'yes' if r['expandable_segments'] else 'no'} | {r['measured_gib']:.2f} "
                     f"| {r['planned_gib']:.2f} | {r['error']:+.1%} |")
    text = "\n".join(lines) + "\n"
    (RESULTS / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
