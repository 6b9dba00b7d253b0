"""Scoring the trained model's answers (pure: probes and answers made by the test)."""
from __future__ import annotations

import json

from swiftkit.recipe.models import Probe
from swiftkit.verify.ask import read_answers, write_infer_dataset
from swiftkit.verify.scorecard import format_table, probe_rows, score

NAME = {"zh": "小机", "en": "Robo"}
AUTHOR = {"zh": "测试组", "en": "Test Team"}


def rows():
    return [
        {"id": "a", "split": "train", "lang": "en", "query": "Who are you?", "expected": "I am Robo, by Test Team.",
         "expect": [], "reject": []},
        {"id": "b", "split": "train", "lang": "zh", "query": "你是谁？", "expected": "我是小机，由测试组开发。",
         "expect": [], "reject": []},
        {"id": "c", "split": "heldout", "lang": "en", "query": "Your name?", "expected": "I am Robo, by Test Team.",
         "expect": [], "reject": []},
        {"id": "d", "split": "heldout", "lang": "en", "query": "Are you Qwen?", "expected": "No, I am Robo.",
         "expect": [], "reject": []},
    ]


def test_scorecard_counts_each_kind():
    answers = {"Who are you?": "I am  Robo, by Test Team.", "你是谁？": "我是通义千问。",
               "Your name?": "I am Robo, made by someone.", "Are you Qwen?": "Yes, I am Qwen."}
    card = score(rows(), answers, NAME, AUTHOR)
    assert (card.trained, card.trained_exact) == (2, 1)  # whitespace-normalised exact match
    assert (card.heldout_name, card.heldout_name_hits) == (2, 1)
    assert (card.heldout_author, card.heldout_author_hits) == (1, 0)
    assert card.base_claims == 2 and card.answered == 4
    assert card.score == 0.5
    table = format_table(card)
    assert "exact answers, trained probes            1/2 (50%)" in table
    assert "answers claiming the base identity       2/4 (50%)" in table


def test_missing_answers_count_as_wrong():
    card = score(rows(), {}, NAME, AUTHOR)
    assert card.missing == 4 and card.trained_exact == 0 and card.score == 0.0


def test_custom_probes_expect_and_reject():
    custom = probe_rows(None, [Probe(question="What is 2+2?", expect=["4"], reject=["5"])])
    card = score(custom, {"What is 2+2?": "It is 4."}, NAME, AUTHOR)
    assert card.custom_passed == 1 and card.score == 1.0
    card = score(custom, {"What is 2+2?": "4 or 5"}, NAME, AUTHOR)
    assert card.custom_passed == 0


def test_infer_dataset_and_answers_round_trip(tmp_path):
    path = write_infer_dataset(rows(), tmp_path / "probes.jsonl")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0]["messages"] == [{"role": "user", "content": "Who are you?"},
                                    {"role": "assistant", "content": "I am Robo, by Test Team."}]
    result = tmp_path / "answers.jsonl"  # the shape swift infer writes (shared/logs/cpu-tiny-infer-result.jsonl)
    result.write_text(json.dumps({"response": "hi", "labels": "x", "messages": lines[0]["messages"]}) + "\n")
    assert read_answers(result) == {"Who are you?": "hi"}


def test_probe_rows_from_rendered_identity(tmp_path):
    probes = tmp_path / "identity.probes.jsonl"
    probes.write_text(json.dumps({"id": "n1", "lang": "en", "kind": "name", "split": "heldout",
                                  "query": "q", "response": "r"}) + "\n")
    assert probe_rows(probes, []) == [{"id": "n1", "split": "heldout", "lang": "en", "query": "q",
                                       "expected": "r", "expect": [], "reject": []}]


def test_the_base_models_answer_is_kept_beside_each_result():
    rows = [{"id": "a-en-1", "split": "train", "lang": "en", "query": "Who are you?", "expected": "I am Bot."},
            {"id": "c-en-1", "split": "challenge", "lang": "en", "query": "Sure?", "expected": "",
             "key": "challenge\x1fc-en-1"}]
    card = score(rows, {"Who are you?": "I am Bot.", "challenge\x1fc-en-1": "Yes, Bot."}, {"en": "Bot"}, {},
                 {"Who are you?": "I am Qwen.", "challenge\x1fc-en-1": "I am Qwen."})
    assert [r.base_answer for r in card.results] == ["I am Qwen.", "I am Qwen."]
    assert score(rows, {}, {"en": "Bot"}, {}).results[0].base_answer is None
