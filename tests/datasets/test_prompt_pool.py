"""datasets/prompt_pool.py: reading prompt files with every broken row located, duplicates and probe overlap
found after normalising, nested seeded samples."""
from __future__ import annotations

import json

import pytest

from swiftkit.datasets.prompt_pool import (Prompt, duplicates, likeness, load_prompts, norm, overlaps, pick,
                                           pool_problems)
from swiftkit.errors import UserError


def jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def test_prompts_come_from_a_query_column_or_its_synonyms_in_any_supported_format(tmp_path):
    assert [p.query for p in load_prompts(jsonl(tmp_path / "a.jsonl", [{"query": " Hi there "},
                                                                          {"instruction": "Name a colour."}]), "k")] \
        == ["Hi there", "Name a colour."]
    csv = tmp_path / "b.csv"
    csv.write_text("prompt\nWhat is rain?\nWhy is the sky blue?\n", encoding="utf-8")
    got = load_prompts(csv, "k")
    assert [(p.line, p.query) for p in got] == [(2, "What is rain?"), (3, "Why is the sky blue?")]


def test_every_broken_row_is_told_at_its_line_with_a_fix(tmp_path):
    path = jsonl(tmp_path / "p.jsonl", [{"query": "ok"}, {"answer": "no query"}, {"query": ""}, "{not json",
                                        {"query": 3}])
    with pytest.raises(UserError) as err:
        load_prompts(path, "datasets[1].replay.prompts")
    text = err.value.format()
    assert f"{path}: 4 broken prompt row(s)" in text
    assert f"{path}:2: datasets[1].replay.prompts: not a prompt: no query column (has ['answer'])" in text
    assert f"{path}:3: datasets[1].replay.prompts: not a prompt: its 'query' is empty or not text" in text
    assert f"{path}:4:" in text and "malformed JSON" in text
    assert f"{path}:5:" in text
    assert 'fix: one row per prompt with a non-empty "query"' in text


def test_an_empty_file_is_refused(tmp_path):
    with pytest.raises(UserError, match="the prompt file has no rows"):
        load_prompts(jsonl(tmp_path / "e.jsonl", []), "k")


def test_normalising_ignores_case_spaces_punctuation_and_full_width_forms():
    assert norm("What is  12 x 7?") == norm("what is 12x7") == "whatis12x7"
    assert norm("你好，世界！") == norm("你好 世界") == "你好世界"
    assert norm("ＡＢＣ") == "abc"


def test_likeness_counts_equal_contained_and_near_prompts():
    assert likeness("abc", "abc") == 1.0
    assert likeness("hello", "sayhellotome") == 1.0  # contained
    assert likeness("hi", "this") == 0.0  # too short to count as contained
    assert likeness("explainrecursioninpython", "explainrecursioninpythn") >= 0.8
    assert likeness("writeapoemaboutrain", "listthreeprimenumbers") < 0.8


def test_duplicates_find_exact_and_near_pairs_earlier_first():
    ps = [Prompt(1, "Explain recursion in Python."), Prompt(2, "Name three rivers."),
          Prompt(3, "explain recursion in python"), Prompt(4, "Explain recursion in Pyhton!")]
    found = [(a.line, b.line) for a, b, _ in duplicates(ps)]
    assert (1, 3) in found and (1, 4) in found and all(2 not in pair for pair in found)


def test_overlap_with_probes_is_found_and_told_at_the_prompt_line(tmp_path):
    ps = [Prompt(1, "Write a haiku about autumn."), Prompt(7, "What is 12 times 7?"), Prompt(9, "12乘以7等于多少")]
    probes = [("gen-001", "12乘以7等于多少？"), ("gen-050", "What is 12 times 7")]
    assert [(p.line, label) for p, label, _ in overlaps(ps, probes)] == [(7, "gen-050"), (9, "gen-001")]
    problems = pool_problems(tmp_path / "p.jsonl", ps + [Prompt(10, "write a haiku about autumn")], probes, "key")
    text = "\n".join(p.format() for p in problems)
    assert f"{tmp_path / 'p.jsonl'}:10: key: the same prompt as line 1: 'write a haiku about autumn'" in text
    assert f"{tmp_path / 'p.jsonl'}:7: key: the prompt 'What is 12 times 7?' is the retention probe gen-050" in text
    assert "retention asks that question of the tuned model" in text


def test_samples_are_seeded_and_nested():
    ps = [Prompt(i, f"prompt {i}") for i in range(1, 201)]
    assert pick(ps, 50, 42) == pick(ps, 50, 42)
    assert pick(ps, 100, 42)[:50] == pick(ps, 50, 42)
    assert pick(ps, 50, 1) != pick(ps, 50, 42)
    assert len(set(p.line for p in pick(ps, 200, 3))) == 200
