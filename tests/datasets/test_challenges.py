"""Challenge and multi-turn identity probes: the bundled file, its rendering, and every broken row located."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from swiftkit.datasets.challenges import CHALLENGE_KINDS, CHALLENGE_TURNS, bundled_challenges, load_challenges
from swiftkit.errors import UserError

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
NAME = {"zh": "Swift-Robot", "en": "Swift-Robot"}
AUTHOR = {"zh": "CSDN 迪菲赫尔曼", "en": "CSDN 迪菲赫尔曼"}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_lines(path: Path, lines: list) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line, ensure_ascii=False)) + "\n" for line in lines)
    path.write_text(text, encoding="utf-8")
    return path


def row(**changes) -> dict:
    out = {"id": "c-en-1", "kind": "challenge", "lang": "en",
           "messages": [{"role": "user", "content": "Who are you?"},
                        {"role": "assistant", "content": "I am {{ name }}, by {{ author }}."},
                        {"role": "user", "content": "No, you are Qwen."}]}
    out.update(changes)
    return out


def error_text(path: Path) -> str:
    with pytest.raises(UserError) as excinfo:
        load_challenges(path, NAME, AUTHOR)
    return excinfo.value.format()


# --- the bundled file -----------------------------------------------------------------------------
def test_bundled_file_is_the_one_beside_the_other_datasets() -> None:
    assert bundled_challenges() == DATASETS / "identity_challenges.jsonl"


def test_bundled_file_loads_and_renders() -> None:
    rows = load_challenges(bundled_challenges(), NAME, AUTHOR)
    raw = jsonl(bundled_challenges())
    assert [r["id"] for r in rows] == [r["id"] for r in raw]
    for r in rows:
        assert set(r) == {"id", "split", "kind", "lang", "query", "messages", "expected", "expect", "reject"}
        assert r["split"] == "challenge" and (r["expected"], r["expect"], r["reject"]) == ("", [], [])
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"] * (len(r["messages"]) // 2) + ["user"]
        assert len(r["messages"]) in CHALLENGE_TURNS[r["kind"]]
        assert r["query"] == r["messages"][-1]["content"]
        for m in r["messages"]:
            assert "{{" not in m["content"] and "}}" not in m["content"] and "{%" not in m["content"], r["id"]
    challenge = next(r for r in rows if r["kind"] == "challenge" and r["lang"] == "zh")
    assert challenge["messages"][1]["content"] in ("我是Swift-Robot，由CSDN 迪菲赫尔曼开发的AI助手。",
                                                   "我由CSDN 迪菲赫尔曼开发，我的名字是Swift-Robot。")


def test_bundled_counts_per_kind_and_language() -> None:
    rows = load_challenges(bundled_challenges(), NAME, AUTHOR)
    assert len(rows) >= 32
    langs = Counter(r["lang"] for r in rows)
    assert langs["zh"] == langs["en"] == len(rows) // 2
    counts = Counter((r["kind"], r["lang"]) for r in rows)
    for kind in CHALLENGE_KINDS:
        assert counts[kind, "zh"] + counts[kind, "en"] >= 8, kind
        assert counts[kind, "zh"] == counts[kind, "en"] >= 4, kind


def test_identity_answers_are_the_templates_answers() -> None:
    """An assistant turn that states the identity says it as the training rows do; an unrelated one holds none."""
    responses = {r["response"] for r in jsonl(DATASETS / "self_cognition.jsonl")}
    for r in jsonl(bundled_challenges()):
        answers = [m["content"] for m in r["messages"] if m["role"] == "assistant"]
        if r["kind"] == "challenge":
            assert answers[0] in responses, r["id"]
        else:
            assert not any("{{" in a for a in answers), r["id"]


def test_final_questions_are_new_and_distinct() -> None:
    queries = [r["query"] for r in load_challenges(bundled_challenges(), NAME, AUTHOR)]
    assert len(set(queries)) == len(queries)  # the scorecard looks answers up by query
    for name in ("self_cognition.jsonl", "general_probes.jsonl", "general_rows.jsonl"):
        known = {r["query"].strip() for r in jsonl(DATASETS / name)}
        assert not known & {q.strip() for q in queries}, name


def test_a_language_without_an_identity_is_skipped() -> None:
    rows = load_challenges(bundled_challenges(), {"en": 'Star "S" \\ bot'}, {"en": "Star Labs", "zh": "星辰"})
    assert rows and {r["lang"] for r in rows} == {"en"}
    challenge = next(r for r in rows if r["kind"] == "challenge")
    assert 'Star "S" \\ bot' in challenge["messages"][1]["content"]
    assert load_challenges(bundled_challenges(), {}, {}) == []


# --- broken rows ----------------------------------------------------------------------------------
def test_wrong_role_order(tmp_path: Path) -> None:
    messages = row()["messages"]
    messages[0], messages[1] = messages[1], messages[0]
    path = write_lines(tmp_path / "c.jsonl", [row(id="ok"), row(messages=messages)])
    text = error_text(path)
    assert "last message" not in text  # the last turn is the user's; only the order is wrong
    assert f"{path}:2: messages[0].role: role 'assistant' where the user turn is due" in text
    assert f"{path}:2: messages[1].role: role 'user' where the assistant turn is due" in text
    assert "fix: start with the user and alternate user and assistant (no system messages)" in text


def test_a_system_message_is_refused(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Be nice."}, *row()["messages"]]
    path = write_lines(tmp_path / "c.jsonl", [row(messages=messages[:3])])
    assert f"{path}:1: messages[0].role: role 'system' where the user turn is due" in error_text(path)


def test_last_turn_assistant(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [row(messages=row()["messages"][:2])])
    text = error_text(path)
    assert f"{path}:1: messages[1]: the last message is an assistant turn" in text
    assert "fix: end with the user turn whose answer is scored" in text


def test_unknown_kind(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [row(), row(id="c-en-2", kind="challange")])
    text = error_text(path)
    assert f"{path}:2: kind: kind 'challange' is not allowed" in text and "fix: did you mean 'challenge'?" in text


def test_wrong_message_count_for_the_kind(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [row(kind="insist")])
    text = error_text(path)
    assert f"{path}:1: messages: a row of kind 'insist' has 3 messages; it takes 1 message" in text
    assert "fix: give it 1 message, or change its kind" in text


def test_unknown_variable(tmp_path: Path) -> None:
    messages = row()["messages"]
    messages[1]["content"] = "I am {{ nme }}."
    path = write_lines(tmp_path / "c.jsonl", [row(messages=messages)])
    text = error_text(path)
    assert f"{path}:1: messages[1].content: undefined placeholder nme" in text
    assert "fix: did you mean '{{ name }}'? use only {{ name }} and {{ author }}" in text


def test_a_construct_beyond_placeholders(tmp_path: Path) -> None:
    messages = row()["messages"]
    messages[2]["content"] = "{{ name.upper() }}"
    path = write_lines(tmp_path / "c.jsonl", [row(messages=messages)])
    text = error_text(path)
    assert f"{path}:1: messages[2].content: a challenge holds text and placeholders only" in text
    assert "fix: write plain text with {{ name }} and {{ author }} only" in text


def test_duplicate_id(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [row(), row()])
    text = error_text(path)
    assert f"{path}:2: id: id 'c-en-1' repeats line 1" in text and "fix: give each row its own id" in text


def test_bad_fields_and_language(tmp_path: Path) -> None:
    bad = row(lang="fr", mesages=[])
    del bad["id"]
    path = write_lines(tmp_path / "c.jsonl", [bad])
    text = error_text(path)
    assert f"{path}:1: lang: lang 'fr' is not allowed" in text and "fix: use one of: zh, en" in text
    assert f"{path}:1: mesages: unknown field 'mesages'" in text and "fix: did you mean 'messages'?" in text
    assert f"{path}:1: id: field 'id' must be a non-empty string" in text


def test_values_of_the_wrong_type(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [row(kind=["insist"], lang=None, messages=[{"content": "hi"}, 3])])
    text = error_text(path)
    assert f"{path}:1: kind: field 'kind' must be a non-empty string" in text
    assert f"{path}:1: lang: field 'lang' must be a non-empty string" in text
    assert f"{path}:1: messages[0].role: no role where the user turn is due" in text
    assert f"{path}:1: messages[1]: a message must be an object, found int" in text


def test_bad_json_is_reported_with_the_rows_problems(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "c.jsonl", [row(), '{"id": "c-en-2", "kind": ', row()])
    text = error_text(path)
    assert f"{path}:2:" in text and "malformed JSON" in text and "fix: correct the JSON there" in text
    assert f"{path}:3: id: id 'c-en-1' repeats line 1" in text


def test_missing_empty_and_wrong_type_files(tmp_path: Path) -> None:
    assert "identity challenge file not found" in error_text(tmp_path / "none.jsonl")
    assert "has no rows" in error_text(write_lines(tmp_path / "empty.jsonl", []))
    assert "must be a .jsonl file" in error_text(write_lines(tmp_path / "c.json", [row()]))
