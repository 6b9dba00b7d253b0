"""A recipe's replay entries checked before anything loads: the prompt file (found, readable, no duplicates, no
retention probe), replay.n against the pool, and the keys a replay entry does not take. Exit 2, located, a fix,
nothing written."""
from __future__ import annotations

import json

from conftest import run_cli
from helpers import RECIPE, project, tree
from test_collect import validate_fails

from swiftkit.paths import bundled_general_probes

REPLAY = RECIPE.replace("  - data.jsonl\n",
                        "  - data.jsonl\n  - replay: {prompts: prompts.jsonl, n: 3, max_new_tokens: 128}\n")


def prompts(tmp_path, rows):
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                            encoding="utf-8")


GOOD = [{"query": "Write a short note to a neighbour about a parcel."}, {"query": "Name three spring flowers."},
        {"query": "How do I keep basil fresh?"}, {"query": "Explain what a leap year is."}]


def test_a_replay_entry_validates_and_says_what_it_will_generate(tmp_path, catalog):
    path = project(tmp_path, REPLAY)
    prompts(tmp_path, GOOD)
    before = tree(tmp_path)
    code, out, err = run_cli("validate", str(path))
    assert code == 0, err
    assert ("replay: the base model answers 3 of the 4 prompts of prompts.jsonl (seed 42, greedy, up to 128 new "
            "tokens each) before training") in out
    assert tree(tmp_path) == before


def test_the_bundled_pool_and_the_shorthand(tmp_path, catalog):
    path = project(tmp_path, RECIPE.replace("  - data.jsonl\n", "  - data.jsonl\n  - replay#300\n")
                   .replace("max_length: 256", "max_length: 1024"))
    code, out, err = run_cli("validate", str(path))
    assert code == 0, err
    assert "answers 300 of the 650 prompts of general" in out


def test_a_missing_prompt_file_names_the_key_and_the_likely_file(tmp_path, catalog):
    prompts(tmp_path, GOOD)
    err = validate_fails(tmp_path, REPLAY.replace("prompts.jsonl", "promtps.jsonl"))
    assert "recipe.yaml:12:" in err and "datasets[2].replay.prompts: replay prompt file not found:" in err
    assert "did you mean 'prompts.jsonl'?" in err


def test_broken_rows_duplicates_and_probe_overlap_are_all_told_at_their_lines(tmp_path, catalog):
    (tmp_path / "probes.jsonl").write_text(json.dumps({"id": "p-1", "query": "What is the boiling point of "
                                                       "water?"}) + "\n", encoding="utf-8")
    rows = GOOD + [{"query": "name three spring flowers!"}, {"query": "What is the boiling point of water"}]
    prompts(tmp_path, rows)
    recipe = REPLAY + "verify:\n  general_probes: probes.jsonl\n"
    err = validate_fails(tmp_path, recipe)
    assert "prompts.jsonl:5: datasets[2].replay.prompts: the same prompt as line 2" in err
    assert ("prompts.jsonl:6: datasets[2].replay.prompts: the prompt 'What is the boiling point of water' is the "
            "retention probe p-1") in err
    prompts(tmp_path, GOOD + [{"answer": "no prompt here"}])
    err = validate_fails(tmp_path, REPLAY)
    assert "prompts.jsonl:5: datasets[2].replay.prompts: not a prompt: no query column" in err


def test_a_user_pool_is_checked_against_the_bundled_probes_too(tmp_path, catalog):
    probe = json.loads(bundled_general_probes().read_text(encoding="utf-8").splitlines()[0])
    prompts(tmp_path, GOOD + [{"query": probe["query"]}])
    err = validate_fails(tmp_path, REPLAY)
    assert f"is the retention probe {probe['id']}" in err


def test_n_larger_than_the_pool_and_samples_on_a_replay_entry_are_refused(tmp_path, catalog):
    prompts(tmp_path, GOOD)
    err = validate_fails(tmp_path, REPLAY.replace("n: 3,", "n: 40,"))
    assert "datasets[2].replay.n: replay.n 40 is more than the 4 prompts of prompts.jsonl" in err
    assert "fix: lower n to at most 4, or give a larger prompt file" in err
    err = validate_fails(tmp_path, REPLAY.replace("128}", "128}\n    samples: 10"))
    assert "a replay entry takes its size from replay.n, not samples" in err
    assert "fix: write `replay: {n: 300}` instead" in err


def test_answers_longer_than_max_length_are_refused_before_they_are_generated(tmp_path, catalog):
    prompts(tmp_path, GOOD)
    err = validate_fails(tmp_path, REPLAY.replace("max_new_tokens: 128", "max_new_tokens: 300"))
    assert ("datasets[2].replay.max_new_tokens: replay.max_new_tokens 300 leaves no room under train.max_length 256"
            in err)
    assert "fix: lower it to 192 or less, or raise train.max_length" in err
