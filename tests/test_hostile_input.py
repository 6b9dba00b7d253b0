"""Hostile recipes and datasets: deep nesting, alias bombs, control characters, NUL bytes, huge lines,
symlink loops. Each gets a clear error (exit 2, where, what, a fix) or is handled safely; none a
traceback, a hang or a blown-up memory."""
from __future__ import annotations

import json
import os
import time

import pytest

from conftest import run_cli

BASE = "model: {id: Qwen/Qwen2.5-7B-Instruct}\ntrain: {epochs: 1}\n"


@pytest.fixture(autouse=True)
def _catalog_first(catalog):
    """The session's first validate builds the flag catalog (tens of seconds on a loaded machine): built before
    the clock below starts, so that it times only what the hostile input costs."""


def validate(path) -> tuple[int, str]:
    start = time.monotonic()
    code, out, err = run_cli("validate", str(path))
    assert time.monotonic() - start < 30, "hostile input must not make validate hang"
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, out + err


def test_deep_nesting_is_refused(write):
    code, text = validate(write("deep.yaml", BASE + "datasets: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert code == 2 and "the recipe is nested too deeply to read" in text
    code, text = validate(write("deep2.yaml", BASE + "datasets: " + "[" * 60 + "]" * 60 + "\n"))
    assert code == 2 and "the recipe is nested deeper than 40 levels" in text


def test_an_alias_bomb_is_refused_without_expanding_it(write):
    levels = "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    code, text = validate(write("bomb.yaml", BASE + "datasets: [identity]\nidentity: {name: a, author: b}\n"
                                "swift:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + levels))
    assert code == 2 and "the recipe expands to more than 50000 values" in text


def test_a_control_character_in_a_recipe_is_located_and_never_echoed_raw(write):
    code, text = validate(write("esc.yaml", BASE + 'datasets: ["a\x1b[31mb.jsonl"]\n'))
    assert code == 2 and "esc.yaml:3: a control character" in text and "\x1b" not in text


def test_nul_bytes_in_a_dataset_are_a_located_error(write):
    data = write("nul.jsonl", '{"messages": [{"role": "user", "content": "hi"}, '
                              '{"role": "assistant", "content": "ok"}]}\n\x00\x00\n')
    code, text = validate(write("r.yaml", BASE + f"datasets: [{data}]\n"))
    assert code == 2 and "nul.jsonl:2:1: datasets[0]: malformed JSON" in text


def test_control_characters_inside_rows_are_data_and_never_reach_the_terminal_raw(write):
    row = {"messages": [{"role": "user", "content": "hi\x1b[2J\x07"}, {"role": "assistant", "content": ""}]}
    data = write("ctrl.jsonl", json.dumps(row) + "\n")
    code, text = validate(write("r.yaml", BASE + f"datasets: [{data}]\n"))
    assert code == 2 and "\x1b" not in text and "\x07" not in text  # every row dropped: the error quotes none raw


def test_a_huge_line_is_read_without_trouble(write):
    row = {"messages": [{"role": "user", "content": "x" * 20_000_000}, {"role": "assistant", "content": "ok"}]}
    data = write("huge.jsonl", json.dumps(row) + "\n")
    code, text = validate(write("r.yaml", BASE + f"datasets: [{data}]\n"))
    assert code == 0, text


def test_symlink_loops_and_dangling_links_are_named_as_such(write, tmp_path):
    os.symlink(tmp_path / "loop2.jsonl", tmp_path / "loop1.jsonl")
    os.symlink(tmp_path / "loop1.jsonl", tmp_path / "loop2.jsonl")
    os.symlink("/nonexistent/data.jsonl", tmp_path / "dangling.jsonl")
    code, text = validate(write("r.yaml", BASE + "datasets: [loop1.jsonl, dangling.jsonl]\n"))
    assert code == 2
    assert f"dataset file {tmp_path / 'loop1.jsonl'} is a symlink loop" in text
    assert "is a symlink to /nonexistent/data.jsonl, which does not exist" in text
