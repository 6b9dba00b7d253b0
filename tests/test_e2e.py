"""The embedded default for real: the tiny model is built, the real `swift sft` trains it on
the CPU, the real `swift infer` answers the probes, and the run record holds the proof."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(demo_run):
    return demo_run


def test_demo_succeeds_and_verifies(demo):
    out, code, events, stderr = demo
    assert code == 0, (events[-5:], stderr[-3000:])
    runs = sorted(out.glob("v*-*"))
    assert len(runs) == 1
    record = json.loads((runs[0] / "swiftkit-run.json").read_text())
    assert record["schema"] == 1 and record["status"] == "succeeded" and record["exit_code"] == 0
    ver = record["verification"]
    assert ver["trained"] >= 60 and ver["exact_rate"] >= 0.8, ver
    assert ver["heldout"] > 0 and ver["missing"] == 0
    answers = [json.loads(x) for x in Path(ver["answers"]).read_text().splitlines()]
    retention = record["retention"]
    # every probe was really asked, in one call: identity, challenges, the identity again under the template's
    # default and an unrelated system prompt, and general
    prompts = {h["name"]: h for h in ver["system_prompts"]}
    assert list(prompts) == ["recipe", "default", "custom"] and "qwen2_5's default: 'You are Qwen" in prompts["default"]["shown"]
    assert ver["challenge"] == 36 and prompts["default"]["eligible"] == prompts["recipe"]["eligible"] > 40
    again = prompts["default"]["eligible"] + prompts["custom"]["eligible"]
    assert len(answers) == ver["trained"] + ver["heldout"] + ver["challenge"] + again + retention["probes"]
    assert ver["leaks"]["hits"] == 0 and ver["bleed"]["asked"] == retention["probes"]
    # the base model answered every identity probe too, in the same engine: the report shows both; before the
    # tune it did not give the identity's answers
    assert all(isinstance(r["base_answer"], str) for r in ver["results"])
    assert sum(r["base_answer"] == r["expected"] for r in ver["results"] if r["split"] == "train") < ver["trained_exact"]
    assert retention["probes"] >= 100 and 0 <= retention["score"] <= 1 and 0 <= retention["exact"] <= 1
    assert set(retention["by_category"]) >= {"arithmetic", "facts", "translation", "code"}
    assert record["summary"]["train_runtime"] > 0 and record["summary"]["final_loss"] is not None
    assert record["attempts"][0]["returncode"] == 0
    assert record["versions"]["ms-swift"] and record["recipe_hash"]
    identity = next(d for d in record["datasets"] if d.get("identity"))
    assert Path(identity["path"]).is_file() and len(identity["sha256"]) == 64
    assert (runs[0] / "swiftkit.log").read_text().count("global_step/max_steps") >= 2


def test_demo_events_stream(demo):
    _, _, events, _ = demo
    kinds = [e["event"] for e in events]
    assert "OutputDir" in kinds and "Progress" in kinds and "message" in kinds
    steps = [e["step"] for e in events if e["event"] == "Progress"]
    assert steps == sorted(steps) and steps[-1] == [e for e in events if e["event"] == "Progress"][-1]["max_steps"]


def test_checkpoint_discovery_after_a_real_run(demo):
    out, *_ = demo
    code, stdout, _ = run_cli("checkpoints", str(out), "--json")
    assert code == 0
    (run,) = json.loads(stdout)
    assert run["last"] and run["checkpoints"][-1]["complete"] is True
    code, stdout, _ = run_cli("checkpoints", str(out))
    assert "complete  [last, best]" in stdout


def test_mixed_recipe_keeps_the_general_answers_identity_only_loses(demo, tmp_path):
    """The reason the mixed recipe exists, shown on the tiny model: both learn the identity; the one that
    replays general rows keeps the base model's general answers, the identity-only one does not."""
    out, code, _, _ = demo
    assert code == 0
    identity_only = json.loads(next(out.glob("v*-*/swiftkit-run.json")).read_text())
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "tiny-mixed.yaml"
    code, _, err = run_cli("run", str(recipe), "--set", f"model.id={out / 'model'}",
                           "--set", f"output.dir={tmp_path / 'mixed'}", "--quiet")
    assert code == 0, err[-3000:]
    mixed = json.loads(next((tmp_path / "mixed").glob("v*-*/swiftkit-run.json")).read_text())
    assert mixed["verification"]["exact_rate"] >= 0.8 and identity_only["verification"]["exact_rate"] >= 0.8
    assert mixed["retention"]["score"] >= identity_only["retention"]["score"] + 0.5, \
        (mixed["retention"]["score"], identity_only["retention"]["score"])
    loss = mixed["retention"]["eval_loss"]  # the held-out general rows, at step 0 and at the end
    assert loss["start"] >= 0 and loss["end"] >= 0 and loss["end_step"] == mixed["summary"]["global_step"]
    assert any("general.heldout.jsonl" in a for a in mixed["command"])


def test_every_kept_checkpoint_is_scored_in_one_engine_and_the_chosen_one_is_exported(demo, tmp_path):
    """verify.checkpoints best: the kept checkpoints answer from one engine with their adapters swapped (an early
    checkpoint answers differently from the last), each is scored, one is chosen with its reason, the run is
    judged by it, and the export merges that one."""
    out, code, _, _ = demo
    assert code == 0
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "tiny-identity.yaml"
    code, _, err = run_cli("run", str(recipe), "--set", f"model.id={out / 'model'}",
                           "--set", f"output.dir={tmp_path / 'ck'}", "--set", "verify.checkpoints=best",
                           "--set", "train.epochs=20", "--set", "train.save_steps=30",
                           "--set", "train.save_total_limit=null", "--set", "export.merge=true",
                           # the identity and general probes only (half the questions): the other system prompts
                           # and the challenges go through the same judge() for one checkpoint or several
                           "--set", "verify.system_prompts=[]", "--set", "verify.challenges=false")
    run_dir = next((tmp_path / "ck").glob("v*-*"))
    record = json.loads((run_dir / "swiftkit-run.json").read_text())
    scores = record["checkpoint_scores"]
    assert [s["checkpoint"] for s in scores["scores"]] == ["checkpoint-30", "checkpoint-60"]
    assert "verifying 2 checkpoints (checkpoint-30, checkpoint-60) in one engine" in err
    assert "checkpoints (verify.checkpoints: best)" in err and f"to ship    {scores['chosen']}: " in err
    answers = [(run_dir / "verify" / f"answers-{s['checkpoint']}.jsonl").read_text() for s in scores["scores"]]
    assert answers[0] != answers[1], "both checkpoints gave the same answers: the adapter was not swapped"
    assert scores["scores"][0]["loss"] > scores["scores"][1]["loss"]
    chosen = [s for s in scores["scores"] if s["chosen"]]
    assert len(chosen) == 1 and chosen[0]["checkpoint"] == scores["chosen"] == scores["verdict"]
    assert record["verification"]["checkpoint"] == str(run_dir / scores["chosen"])
    assert record["verification"]["failures"] == chosen[0]["failures"]
    if code == 0:  # the chosen checkpoint passed: it, and not necessarily the last, was merged
        assert record["exports"][0]["source"] == str(run_dir / scores["chosen"])
    report = (run_dir / "report.html").read_text()
    assert 'id="checkpoint-scores"' in report and "sk-ckpt-retention" in report
    # the same afterwards, from `swiftkit verify`: the run's two checkpoints scored again, apart from the run's files
    code, _, err = run_cli("verify", str(tmp_path / "ck"), "--checkpoints", "all")
    assert "checkpoints (verify.checkpoints: all)" in err and "the run is judged by checkpoint-60 (the last)" in err
    entry = json.loads((run_dir / "swiftkit-run.json").read_text())["verifications"][-1]
    assert [s["checkpoint"] for s in entry["checkpoint_scores"]["scores"]] == ["checkpoint-30", "checkpoint-60"]
    assert entry["checkpoint_scores"]["mode"] == "all" and entry["checkpoint_scores"]["verdict"] == "checkpoint-60"
    assert (run_dir / "verify" / "checkpoints" / "answers-checkpoint-30.jsonl").is_file()
