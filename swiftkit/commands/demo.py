"""`swiftkit demo`: the embedded default, end to end with no network.

Makes the tiny Qwen2-architecture model (random weights, a tokenizer trained on the
identity data), then trains recipes/tiny-identity.yaml into it through exactly the same
path as `swiftkit run`, and verifies it.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .. import paths
from ..checks import bundled_identity_template
from ..datasets import load_identity_template, render_identity
from ..recipe import load_recipe
from ..tinymodel import build_tiny_model, identity_corpus
from .run import run

DEMO_RECIPE = paths.RECIPES_DIR / "tiny-identity.yaml"


def make_tiny_model(recipe_path: Path, model_dir: Path) -> Path:
    """Build (or reuse) the tiny model whose tokenizer knows the recipe's identity texts."""
    loaded = load_recipe(recipe_path, [f"model.id={model_dir}"])
    ident = loaded.recipe.identity
    template = loaded.resolve(ident.template) if ident and ident.template else bundled_identity_template()
    with tempfile.TemporaryDirectory() as tmp:
        files = render_identity(template, Path(tmp), name=ident.name.model_dump(), author=ident.author.model_dump())
        rows = load_identity_template(files.probes_path)
    return build_tiny_model(model_dir, identity_corpus(rows))


def demo(output: str | None, *, quiet: bool = False, events: bool = False) -> int:
    loaded = load_recipe(DEMO_RECIPE)
    model_dir = Path(output).resolve() / "model" if output else loaded.resolve(loaded.recipe.model.id)
    if not (quiet or events):
        print(f"swiftkit demo: building the tiny model in {model_dir}", file=sys.stderr, flush=True)
    make_tiny_model(DEMO_RECIPE, model_dir)
    overrides = [f"model.id={model_dir}"] + ([f"output.dir={Path(output).resolve()}"] if output else [])
    return run(str(DEMO_RECIPE), overrides=overrides, quiet=quiet, events=events)
