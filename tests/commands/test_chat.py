"""chat as a person uses it: a real terminal (a pty), the real engine on the demo's checkpoint."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e
pexpect = pytest.importorskip("pexpect")
SWIFTKIT = str(Path(sys.executable).parent / "swiftkit")


def _workers() -> set[int]:
    """Live chat engine processes (by their command line)."""
    found = set()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"chat_worker.py" in (proc / "cmdline").read_bytes():
                found.add(int(proc.name))
        except OSError:
            pass
    return found


def test_a_conversation_in_a_terminal(demo_run):
    out, code, *_ = demo_run
    assert code == 0
    before = _workers()
    child = pexpect.spawn(SWIFTKIT, ["chat", str(out)], env=dict(os.environ), encoding="utf-8", timeout=120,
                          dimensions=(40, 120))
    child.expect("loaded .*checkpoint-\\d+ on cpu; system prompt: 'You are a helpful assistant.'")
    child.expect("/clear forgets the conversation, /exit \\(or Ctrl-D\\) leaves")
    child.expect("you> ")
    child.sendline("你是谁？")
    child.expect("model> (.*)\r\n")
    assert "Swift-Robot" in child.match.group(1) and "CSDN 迪菲赫尔曼" in child.match.group(1)
    child.expect("you> ")
    child.sendline("/clear")
    child.expect("conversation cleared")
    child.expect("you> ")
    child.sendline("Who are you?")  # a trained question: a 2-layer model does not generalise to a lowercase one
    child.expect("model> (.*)\r\n")
    assert "Swift-Robot" in child.match.group(1)
    child.expect("you> ")
    child.sendeof()  # Ctrl-D leaves
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert _workers() - before == set()  # no engine left behind


def test_exit_command_and_one_shot_message(demo_run):
    out, *_ = demo_run
    child = pexpect.spawn(SWIFTKIT, ["chat", str(out)], env=dict(os.environ), encoding="utf-8", timeout=120)
    child.expect("you> ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    code, stdout, err = run_cli("chat", str(out), "--message", "Who are you?")
    assert code == 0 and stdout.count("\n") == 1
    assert "Swift-Robot" in stdout and "CSDN 迪菲赫尔曼" in stdout  # one of the trained English answers


def test_a_model_dir_without_tokenizer(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    code, _, err = run_cli("chat", str(model), "-m", "hi")
    assert code == 2 and "has no tokenizer" in err and "fix: copy the base model's tokenizer files" in err


def test_a_model_dir_ms_swift_cannot_name_gets_its_reason_and_the_options_that_fix_it(demo_run, tmp_path):
    """The demo's tiny base model, copied to a dir whose name says nothing: ms-swift finds two model types for
    it. swiftkit says so with the options to pass (it used to crash in its own error path), and they work."""
    import shutil

    out, code, *_ = demo_run
    model = tmp_path / "some-model"
    shutil.copytree(out / "model", model)
    code, stdout, err = run_cli("chat", str(model), "--message", "hi")
    assert code == 11 and "unexpected error" not in err and "Traceback" not in err
    assert "ms-swift could not tell which model type" in err and "Failed to automatically match `model_type`" in err
    assert "try: pass --model-type and --template (for Qwen2.5: --model-type qwen2 --template qwen2_5)" in err
    code, stdout, err = run_cli("chat", str(model), "--message", "hi", "--model-type", "qwen2",
                                "--template", "qwen2_5")
    assert code == 0, err


def test_compare_answers_twice_base_then_tuned_from_one_engine(demo_run):
    out, *_ = demo_run
    code, stdout, err = run_cli("chat", str(out), "--compare", "--message", "你是谁？")
    assert code == 0, err
    base, tuned = stdout.rstrip("\n").split("\n")
    assert base.startswith("base> ") and "Swift-Robot" not in base  # the random base model never learnt it
    assert tuned.startswith("tuned> 我是Swift-Robot，由CSDN 迪菲赫尔曼开发")
    child = pexpect.spawn(SWIFTKIT, ["chat", str(out), "--compare"], env=dict(os.environ), encoding="utf-8",
                          timeout=120, dimensions=(40, 120))
    child.expect("answered twice: by the base model \\(the adapter off\\), then by the tuned one")
    child.expect("you> ")
    child.sendline("Who are you?")
    child.expect("base> +(.*)\r\n")
    assert "Swift-Robot" not in child.match.group(1)
    child.expect("tuned> (.*)\r\n")
    assert "Swift-Robot" in child.match.group(1) and "CSDN 迪菲赫尔曼" in child.match.group(1)
    child.expect("you> ")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_compare_needs_an_adapter(demo_run):
    out, *_ = demo_run
    code, stdout, err = run_cli("chat", str(out / "model"), "--compare", "-m", "hi")
    assert code == 2 and "--compare needs an adapter to switch off" in err and "Traceback" not in err
    assert "fix: compare a checkpoint" in err and stdout == ""
