"""Hostile input, security: an identity template can run no code, an error quotes no file reached
through a link, and text that could reorder a terminal is printed escaped."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

BASE = "model: {id: Qwen/Qwen2.5-7B-Instruct}\ntrain: {epochs: 1}\n"


def template_file(write, name: str, response: str):
    row = {"id": "x-en-1", "lang": "en", "kind": "name", "split": "train", "query": "Who are you?",
           "response": response}
    return write(name, json.dumps(row) + "\n")


def identity_recipe(write, template) -> str:
    return str(write("r.yaml", BASE + "datasets: [identity]\n"
                     f"identity: {{name: Star, author: Lab, template: {template.name}}}\n"))


@pytest.mark.parametrize("payload, construct", [
    ("{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}", "an attribute"),
    ("{{ name.__class__.__mro__[1].__subclasses__() }}", "an attribute"),
    ("{{ lipsum.__globals__['os'].system('touch PWNED') }}", "an attribute"),
    ("{{ name|attr('__class__') }}", "a filter"),
    ("{% for c in name %}{{ c }}{% endfor %}", "a loop"),
    ("{% set x = 1 %}{{ name }}", "an assignment"),
    ("{{ name() }}", "a call"),
    ("{{ name['x'] }}", "an item lookup"),
])
def test_a_template_that_reaches_beyond_its_placeholders_is_refused_at_validate(write, tmp_path, monkeypatch,
                                                                                 payload, construct):
    monkeypatch.chdir(tmp_path)
    template = template_file(write, "t.jsonl", payload)
    code, out, err = run_cli("validate", identity_recipe(write, template))
    assert code == 2, out + err
    assert f"{template}:1: response: an identity template holds text and placeholders only; found " in err
    assert construct in err
    assert "fix: write plain text with {{ name }} and {{ author }} only" in err
    assert "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()


def test_the_sandbox_holds_even_when_the_check_is_bypassed(tmp_path, monkeypatch):
    """Defence in depth: rendering itself runs in jinja2's immutable sandbox."""
    from swiftkit.datasets import identity
    from swiftkit.errors import UserError

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(identity, "_constructs", lambda tree: [])
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"id": "x-en-1", "lang": "en", "kind": "name", "split": "train", "query": "q",
                                "response": "{{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }}"})
                    + "\n")
    with pytest.raises(UserError) as excinfo:
        identity.render_identity(path, tmp_path / "out", name={"en": "Star"}, author={"en": "Lab"})
    assert f"{path}:1: response:" in excinfo.value.format()
    assert not (tmp_path / "PWNED").exists()


def test_plain_placeholders_still_render(write, tmp_path):
    template = template_file(write, "t.jsonl", "I am {{ name }}, made by {{author}}.")
    code, out, err = run_cli("validate", identity_recipe(write, template))
    assert code == 0, out + err


# --- other files' contents in errors ---------------------------------------------------------------------------
def test_a_dataset_linked_to_a_system_file_is_never_quoted(write, tmp_path):
    import os

    os.symlink("/etc/passwd", tmp_path / "data.csv")
    code, out, err = run_cli("validate", str(write("r.yaml", BASE + "datasets: [data.csv]\n")))
    assert code == 2
    assert "found columns: 1 (not shown: the file is a link to outside the recipe's folder)" in err
    assert "root:" not in err


def test_an_error_quotes_only_the_first_characters_of_unknown_content(write):
    data = write("d.csv", "a" * 30 + "SECRET-TAIL,other\n1,2\n")
    code, out, err = run_cli("validate", str(write("r.yaml", BASE + f"datasets: [{data.name}]\n")))
    assert code == 2 and f"found columns: '{'a' * 24}...', other" in err
    assert "SECRET-TAIL" not in err


def test_a_linked_dataset_inside_the_recipe_folder_is_the_users_own_and_quoted(write, tmp_path):
    import os

    write("real/d.csv", "foo,bar\n1,2\n")
    os.symlink(tmp_path / "real" / "d.csv", tmp_path / "d.csv")
    code, out, err = run_cli("validate", str(write("r.yaml", BASE + "datasets: [d.csv]\n")))
    assert code == 2 and "found columns: bar, foo" in err


# --- terminal-reordering characters ----------------------------------------------------------------------------
@pytest.mark.parametrize("char", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200b", "\u200f", "\ufeff", "\u2060"])
def test_bidirectional_and_invisible_characters_are_printed_escaped(write, char):
    code, out, err = run_cli("validate", str(write("r.yaml", BASE + f'datasets: ["x{char}y.jsonl"]\n')))
    assert code == 2 and f"dataset file not found: " in err
    assert char not in out + err
    assert f"x\\u{ord(char):04x}y.jsonl" in err


def test_progress_lines_escape_them_too():
    import io

    from swiftkit.run.progress import Plain

    stream = io.StringIO()
    Plain(stream).say("swiftkit: run dir /out/a\u202egpj.exe")
    assert stream.getvalue() == "swiftkit: run dir /out/a\\u202egpj.exe\n"


def test_checkpoints_prints_a_run_dir_with_an_override_escaped(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "results"))
    from test_checkpoints import make_run

    make_run(tmp_path / "o\u202eut", "v0-20261201-100000", [5], {5: 1.0})
    code, out, err = run_cli("checkpoints", str(tmp_path / "o\u202eut"))
    assert code == 0 and "\u202e" not in out and "o\\u202eut/v0-20261201-100000" in out
