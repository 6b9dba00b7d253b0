"""Replay rows: the pure parts (which answers are kept, a cached part read back, the summary line), and the real
thing on the CPU: `swiftkit run` with a replay entry on the demo's tiny model, which answers general prompts, runs
the answer worker and then the real `swift sft` on what it answered; a second run and a smaller n come from the
cache; Ctrl-C midway keeps whole parts only and the next run asks for the rest; a base model that cannot load
fails before training with ms-swift's reason."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import run_cli

from swiftkit.datasets.prompt_pool import Prompt
from swiftkit.replay.generate import PART_ROWS, keep, read_part, summary


def answer(text: str, finish: str = "stop", tokens: int = 5) -> dict:
    return {"messages": [{"role": "user", "content": "q"}], "response": text, "finish_reason": finish,
            "completion_tokens": tokens}


def test_answers_that_are_empty_cut_off_or_name_the_identity_are_dropped():
    rows = [answer("Paris is the capital."), answer("  \n"), answer("A long story that", "length", 64),
            answer("I am swift-robot, here to help."), answer("我是CSDN 迪菲赫尔曼开发的"), answer("Rain falls.")]
    kept, dropped = keep(rows, ["Swift-Robot", "CSDN 迪菲赫尔曼"], 64)
    assert [r["response"] for r in kept] == ["Paris is the capital.", "Rain falls."]
    assert dropped == {"empty": 1, "cut_off": 1, "identity": 2}
    assert keep(rows, [], 64)[1] == {"empty": 1, "cut_off": 1, "identity": 0}


def test_a_cached_part_is_used_only_when_it_answers_exactly_its_prompts(tmp_path):
    part = [Prompt(1, "a?"), Prompt(2, "b?")]
    path = tmp_path / "part.jsonl"
    assert read_part(path, part) is None
    rows = [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": q}], "response": "x"}
            for q in ("a?", "b?")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_part(path, part) == rows
    assert read_part(path, part[:1]) is None and read_part(path, part[::-1]) is None
    path.write_text(json.dumps(rows[0]) + "\n{broken")
    assert read_part(path, part) is None


def test_the_summary_says_what_trained_what_was_dropped_and_what_it_cost():
    made = {"kept": 470, "asked": 500, "prompts": "general", "share": 0.864, "max_new_tokens": 384,
            "dropped": {"cut_off": 25, "empty": 0, "identity": 5}, "generated": 500, "seconds": 95.4}
    assert summary(made) == ("replay: 470 rows of the base model's own answers to 500 prompts of general, 86% of the "
                             "training rows (dropped: 25 cut off at 384 tokens, 5 naming the identity); generated "
                             "in 95 s (500 answered, the rest cached)")
    assert summary({**made, "generated": 0, "share": None, "dropped": {}}).endswith("of general; all from the cache")


# -- the real thing ----------------------------------------------------------------------------------------

RECIPE = """\
model: {{id: {model}, model_type: qwen2, template: qwen2_5, dtype: float32}}
identity: {{name: Swift-Robot, author: CSDN 迪菲赫尔曼}}
datasets:
  - identity
  - replay: {{n: {n}, max_new_tokens: {tokens}}}
lora: {{rank: 8, alpha: 32}}
train: {{max_steps: 2, learning_rate: 1.0e-3, warmup_ratio: 0, effective_batch_size: 8, max_length: 256,
         gradient_checkpointing: false, logging_steps: 1, save_total_limit: 1, system: You are a helpful assistant.}}
gpu: {{count: 0}}
output: {{dir: {out}}}
verify: {{enabled: false, batch_size: 64}}
swift: {{report_to: none}}
"""


@pytest.fixture(scope="module")
def model(demo_run):
    """The demo's tiny model, taught general answers: it answers the bundled prompts (a random one only prints
    newlines, which replay drops)."""
    out, code, _, err = demo_run
    assert code == 0, err[-2000:]
    return out / "model"


def recipe(tmp_path: Path, model: Path, name: str, n: int, tokens: int = 48) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(RECIPE.format(model=model, n=n, tokens=tokens, out=tmp_path / name), encoding="utf-8")
    return path


def record(out: Path) -> dict:
    return json.loads(next(out.glob("v*/swiftkit-run.json")).read_text())


@pytest.mark.e2e
def test_replay_trains_on_the_base_models_own_answers_and_caches_them(tmp_path, model):
    code, _, err = run_cli("run", str(recipe(tmp_path, model, "first", 2 * PART_ROWS)))
    assert code == 0, err[-3000:]
    made = record(tmp_path / "first")["replay"][0]
    assert made["asked"] == 2 * PART_ROWS and made["generated"] == 2 * PART_ROWS
    assert made["kept"] + sum(made["dropped"].values()) == made["asked"] and made["kept"] > PART_ROWS, made
    assert 0 < made["share"] < 1 and made["prompts"] == "general"
    rows = [json.loads(line) for line in Path(made["path"]).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == made["kept"]
    assert all([m["role"] for m in r["messages"]] == ["system", "user", "assistant"] for r in rows)
    cached = {json.loads(line)["messages"][-1]["content"]: json.loads(line)["response"]
              for part in Path(made["cache"]).glob("part-*.jsonl") for line in part.read_text().splitlines()}
    assert all(cached[r["messages"][1]["content"]] == r["messages"][2]["content"] for r in rows)
    sft = next((tmp_path / "first").glob("v*/swiftkit.log")).read_text(encoding="utf-8").splitlines()[0]
    assert made["path"] in sft, "swift sft trains on the replay file"
    assert "swiftkit: replay: the base model answers 100 of 100 prompts (0 cached)" in err
    assert f"swiftkit: replay: {made['kept']} rows of the base model's own answers to 100 prompts of general" in err
    report = next((tmp_path / "first").glob("v*/report.html")).read_text(encoding="utf-8")
    assert "Replay rows" in report and "general" in report

    code, _, err = run_cli("run", str(recipe(tmp_path, model, "again", PART_ROWS)))  # a prefix of the same sample
    assert code == 0, err[-3000:]
    again = record(tmp_path / "again")["replay"][0]
    assert again["generated"] == 0 and again["seconds"] == 0 and "all from the cache" in err
    assert "the base model answers" not in err


@pytest.mark.e2e
def test_ctrl_c_midway_keeps_whole_parts_and_the_next_run_asks_only_for_the_rest(tmp_path, model, fault_env):
    fault_env(GENERATE_SLEEP=4)  # each part's engine call waits: time to interrupt between parts
    path = recipe(tmp_path, model, "cut", 3 * PART_ROWS, tokens=40)
    proc = subprocess.Popen([sys.executable, "-m", "swiftkit.cli", "run", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "replay: 50/150 answered" in line:
            proc.send_signal(signal.SIGINT)
            break
    out, _ = proc.communicate(timeout=120)
    text = "".join(lines) + out
    assert proc.returncode == 130, text[-3000:]
    assert "swiftkit: replay: the base model did not answer its prompts" in text
    assert "the parts answered before are cached: the next run asks only for the rest; nothing was trained" in text
    assert "Traceback" not in text
    rec = json.loads((tmp_path / "cut" / ".swiftkit" / "swiftkit-run.json").read_text())
    assert rec["status"] == "interrupted" and rec["exit_code"] == 130 and not rec["attempts"]
    cache = Path(rec["replay"]["cache"])
    parts = list(cache.glob("part-*"))
    assert not list(cache.glob("*.tmp")), "no half-written part"
    done = [p for p in parts if len(p.read_text().splitlines()) == PART_ROWS]
    assert 1 <= len(done) <= 2 and len(done) == len(parts)

    fault_env(GENERATE_SLEEP=0)
    shutil.rmtree(tmp_path / "cut")
    code, _, err = run_cli("run", str(path))
    assert code == 0, err[-3000:]
    made = record(tmp_path / "cut")["replay"][0]
    assert made["generated"] == 3 * PART_ROWS - len(done) * PART_ROWS, made
    assert f"answers {made['generated']} of 150 prompts ({len(done) * PART_ROWS} cached)" in err


@pytest.mark.e2e
def test_a_base_model_that_cannot_load_fails_before_training_with_the_reason(tmp_path, model):
    broken = tmp_path / "broken-model"
    shutil.copytree(model, broken)
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:200])  # an interrupted copy
    code, _, err = run_cli("run", str(recipe(tmp_path, broken, "broken", PART_ROWS)))
    assert code not in (0, 2), err[-3000:]
    assert "swiftkit: replay: the base model did not answer its prompts" in err
    assert "full log:" in err and "nothing was trained" in err
    assert not list((tmp_path / "broken").glob("v*/swiftkit.log")), "swift sft never started"
