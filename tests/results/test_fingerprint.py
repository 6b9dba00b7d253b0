"""fingerprint: a model dir's content hash, memoised per file version."""
from __future__ import annotations

import os

from swiftkit.results.fingerprint import file_sha256, fingerprint


def model(path, weights=b"w" * 100):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"hidden_size": 64}')
    (path / "model.safetensors").write_bytes(weights)
    (path / "args.json").write_text("{}")
    return path


def test_same_content_same_fingerprint_wherever_it_lives(tmp_path):
    a, b = model(tmp_path / "a"), model(tmp_path / "b")
    assert fingerprint(a) == fingerprint(b)
    (b / "args.json").write_text('{"other": 1}')  # not part of what the model answers
    assert fingerprint(a) == fingerprint(b)


def test_different_weights_of_the_same_shape_differ(tmp_path):
    a, b = model(tmp_path / "a", b"x" * 100), model(tmp_path / "b", b"y" * 100)
    assert fingerprint(a) != fingerprint(b)


def test_a_rewritten_file_is_hashed_again(tmp_path):
    a = model(tmp_path / "a")
    before = file_sha256(a / "model.safetensors")
    (a / "model.safetensors").write_bytes(b"z" * 101)
    os.utime(a / "model.safetensors", ns=(1, 1))
    assert file_sha256(a / "model.safetensors") != before


def test_a_hub_id_is_its_own_fingerprint():
    assert fingerprint("Qwen/Qwen2.5-7B-Instruct") != fingerprint("Qwen/Qwen2.5-1.5B-Instruct")
