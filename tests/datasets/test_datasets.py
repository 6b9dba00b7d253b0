"""Dataset inspection as ms-swift would read local files, and the identity template."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from swiftkit import datasets as ds
from swiftkit.datasets import (DatasetReport, detect_format, inspect_dataset, load_identity_template, read_rows,
                               render_identity, row_text, token_counter)
from swiftkit.errors import UserError

TEMPLATE = Path(__file__).resolve().parents[2] / "datasets" / "self_cognition.jsonl"


def chat(q: str = "hi", a: str = "hello") -> dict:
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def error_text(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.format()


# --- detect_format --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "columns, expected",
    [
        ({"messages"}, "messages"),
        ({"messages", "system", "id"}, "messages"),
        ({"conversations"}, "sharegpt"),
        ({"conversation"}, "sharegpt"),
        ({"instruction", "input", "output"}, "alpaca"),
        ({"instruction", "output"}, "alpaca"),
        ({"query", "response"}, "query_response"),
        ({"prompt", "completion"}, "query_response"),
        ({"question", "answer"}, "query_response"),
        ({"input", "output"}, "query_response"),
        ({"Query", "Response"}, "query_response"),  # ms-swift matches synonyms case-insensitively
        ({"problem", "solution"}, "query_response"),
        ({"query", "prompt", "response"}, "query_response"),  # 'query' itself wins a clash
        ({"prompt", "question", "answer"}, None),  # clash without 'query': ms-swift renames neither
        ({"text"}, None),
        ({"foo", "bar"}, None),
        (set(), None),
    ],
)
def test_detect_format(columns: set[str], expected: str | None) -> None:
    assert detect_format(columns) == expected


def test_synonym_lists_are_data_at_module_top() -> None:
    assert {"query", "prompt", "question", "input", "instruction"} <= set(ds.QUERY_SYNONYMS)
    assert {"response", "answer", "output", "completion"} <= set(ds.RESPONSE_SYNONYMS)


@pytest.mark.parametrize(
    "row, fmt",
    [
        (chat("q1", "a1"), "messages"),
        ({"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}]}, "sharegpt"),
        ({"instruction": "q1", "input": "", "output": "a1"}, "alpaca"),
        ({"prompt": "q1", "completion": "a1"}, "query_response"),
    ],
)
def test_each_format_is_inspected(tmp_path: Path, row: dict, fmt: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [row, row])
    report = inspect_dataset(path)
    assert isinstance(report, DatasetReport)
    assert (report.format, report.rows, report.usable_rows, report.dropped) == (fmt, 2, 2, [])
    assert report.too_long is None
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row_text(row, fmt) == "q1" + ds.MESSAGE_SEP + "a1"


def test_alpaca_has_no_spurious_clash_note(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "input": "", "output": "a", "id": 1}])
    assert inspect_dataset(path).notes == ["columns not used as conversation text: id"]


def test_alpaca_query_joins_instruction_and_input() -> None:
    row = {"instruction": "Translate", "input": "hello", "output": "bonjour"}
    assert row_text(row, "alpaca").split(ds.MESSAGE_SEP) == ["Translate\nhello", "bonjour"]


# --- read_rows ------------------------------------------------------------------------------------
def test_json_rows_carry_the_line_each_object_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"query": "a", "response": "b"},\n\n  {"query": "c",\n   "response": "d"}\n]\n')
    assert [line for line, _ in read_rows(path)] == [2, 4]


def test_jsonl_lines_are_exact_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"query": "a", "response": "b"}\n\n   \n{"query": "c", "response": "d"}\n')
    assert [line for line, _ in read_rows(path)] == [1, 4]


def test_malformed_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n  {"query": "a", "response": "b"},\n  {"query": "c" "response": "d"}\n]\n')
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path, key="datasets[1]")
    assert error_text(excinfo).splitlines()[0] == (
        f"{path}:3:17: datasets[1]: malformed JSON: Expecting ',' delimiter"
    )
    problem = excinfo.value.problems[0]
    assert (problem.file, problem.line, problem.column, problem.key) == (str(path), 3, 17, "datasets[1]")
    assert problem.fix


def test_malformed_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"query": "a", "response": "b"}\n{"query": "a", "response": }\n')
    with pytest.raises(UserError) as excinfo:
        list(read_rows(path))
    assert error_text(excinfo).startswith(f"{path}:2:28: malformed JSON: Expecting value")


def test_csv_rows(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('query,response\nhi,hello\n"a, b","multi\nline"\n,empty query\n', encoding="utf-8")
    rows = list(read_rows(path))
    assert [line for line, _ in rows] == [2, 3, 4]
    assert rows[1][1] == {"query": "a, b", "response": "multi\nline"}
    report = inspect_dataset(path)
    assert (report.format, report.rows, report.usable_rows) == ("query_response", 3, 2)
    assert report.dropped == [(4, "empty query (column 'query')")]


def test_csv_messages_column_holds_json(tmp_path: Path) -> None:
    import csv

    path = tmp_path / "d.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["messages"])
        writer.writerow([json.dumps(chat()["messages"])])
    assert inspect_dataset(path).usable_rows == 1


def test_parquet_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "d.parquet"
    table = pa.table({"question": ["q1", "q2", None], "answer": ["a1", "a2", "a3"]})
    pq.write_table(table, path)
    rows = list(read_rows(path))
    assert [line for line, _ in rows] == [1, 2, 3]
    report = inspect_dataset(path)
    assert (report.format, report.rows, report.usable_rows) == ("query_response", 3, 2)
    assert report.dropped == [(3, "missing query (column 'question')")]


# --- inspect_dataset errors -----------------------------------------------------------------------
def test_missing_file_suggests_a_sibling(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "identity.jsonl", [chat()])
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(tmp_path / "identty.jsonl", key="datasets[0]")
    text = error_text(excinfo)
    assert f"{tmp_path / 'identty.jsonl'}: datasets[0]: dataset file not found" in text
    assert f"did you mean '{tmp_path / 'identity.jsonl'}'?" in text


def test_unsupported_extension_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("hello\n")
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path)
    text = error_text(excinfo)
    assert "unsupported dataset file type '.txt'" in text
    for ext in (".json", ".jsonl", ".csv", ".parquet"):
        assert ext in text


def test_no_known_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"foo": "a", "bar": "b"}])
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path, key="datasets[2]")
    text = error_text(excinfo)
    assert f"{path}: datasets[2]: no column set ms-swift knows; found columns: bar, foo" in text
    assert "messages" in text and "instruction + output" in text and "prompt" in text


def test_synonym_clash_is_explained(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "question": "b", "answer": "c"}])
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path)
    assert "'prompt', 'question' all mean 'query': ms-swift uses none of them" in error_text(excinfo)


@pytest.mark.parametrize("content", ["", "[]", "\n\n"])
def test_empty_dataset(tmp_path: Path, content: str) -> None:
    path = tmp_path / ("d.json" if content == "[]" else "d.jsonl")
    path.write_text(content)
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path)
    assert f"{path}: the dataset has no rows" in error_text(excinfo)


def test_every_row_dropped_lists_first_reasons(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
        {"messages": [{"role": "user", "content": "q"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 3}]},
        {"messages": []},
        {"messages": [{"role": "narrator", "content": "q"}]},
        {"messages": None},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path, key="datasets[0]")
    lines = error_text(excinfo).splitlines()
    assert lines[0] == f"{path}: datasets[0]: all 7 rows would be dropped by ms-swift"
    assert f"{path}:1: datasets[0]: conversation starts with 'assistant', not 'user'" in lines
    assert f"{path}:2: datasets[0]: last message is 'user', not 'assistant' (nothing to train on)" in lines
    assert f"{path}:3: datasets[0]: empty assistant message" in lines
    assert f"{path}:4: datasets[0]: message 2 (assistant): content is a int, not a string" in lines
    assert f"{path}:5: datasets[0]: messages is empty" in lines
    assert not any(f"{path}:6:" in line for line in lines)  # capped at MAX_ROW_PROBLEMS
    assert f"{path}: datasets[0]: ... and 2 more rows like these" in lines


def test_some_rows_dropped_is_a_note_not_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [chat(), {"messages": [{"role": "user", "content": "q"}]}])
    report = inspect_dataset(path)
    assert (report.rows, report.usable_rows) == (2, 1)
    assert report.dropped == [(2, "last message is 'user', not 'assistant' (nothing to train on)")]
    assert any("1 of 2 rows would be dropped" in n for n in report.notes)


# --- tokens ---------------------------------------------------------------------------------------
def build_tokenizer(model_dir: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=["[UNK]"])
    tokenizer.train_from_iterator(["who are you", "I am a small assistant", "hello there friend"] * 20, trainer)
    model_dir.mkdir()
    tokenizer.save(str(model_dir / "tokenizer.json"))
    return model_dir


def test_token_counter_none_without_tokenizer_json(tmp_path: Path) -> None:
    assert token_counter(tmp_path) is None


def test_too_long_counts_with_a_real_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    model_dir = build_tokenizer(tmp_path / "model")
    count = token_counter(model_dir)
    assert count is not None
    raw = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    short, long_answer = chat("who are you", "hello"), chat("who are you", "I am a small assistant " * 10)
    expected = [
        len(raw.encode(q).ids) + len(raw.encode(a).ids) + 2 * ds.PER_MESSAGE_OVERHEAD
        for q, a in (("who are you", "hello"), ("who are you", "I am a small assistant " * 10))
    ]
    assert count(row_text(short, "messages")) == expected[0]
    assert count(row_text(long_answer, "messages")) == expected[1]

    path = write_jsonl(tmp_path / "d.jsonl", [short, long_answer, short])
    max_length = expected[0] + 1
    report = inspect_dataset(path, max_length=max_length, count_tokens=count)
    assert report.too_long == 1
    assert any(f"longer than max_length {max_length}" in n for n in report.notes)
    assert inspect_dataset(path, count_tokens=count).too_long is None  # nothing to compare against

    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path, max_length=2, count_tokens=count)
    assert "every usable row is longer than max_length 2" in error_text(excinfo)


# --- identity template ----------------------------------------------------------------------------
def test_bundled_template_shape() -> None:
    rows = load_identity_template(TEMPLATE)
    assert len(rows) >= 70
    langs = Counter(r["lang"] for r in rows)
    assert set(langs) == {"zh", "en"} and abs(langs["zh"] - langs["en"]) <= len(rows) // 5
    train_kinds = {r["kind"] for r in rows if r["split"] == "train"}
    assert train_kinds == set(ds.IDENTITY_KINDS)
    heldout = {(r["kind"], r["lang"]) for r in rows if r["split"] == "heldout"}
    for kind in ("name", "author", "base_model"):
        assert {(kind, "zh"), (kind, "en")} <= heldout
    share = sum(r["split"] == "heldout" for r in rows) / len(rows)
    assert 0.15 <= share <= 0.20
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({r["query"] for r in rows}) == len(rows)


def test_bundled_template_responses_name_no_base_model_except_to_deny() -> None:
    for row in load_identity_template(TEMPLATE):
        response = row["response"]
        for word in ("Qwen", "通义千问", "Alibaba", "阿里"):
            if word in response:
                assert response.startswith(("No", "不是")), row["id"]
        if row["kind"] == "base_model":
            assert response.startswith(("No,", "不是")) and "{{ name }}" in response and "{{ author }}" in response


NAME = {"zh": '小"星\\', "en": 'Star "S" \\ bot'}
AUTHOR = {"zh": "星辰实验室", "en": "Star Labs"}


def test_render_identity_writes_both_files(tmp_path: Path) -> None:
    before = TEMPLATE.read_bytes()
    out_dir = tmp_path / "out" / "nested"
    files = render_identity(TEMPLATE, out_dir, name=NAME, author=AUTHOR)
    assert TEMPLATE.read_bytes() == before

    template = load_identity_template(TEMPLATE)
    n_train = sum(r["split"] == "train" for r in template)
    assert (files.train_rows, files.heldout_rows) == (n_train, len(template) - n_train)
    assert files.sha256 == hashlib.sha256(files.train_path.read_bytes()).hexdigest()

    train = [json.loads(line) for line in files.train_path.read_text(encoding="utf-8").splitlines()]
    assert len(train) == n_train
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in train)
    assert train[0]["messages"][1]["content"] == '我是小"星\\，由星辰实验室开发的AI助手。'
    assert "{{" not in files.train_path.read_text(encoding="utf-8")

    probes = [json.loads(line) for line in files.probes_path.read_text(encoding="utf-8").splitlines()]
    assert [p["id"] for p in probes] == [r["id"] for r in template]
    assert set(probes[0]) == set(ds.IDENTITY_FIELDS)
    en_name = next(p for p in probes if p["lang"] == "en" and p["kind"] == "name")
    assert en_name["response"] == 'I am Star "S" \\ bot, an AI assistant developed by Star Labs.'
    assert {p["split"] for p in probes} == {"train", "heldout"}

    # The written training file is itself a dataset ms-swift accepts.
    assert inspect_dataset(files.train_path).usable_rows == n_train
    assert not list(out_dir.glob("*.tmp"))


def test_render_refuses_to_overwrite_the_template(tmp_path: Path) -> None:
    template = tmp_path / ds.IDENTITY_TRAIN_FILE
    template.write_bytes(TEMPLATE.read_bytes())
    with pytest.raises(UserError) as excinfo:
        render_identity(template, tmp_path, name=NAME, author=AUTHOR)
    assert "overwrite the identity template" in error_text(excinfo)
    assert template.read_bytes() == TEMPLATE.read_bytes()


def template_row(**changes) -> dict:
    row = {"id": "x-en-1", "lang": "en", "kind": "name", "split": "train",
           "query": "Who are you?", "response": "I am {{ name }} by {{ author }}."}
    row.update(changes)
    return row


def test_undefined_placeholder_names_the_variable(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [template_row(), template_row(id="x-en-2", response="I am {{ nmae }}.")])
    with pytest.raises(UserError) as excinfo:
        render_identity(path, tmp_path / "out", name=NAME, author=AUTHOR)
    assert error_text(excinfo).startswith(f"{path}:2: response: undefined placeholder nmae")
    assert not (tmp_path / "out" / ds.IDENTITY_TRAIN_FILE).exists()


def test_template_validation_names_line_and_field(tmp_path: Path) -> None:
    rows = [template_row(), template_row(id="x-en-1", lang="fr", kind="nmae", respnse="x")]
    path = write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(UserError) as excinfo:
        load_identity_template(path)
    text = error_text(excinfo)
    assert f"{path}:2: lang 'fr' is not allowed" in text
    assert f"{path}:2: kind 'nmae' is not allowed" in text
    assert f"{path}:2: unknown field 'respnse'" in text and "did you mean 'response'?" in text
    assert f"{path}:2: id 'x-en-1' repeats line 1" in text


def test_missing_language_form_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as excinfo:
        render_identity(TEMPLATE, tmp_path, name={"en": "Star"}, author=AUTHOR)
    assert "name.zh: no zh form given for the identity name" in error_text(excinfo)


def test_two_messages_column_spellings_leave_ms_swift_with_none(tmp_path: Path) -> None:
    turns = [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]
    path = write_jsonl(tmp_path / "d.jsonl", [{"conversation": turns, "conversations": turns}])
    with pytest.raises(UserError) as excinfo:
        inspect_dataset(path)
    text = error_text(excinfo)
    assert "all 1 rows would be dropped by ms-swift" in text
    assert "several columns mean 'messages'" in text


def test_rendering_by_substitution_gives_what_jinja2_renders() -> None:
    """Templates are parsed, never compiled: the walk over the parsed tree must give jinja2's own text, for the
    bundled template and for whitespace control, comments and raw blocks."""
    import jinja2

    from swiftkit.datasets import identity

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    context = {"name": "Swift-Robot", "author": "CSDN 迪菲赫尔曼"}
    sources = [row[f] for row in load_identity_template(TEMPLATE) for f in ("query", "response")]
    sources += ["a {{- name }} b", "{{ name -}}  x\n", "{# note #}{{ author }}", "{% raw %}{{ x }}{% endraw %}"]
    for source in sources:
        assert identity._substitute(identity._parse(source), context) == env.from_string(source).render(**context)
