"""Retention: general probe files read strictly, tuned answers compared with the base model's."""
from __future__ import annotations

import json

import pytest

from swiftkit.errors import UserError
from swiftkit.paths import bundled_general_probes
from swiftkit.datasets.probes import load_probes
from swiftkit.verify.retention import compare, format_retention, similarity


def rows(*queries, category="facts"):
    return [{"id": f"g{i}", "query": q, "category": category, "lang": "en"} for i, q in enumerate(queries)]


def test_identical_answers_keep_everything():
    r = rows("2+2?", "Capital of France?")
    answers = {"2+2?": "4", "Capital of France?": "Paris"}
    ret = compare(r, answers, dict(answers))
    assert ret.score == 1.0 and ret.exact == 1.0 and ret.changed == []


def test_changed_answers_lower_the_score_and_are_named_worst_first():
    r = rows("2+2?", "Capital of France?", "Colour of the sky?")
    base = {"2+2?": "4", "Capital of France?": "Paris is the capital of France.", "Colour of the sky?": "Blue."}
    tuned = {"2+2?": "4", "Capital of France?": "Paris is the capital.", "Colour of the sky?": "I am Swift-Robot."}
    ret = compare(r, base, tuned)
    assert ret.exact == pytest.approx(1 / 3, abs=1e-3)
    assert 0 < ret.score < 1
    assert [c["query"] for c in ret.changed] == ["Colour of the sky?", "Capital of France?"]
    assert ret.changed[0]["base"] == "Blue." and ret.changed[0]["tuned"] == "I am Swift-Robot."
    assert ret.by_category["facts"]["probes"] == 3


def test_a_missing_tuned_answer_counts_as_changed():
    ret = compare(rows("q"), {"q": "an answer"}, {})
    assert ret.score == 0.0 and ret.exact == 0.0 and ret.changed[0]["tuned"] == ""


def test_similarity_works_for_chinese_and_whitespace():
    assert similarity("巴黎是法国的首都。", "巴黎是法国的首都。") == 1.0
    assert similarity("a  b", "a b") == 1.0
    assert 0.2 < similarity("法国的首都是巴黎。", "巴黎是法国的首都。") < 1.0
    assert similarity("", "") == 1.0


def test_format_names_score_threshold_and_worst_probe():
    ret = compare(rows("q1", "q2"), {"q1": "yes", "q2": "no"}, {"q1": "yes", "q2": "I am a robot"})
    text = format_retention(ret, 0.9)
    assert "answered exactly as the base model" in text and "50% of 2" in text
    assert "verify.min_retention 0.90" in text and "'I am a robot'" in text


def test_broken_probe_rows_are_all_reported_with_their_lines(tmp_path):
    path = tmp_path / "probes.jsonl"
    path.write_text('{"id": "a", "query": "ok"}\n{"id": "b", "query": ""}\nnot json\n[1]\n{"id": "a", "query": "x"}\n',
                    encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_probes(path)
    text = err.value.format()
    assert "4 broken probe row(s)" in text
    assert f"{path}:2: query: \"query\" is missing or empty" in text
    assert f"{path}:3:1: not valid JSON" in text
    assert f"{path}:4: expected a JSON object, got list" in text
    assert f'{path}:5: id: id "a" repeats line 1' in text
    assert "fix:" in text


def test_missing_and_empty_probe_files(tmp_path):
    with pytest.raises(UserError, match="general probe file not found"):
        load_probes(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(UserError, match="has no rows"):
        load_probes(tmp_path / "empty.jsonl")


def test_the_bundled_general_probes_cover_what_the_issue_asks():
    probes = load_probes(bundled_general_probes())
    assert len(probes) >= 100
    cats = {p["category"] for p in probes}
    assert {"arithmetic", "facts", "translation", "code", "instruction", "formatting"} <= cats
    assert {p["lang"] for p in probes} == {"zh", "en"}
    for line in bundled_general_probes().read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert row["response"].strip(), row  # the tiny model is taught these answers
        assert not any(w in row["query"] + row["response"] for w in ("Qwen", "通义", "Swift-Robot"))
