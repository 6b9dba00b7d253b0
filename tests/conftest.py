"""Tests never write to the real home: swiftkit's and ms-swift's caches live in a per-session temp dir."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("swiftkit-cache")
    # ms-swift's children cache datasets under MODELSCOPE_CACHE (else ~/.cache/modelscope)
    values = {"SWIFTKIT_CACHE_DIR": str(cache), "MODELSCOPE_CACHE": str(cache / "modelscope")}
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield cache
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def catalog(_isolated_cache):
    """The real catalog of the installed ms-swift (built once per test session, ~15 s)."""
    from swiftkit.flags.catalog import load_catalog

    return load_catalog()


@pytest.fixture
def write(tmp_path):
    """write("name.yaml", text) -> Path, for recipes and data made by a test."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, _isolated_cache):
    """`swiftkit demo` for real, once per test session: (output dir, exit code, events, stderr).

    Tests that only read its files share it; tests that add to it (exports) write beside what others read."""
    import json

    out = tmp_path_factory.mktemp("demo")
    code, stdout, stderr = run_cli("demo", "--output", str(out), "--events")
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return out, code, events, stderr


@pytest.fixture(scope="session")
def gguf_export(demo_run, tmp_path_factory):
    """The demo run copied (so that what is added lands beside a run no other test reads) and exported as GGUF for
    real, f32 and q8_0, merged on the way, once per session: (the copy, exit code, stderr)."""
    import shutil

    out, code, *_ = demo_run
    assert code == 0
    copy = tmp_path_factory.mktemp("gguf") / "demo"
    shutil.copytree(out, copy, symlinks=True)
    code, _, err = run_cli("export", str(copy), "--format", "gguf", "--quant", "f32", "--quant", "Q8_0")
    return copy, code, err


def run_cli(*args: str) -> tuple[int, str, str]:
    """Run swiftkit's main() in-process, capturing what the user sees."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from swiftkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


sys.path.insert(0, str(ROOT / "tests"))
# tests/ mirrors swiftkit/ (tests/run/test_phases.py tests swiftkit/run/phases.py), and a test module may
# take a builder from another by its name (`from test_targets import trained`): every test file's name is
# unique across the tree (tests/test_layout.py holds that), so each folder goes on the path.
for _folder in sorted((ROOT / "tests").iterdir()):
    if _folder.is_dir() and any(_folder.glob("test_*.py")):
        sys.path.insert(1, str(_folder))


FAULT = str(ROOT / "tests" / "fault")


@pytest.fixture
def fault_env(monkeypatch):
    """fault_env(OOM_ABOVE_MICRO_BATCH=12, ...): tests/fault/sitecustomize.py injects that fault into the
    real ms-swift child (SWIFTKIT_TEST_* variables; the docstring there lists them)."""
    def set_(**values):
        monkeypatch.setenv("PYTHONPATH", FAULT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        for key, value in values.items():
            monkeypatch.setenv(f"SWIFTKIT_TEST_{key}", str(value))
    return set_
