"""The CLI as a user meets it: help with examples, schema, presets, exit codes, and a warm
validate that never imports torch."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

from swiftkit.cli import cli
from swiftkit.commands.schema import recipe_schema

VERBS = sorted(cli.commands)


@pytest.mark.parametrize("verb", VERBS)
def test_help_ends_with_a_real_example(verb):
    code, out, _ = run_cli(verb, "--help")
    assert code == 0
    body = out.split("Options:")[0]
    assert "Example:" in body and f"swiftkit {verb}" in body.split("Example:")[1]


def test_schema_file_is_current():
    """Bundled recipes point editors at recipes/recipe.schema.json: it must match the code."""
    on_disk = json.loads((ROOT / "recipes" / "recipe.schema.json").read_text())
    assert on_disk == recipe_schema(), "regenerate: swiftkit schema > recipes/recipe.schema.json"


def test_bundled_recipes_carry_the_modeline():
    for path in (ROOT / "recipes").rglob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == (ROOT / "recipes" / "recipe.schema.json").resolve(), path


def test_presets_lists_every_bundled_recipe():
    code, out, _ = run_cli("presets")
    assert code == 0
    for path in (ROOT / "recipes").rglob("*.yaml"):
        assert str(path.relative_to(ROOT)) in out


def test_usage_error_exit_2():
    code, _, err = run_cli("validate")
    assert code == 2 and "Missing argument" in err
    code, _, err = run_cli("frobnicate")
    assert code == 2 and "No such command" in err


def test_missing_recipe_file(tmp_path):
    code, _, err = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert code == 2 and "recipe file not found" in err and "Traceback" not in err


def test_warm_validate_does_not_import_torch(catalog, tmp_path):
    """The catalog is cached per ms-swift version: a warm validate stays light."""
    probe = ("import sys; from swiftkit.cli import main; code = main(['validate', 'recipes/identity.yaml']);"
             "print('TORCH' if 'torch' in sys.modules or 'swift' in sys.modules else 'LIGHT', code)")
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip().endswith("LIGHT 0"), out
