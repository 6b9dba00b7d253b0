"""plan/rows.py: the rows an epoch trains, as ms-swift samples them: #N where an entry has it (hub datasets
included: the seed's mixed command is 94 steps, not the 5 its 74 local identity rows would give), usable rows
where it has not, replay's n, and a hub dataset without a count said to be left out."""
from __future__ import annotations

import json

import pytest
from conftest import ROOT, run_cli


def steps(recipe, *sets: str) -> tuple[int, list[str]]:
    code, out, err = run_cli("plan", str(recipe), "--gpu", "H100", "--json", *[x for s in sets for x in ("--set", s)])
    assert code == 0, err
    plan = json.loads(out)
    return plan["steps"], plan["notes"]


def test_the_seeds_mixed_recipe_counts_its_hub_rows():
    n, notes = steps(ROOT / "recipes" / "mixed.yaml")
    assert n == 94  # (500 + 500 alpaca + 500 identity) / 16, one epoch
    assert not [x for x in notes if "no #N" in x]


def test_a_hub_dataset_without_a_count_is_said_to_be_left_out():
    n, notes = steps(ROOT / "recipes" / "mixed.yaml",
                     "datasets=[AI-ModelScope/alpaca-gpt4-data-zh, AI-ModelScope/alpaca-gpt4-data-en#500, identity]")
    assert n == 36  # (500 + 74) / 16, rounded up: the uncounted one is left out, and said so
    assert "AI-ModelScope/alpaca-gpt4-data-zh has no #N sample count: its rows are left out of the step count" in notes


def test_identity_alone_and_with_replay():
    preset = ROOT / "recipes" / "presets"
    assert steps(preset / "24gb-identity.yaml")[0] == 50  # 74 rows / 16 x 10 epochs
    assert steps(preset / "24gb-replay.yaml")[0] == 240  # (74 + 300) / 16 x 10


def test_rows_trained_under_the_templates_default_are_planned_as_long_as_they_are():
    """identity.train_systems [recipe, default]: the identity rows take the two system prompts in turn, half of
    them Qwen's long default ("You are Qwen, created by Alibaba Cloud. ..."), which the plan measured as the
    short recipe prompt (a real Qwen run planned 4.55 GiB and peaked at 5.17)."""
    preset = ROOT / "recipes" / "presets" / "24gb-identity.yaml"
    template = ("--set", "model.template=qwen2_5")
    code, out, err = run_cli("plan", str(preset), "--gpu", "H100", "--json", *template)
    one = json.loads(out)
    code, out, err = run_cli("plan", str(preset), "--gpu", "H100", "--json", *template, "--set",
                             "identity.train_systems=[recipe, default]")
    assert code == 0, err
    both = json.loads(out)
    assert both["steps"] == one["steps"] == 50  # the same 74 rows, each under one of the prompts
    assert both["longest_row_tokens"] >= one["longest_row_tokens"] + 10


def test_logits_are_kept_from_the_earliest_first_label_on():
    """ms-swift's logits_to_keep: the padded length less the shortest prompt, plus one; the plan takes the longest
    row padded beside the shortest prompt, the worst micro-batch the data can make."""
    from swiftkit.plan.rows import logits_kept

    assert logits_kept([62, 41, 50], [25, 20, 30]) == 62 - 20 + 1
    assert logits_kept([10], [None]) == 10  # a row with no label: its logits whole
    assert logits_kept([5, 8], [7, 9]) == 2  # the 8-token row, from position 7 on


def test_the_plan_measures_each_rows_prompt_with_ms_swifts_template(tmp_path):
    """Rows with a long and a short prompt: the logits kept are the longest row less the shortest prompt; the
    breakdown's logits shrink by that much against the longest row's whole length."""
    data = tmp_path / "rows.jsonl"
    rows = [{"messages": [{"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "ok"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "fine " * 20}]}]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{id: Qwen/Qwen2.5-7B-Instruct}}\ndatasets: [{data}]\ntrain: {{epochs: 1, "
                      "micro_batch_size: 2, effective_batch_size: 2, system: You are a helpful assistant.}\n"
                      f"output: {{dir: {tmp_path / 'out'}}}\ngpu: {{memory_gb: 80}}\n", encoding="utf-8")
    code, out, err = run_cli("plan", str(recipe), "--json")
    assert code == 0, err
    plan = json.loads(out)
    longest, kept = plan["longest_row_tokens"], plan["setup"]["logit_tokens"]
    assert 60 < longest < 90 and 15 < longest - kept < 30  # the short prompt: system, "hi" and the headers
    from swiftkit.plan.memory import LOGIT_BYTES

    assert plan["breakdown"]["logits_and_loss"] == pytest.approx(2 * kept * 152064 * LOGIT_BYTES / 2**30, abs=0.002)
