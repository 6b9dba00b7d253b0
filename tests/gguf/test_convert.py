"""GGUF -> Hugging Face model dir: names, refusals before the child starts, and the real SmolLM2 converted once
(e2e), then found in the cache; what a stopped conversion left is never used."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from swiftkit import paths
from swiftkit.commands.convert import convert as convert_command
from swiftkit.errors import UserError
from swiftkit.gguf import convert as converting
from conftest import run_cli
from swiftkit.gguf.convert import MARKER, DiskSpaceError, convert, hub_name, read_marker
from swiftkit.gguf.fetch import KNOWN
from swiftkit.gguf.header import read_header
from test_fetch import smollm2_gguf  # noqa: F401 - a fixture
from test_header import write_gguf


def test_the_dir_is_named_like_the_hub_id(tmp_path):
    qwen = read_header(write_gguf(tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", arch="qwen2",
                                  name="Qwen2.5 Coder 0.5B Instruct AWQ"))
    assert hub_name(qwen, "0" * 64) == "Qwen2.5-Coder-0.5B-Instruct"
    assert hub_name(qwen, KNOWN["smollm2-135m-instruct"].sha256) == "SmolLM2-135M-Instruct"  # known bytes
    unnamed = read_header(write_gguf(tmp_path / "Tiny-7B-Chat.Q8_0.gguf", name=""))
    assert hub_name(unnamed, "0" * 64) == "Tiny-7B-Chat"
    odd = read_header(write_gguf(tmp_path / "odd.gguf", name="../../etc Model\x1b[31m"))
    assert "/" not in hub_name(odd, "0" * 64) and "\x1b" not in hub_name(odd, "0" * 64)


def no_child(monkeypatch):
    monkeypatch.setattr(converting.process, "supervise", lambda *a, **k: pytest.fail("the child was started"))


def test_refusals_come_before_the_child(tmp_path, monkeypatch):
    no_child(monkeypatch)
    path = write_gguf(tmp_path / "tiny.gguf")
    with pytest.raises(UserError, match="unknown dtype 'float8'"):
        convert(path, dtype="float8")
    with pytest.raises(UserError, match="cannot be loaded from a GGUF"):
        convert(write_gguf(tmp_path / "rwkv.gguf", arch="rwkv6"))
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not a finished conversion"):
        convert(path, out_dir=taken)
    assert (taken / "notes.txt").read_text() == "mine"


def test_not_enough_disk_is_its_own_error(tmp_path, monkeypatch):
    no_child(monkeypatch)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(converting.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 1000))
    big = write_gguf(tmp_path / "big.gguf", tensors=[("w", np.zeros((512, 512), np.float32), None)])
    with pytest.raises(DiskSpaceError) as err:
        convert(big)
    assert isinstance(err.value, UserError) and "not enough disk space" in err.value.format()
    assert "262,144 parameters" in err.value.format()
    code, out, err_text = run_cli("convert", str(big))  # the command exits 9, as a full disk in training does
    assert code == 9 and "not enough disk space" in err_text and "Traceback" not in err_text


def test_the_sha256_of_an_unchanged_file_is_remembered(tmp_path, monkeypatch):
    path = write_gguf(tmp_path / "tiny.gguf")
    first = converting.cached_sha256(path)
    monkeypatch.setattr(converting.fetch, "sha256_of", lambda _: pytest.fail("hashed again"))
    assert converting.cached_sha256(path) == first


@pytest.fixture(scope="module")
def converted(smollm2_gguf):  # noqa: F811 - the fixture imported above
    """SmolLM2 converted for real (float32), after leftovers of a stopped conversion were planted where it goes."""
    entry = paths.cache_dir() / "gguf" / f"{KNOWN['smollm2-135m-instruct'].sha256}-float32"
    shutil.rmtree(entry, ignore_errors=True)  # an earlier test's finished conversion: planting over it would spoil it
    dead = entry / ".SmolLM2-135M-Instruct.staging-dead" / "SmolLM2-135M-Instruct"
    unmarked = entry / "SmolLM2-135M-Instruct"  # renamed into place, killed before its marker
    for folder in (dead, unmarked):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text('{"planted": true}')
    started = time.monotonic()
    model_dir = convert(smollm2_gguf)
    return model_dir, time.monotonic() - started, entry


@pytest.mark.e2e
def test_the_real_smollm2_converts_to_a_model_dir(converted):
    model_dir, seconds, entry = converted
    assert model_dir == entry / "SmolLM2-135M-Instruct"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert config["tie_word_embeddings"] is True and config["num_hidden_layers"] == 30
    assert (model_dir / "model.safetensors").stat().st_size > 500e6
    assert (model_dir / "tokenizer.json").is_file()
    template = model_dir / "chat_template.jinja"
    tokenizer_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    chat = template.read_text() if template.is_file() else tokenizer_config.get("chat_template", "")
    assert "<|im_start|>" in chat and "SmolLM" in chat
    marker = read_marker(model_dir)
    assert marker["gguf_sha256"] == KNOWN["smollm2-135m-instruct"].sha256 and marker["dtype"] == "float32"
    assert (marker["model_type"], marker["template"]) == ("llama", "chatml")
    facts = marker["facts"]
    assert facts["parameters"] == 134_515_008 and facts["logit_difference"] == 0.0 and facts["chat_template"]
    assert not list(entry.glob(".*staging*")), "the planted staging dir was not cleaned up"
    print(f"converted in {seconds:.1f} s (child {facts['seconds']} s)")


@pytest.mark.e2e
def test_a_second_convert_is_a_cache_hit(converted, smollm2_gguf, capsys):  # noqa: F811
    model_dir, _, _ = converted
    stamp = (model_dir / MARKER).stat().st_mtime_ns
    started = time.monotonic()
    assert convert(smollm2_gguf) == model_dir
    seconds = time.monotonic() - started
    print(f"cache hit in {seconds:.3f} s")
    assert seconds < 0.8
    assert (model_dir / MARKER).stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert convert_command(str(smollm2_gguf)) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(model_dir)
    assert "from the cache" in err and "--model_type llama --template chatml" in err


@pytest.mark.e2e
def test_a_dir_whose_marker_is_for_other_bytes_is_not_used(converted, smollm2_gguf, tmp_path, monkeypatch):  # noqa: F811
    model_dir, _, _ = converted
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / MARKER).write_text(json.dumps({**read_marker(model_dir), "gguf_sha256": "0" * 64}))
    monkeypatch.setattr(converting.process, "supervise", lambda *a, **k: pytest.fail("child"))
    with pytest.raises(UserError, match="not a finished conversion"):
        convert(smollm2_gguf, out_dir=other)


def test_a_failed_conversion_keeps_its_log_and_leaves_nothing_that_is_used(tmp_path, monkeypatch):
    child = tmp_path / "failing_child.py"
    child.write_text("import json, os, sys\n"
                     "out = json.loads(sys.argv[1])['out']\n"
                     "os.makedirs(out)\n"
                     "open(os.path.join(out, 'config.json'), 'w').write('{}')\n"
                     "print('[convert] dequantizing')\n"
                     "print('ValueError: the tensor blk.0 is broken')\n"
                     "sys.exit(1)\n")
    monkeypatch.setattr(converting, "CHILD", child)
    lines = []
    path = write_gguf(tmp_path / "Broken-1M.gguf", name="Broken 1M")
    with pytest.raises(converting.ConversionFailed) as err:
        convert(path, on_line=lines.append)
    message = str(err.value)
    assert "the tensor blk.0 is broken" in message and "exit 1" in message and lines == ["[convert] dequantizing"]
    log = message.rsplit("the log: ", 1)[1]
    assert "ValueError" in open(log).read()
    entry = next((paths.cache_dir() / "gguf").glob(f"{converting.cached_sha256(path)}-float32"))
    assert not (entry / "Broken-1M").exists() and not list(entry.glob(".*staging*"))


FAKE_CHILD = ("import json, os, sys\n"
              "out = json.loads(sys.argv[1])['out']\n"
              "os.makedirs(out)\n"
              "open(os.path.join(out, 'config.json'), 'w').write('{\"fake\": true}')\n"
              "print(json.dumps({'facts': {'parameters': 1}}))\n")


def staged_children(staging) -> list[int]:
    """Processes whose command line names the staging dir (the conversion child writing into it)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(staging) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(proc.name))
        except OSError:
            pass
    return found


@pytest.mark.e2e
def test_a_killed_conversion_stops_its_child_and_is_cleaned_up(smollm2_gguf, tmp_path, monkeypatch):  # noqa: F811
    entry = paths.cache_dir() / "gguf" / f"{KNOWN['smollm2-135m-instruct'].sha256}-bfloat16"
    code = f"from swiftkit.gguf.convert import convert; convert({str(smollm2_gguf)!r}, dtype='bfloat16')"
    parent = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.monotonic() + 60
    while not list(entry.glob(".*staging*/convert.log")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [staging] = [p.parent for p in entry.glob(".*staging*/convert.log")]
    time.sleep(0.5)  # the child is importing torch
    assert staged_children(staging), "no conversion child was started"
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while staged_children(staging) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not staged_children(staging), "the conversion child outlived its parent"
    assert staging.is_dir() and not (entry / "SmolLM2-135M-Instruct").exists()
    child = tmp_path / "fake_child.py"
    child.write_text(FAKE_CHILD)
    monkeypatch.setattr(converting, "CHILD", child)
    model_dir = convert(smollm2_gguf, dtype="bfloat16")  # the next conversion: the stopped one's dir is gone
    assert model_dir == entry / "SmolLM2-135M-Instruct" and read_marker(model_dir)["dtype"] == "bfloat16"
    assert not staging.exists() and not list(entry.glob(".*staging*"))


@pytest.mark.e2e
def test_ms_swift_tells_the_qwen_model_by_the_dir_name(tmp_path):
    """The installed ms-swift matches a local dir by its name: the name hub_name gives Qwen2.5's GGUF is one."""
    qwen = read_header(write_gguf(tmp_path / "q.gguf", arch="qwen2", name="Qwen2.5 Coder 0.5B Instruct AWQ"))
    folder = tmp_path / hub_name(qwen, "0" * 64)
    code = ("import sys; from swift.model.model_meta import get_matched_model_meta as match; "
            "m = match(sys.argv[1]); print(m.model_type if m else None, m.template if m else None)")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300)
    assert done.stdout.split()[-2:] == [qwen.model_type, qwen.template] == ["qwen2", "qwen2_5"], done.stderr[-2000:]
