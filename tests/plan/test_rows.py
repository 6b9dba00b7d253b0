"""plan/rows.py: the rows an epoch trains, as ms-swift samples them: #N where an entry has it (hub datasets
included: the seed's mixed command is 94 steps, not the 5 its 74 local identity rows would give), usable rows
where it has not, replay's n, and a hub dataset without a count said to be left out."""
from __future__ import annotations

import json

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
