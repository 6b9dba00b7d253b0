"""`swiftkit demo`: the embedded default, end to end with no network.

Makes the tiny Qwen2-architecture model (random weights, a tokenizer trained on the identity and
general texts), teaches it the bundled general answers (recipes/tiny-general.yaml, a full fine-tune,
cached), then trains recipes/tiny-identity.yaml into it through exactly the same path as
`swiftkit run`, and verifies it: the identity scorecard and retention of the general answers.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from swiftkit import paths
from swiftkit.commands.run import run
from swiftkit.datasets import load_identity_template, render_identity
from swiftkit.errors import EXIT_OK
from swiftkit.recipe.models import load_recipe
from swiftkit.results.checkpoints import latest_checkpoint
from swiftkit.tinymodel import STAMP_FILE, build_tiny_model, identity_corpus

DEMO_RECIPE = paths.RECIPES_DIR / "tiny-identity.yaml"
GENERAL_RECIPE = paths.RECIPES_DIR / "tiny-general.yaml"
GENERAL_STAMP = "swiftkit-general.json"
# What a model dir needs from a full checkpoint (the optimizer state and trainer files stay behind).
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json", "chat_template.jinja")


def make_tiny_model(recipe_path: Path, model_dir: Path, *, quiet: bool = True) -> Path:
    """Build (or reuse) the tiny model with general ability in `model_dir`; the random one goes beside it."""
    # 1500 tokens: the identity and the general texts, zh and en, each a few dozen tokens (1000 covered the
    # identity texts alone)
    random_dir = build_tiny_model(model_dir.with_name(model_dir.name + "-random"), _corpus(recipe_path),
                                  vocab_size=1500)
    stamp = _general_stamp(random_dir)
    if _stamp_of(model_dir) == stamp:
        return model_dir
    work = model_dir.with_name(model_dir.name + "-general-run")
    shutil.rmtree(work, ignore_errors=True)  # a fresh full fine-tune each time the inputs change
    code = run(str(GENERAL_RECIPE), overrides=[f"model.id={random_dir}", f"output.dir={work}"], quiet=quiet,
               do_verify=False)
    checkpoint = latest_checkpoint(work) if code == EXIT_OK else None
    if checkpoint is None:
        raise RuntimeError(f"teaching the tiny model its general answers failed (exit {code}); see {work}")
    _install(Path(checkpoint.path), model_dir, stamp)
    shutil.rmtree(work, ignore_errors=True)
    return model_dir


def _corpus(recipe_path: Path) -> list[str]:
    """The identity texts (rendered with the recipe's name) and the general probes' texts."""
    loaded = load_recipe(recipe_path, ["model.id=unused"])
    ident = loaded.recipe.identity
    template = loaded.paths.identity_template or paths.bundled_identity_template()
    with tempfile.TemporaryDirectory() as tmp:
        files = render_identity(template, Path(tmp), name=ident.name.model_dump(), author=ident.author.model_dump())
        rows = load_identity_template(files.probes_path)
    general = [json.loads(line) for line in paths.bundled_general_probes().read_text(encoding="utf-8").splitlines()
               if line.strip()]
    return identity_corpus(rows + general)


def _general_stamp(random_dir: Path) -> str:
    """The random build, the general recipe and its data: what the general model is made of."""
    h = hashlib.sha256()
    h.update((random_dir / STAMP_FILE).read_bytes())
    h.update(load_recipe(GENERAL_RECIPE).recipe.digest().encode())
    h.update(paths.bundled_general_probes().read_bytes())
    return h.hexdigest()


def _stamp_of(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / GENERAL_STAMP).read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _install(checkpoint: Path, model_dir: Path, stamp: str) -> None:
    """Copy the model files into a sibling temp dir, stamp it, and rename it into place."""
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.tmp-", dir=model_dir.parent))
    for name in MODEL_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, tmp / name)
    (tmp / GENERAL_STAMP).write_text(json.dumps({"sha256": stamp, "from": str(checkpoint)}) + "\n", encoding="utf-8")
    tmp.chmod(0o755)
    if model_dir.exists():
        if not (model_dir / GENERAL_STAMP).is_file() and any(model_dir.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{model_dir} exists and is not a tiny model built by swiftkit; remove it")
        shutil.rmtree(model_dir)
    os.replace(tmp, model_dir)


def demo(output: str | None, *, quiet: bool = False, events: bool = False) -> int:
    loaded = load_recipe(DEMO_RECIPE)
    model_dir = Path(output).resolve() / "model" if output else loaded.paths.model
    if not (quiet or events):
        print(f"swiftkit demo: building the tiny model in {model_dir} (random weights, then the bundled general "
              "answers: cached after the first time)", file=sys.stderr, flush=True)
    make_tiny_model(DEMO_RECIPE, model_dir)
    overrides = [f"model.id={model_dir}"] + ([f"output.dir={Path(output).resolve()}"] if output else [])
    return run(str(DEMO_RECIPE), overrides=overrides, quiet=quiet, events=events)
