"""What `export`, `chat` and `verify` act on: TARGET on the command line -> a model to load.

TARGET is a recipe (its output dir's latest complete checkpoint), an output dir or a run dir
(the same), a checkpoint-N dir, or a merged export. What was trained comes from ms-swift's own
`args.json` in the checkpoint (base model, model type, template, dtype, system prompt), so a run
made without swiftkit works too; the run record beside it, where there is one, adds the recipe
(identity, verify settings, GPU count).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from swiftkit.errors import Problem, UserError, nearby_name
from swiftkit.recipe.models import Recipe, load_recipe
from swiftkit.render import ModelRef, OFFLINE_ENV, device_env
from swiftkit.results import exports
from swiftkit.results.checkpoints import CHECKPOINT_DIR, find_runs, inspect_checkpoint, latest_checkpoint
from swiftkit.results.record import read_record

RECORD_NAME = "swiftkit-run.json"


@dataclass(frozen=True)
class Target:
    path: Path  # the checkpoint or model dir that gets loaded
    kind: str  # adapter | full (a fully tuned checkpoint) | export (merged by swiftkit) | model (any model dir)
    args: dict  # ms-swift's args.json of the checkpoint (or of the export)
    recipe: Recipe | None  # the run's resolved recipe (record), or the recipe file given
    record_path: Path | None  # the run record to update, when there is one
    data_dir: Path | None  # the run's rendered data (identity probes)
    general_probes: Path | None = None  # the recipe's verify.general_probes, resolved (None: the bundled set)

    @property
    def base_model(self) -> str:
        return str(self.args.get("model") or "")

    def ref(self, dtype: str | None = None) -> ModelRef:
        """How swift infer loads it: base + adapter, or the model dir itself."""
        a = self.args
        system = self.recipe.train.system if self.recipe and self.recipe.train.system else a.get("system")
        dtype = dtype or (self.recipe.model.dtype if self.recipe else None) or a.get("torch_dtype")
        env = device_env(self.recipe.gpu) if self.recipe else {}
        if self.kind == "adapter":
            local = Path(self.base_model).is_dir()
            return ModelRef(self.base_model, self.path, a.get("model_type"), a.get("template"), dtype, system,
                            {**env, **(OFFLINE_ENV if local else {})})
        return ModelRef(str(self.path), None, a.get("model_type"), a.get("template"), dtype, system,
                        {**env, **OFFLINE_ENV})

    def base_ref(self) -> ModelRef:
        """The model before tuning (for retention): the adapter's base, or the export's source base."""
        ref = self.ref()
        return ModelRef(self.base_model, None, ref.model_type, ref.template, ref.dtype, ref.system, ref.env)


def resolve(target: str, *, model_type: str | None = None, template: str | None = None) -> Target:
    """TARGET -> what to load; `model_type` / `template` (from --model-type / --template) name ms-swift's
    model type and template for a model dir it cannot tell by its name, over what args.json says."""
    found = _resolve(target)
    if not (model_type or template):
        return found
    args = {**found.args, **({"model_type": model_type} if model_type else {}),
            **({"template": template} if template else {})}
    return replace(found, args=args)


def _resolve(target: str) -> Target:
    path = Path(target).expanduser()
    if path.suffix in (".yaml", ".yml"):
        return _from_recipe(path)
    if not path.exists():
        for leftover in exports.leftovers(path):
            raise UserError.one(f"the export to {path} was cut off: {leftover} is what it left",
                                fix=f"delete {leftover} and export again")
        guess = nearby_name(path)
        raise UserError.one(f"no such checkpoint, run, output dir or recipe: {target}",
                            fix=f"did you mean {path.with_name(guess)}?" if guess else
                            "pass a recipe, an output dir, a run dir, a checkpoint-N dir or a merged export")
    path = path.resolve()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return _from_gguf(path)
    if exports.is_export(path) or _looks_like_model(path):
        return _from_model_dir(path)
    if CHECKPOINT_DIR.match(path.name):
        return _from_checkpoint(path)
    found = latest_checkpoint(path)
    if found is None:
        raise _no_complete(path, f"no complete checkpoint under {path}",
                           fix="train first (swiftkit run RECIPE), or pass a checkpoint-N dir")
    return _from_checkpoint(Path(found.path))


def _no_complete(output: Path, message: str, fix: str, **where) -> UserError:
    """No complete checkpoint: where checkpoints are there but broken (an adapter file cut off), each is named
    with what is wrong with it, so that "train first" is not said of a run that trained."""
    broken = [c for run in find_runs(output) for c in run.checkpoints if not c.complete][-3:]
    if not broken:
        return UserError.one(message, fix=fix, **where)
    problems = [Problem(message + f": {len(broken)} checkpoint(s) here are incomplete", **where,
                        fix="train again (swiftkit run RECIPE resumes from the last complete checkpoint), or "
                            "restore the checkpoint's files")]
    problems += [Problem(f"incomplete: {'; '.join(c.problems)}", file=str(c.path)) for c in broken]
    return UserError(problems)


def _looks_like_model(path: Path) -> bool:
    return (path / "config.json").is_file() and not CHECKPOINT_DIR.match(path.name)


def _from_recipe(path: Path) -> Target:
    if not path.is_file():
        raise UserError.one(f"recipe not found: {path}", fix="check the path (`swiftkit presets` lists the bundled ones)")
    loaded = load_recipe(path)
    output = loaded.paths.output_dir
    found = latest_checkpoint(output)
    if found is None:
        raise _no_complete(output, f"no complete checkpoint under {output} (the recipe's output.dir)", file=str(path),
                           fix=f"train first: swiftkit run {path}")
    target = _from_checkpoint(Path(found.path))
    general = loaded.paths.general_probes
    return replace(target, recipe=loaded.recipe, data_dir=output / "data", general_probes=general)


def _from_checkpoint(path: Path) -> Target:
    checkpoint = inspect_checkpoint(path)
    if not checkpoint.complete:
        sibling = latest_checkpoint(path.parent)
        raise UserError.one(f"checkpoint is incomplete: {path}: " + "; ".join(checkpoint.problems),
                            fix=f"use {sibling.path}, the last complete one" if sibling else
                            "train again (swiftkit run RECIPE resumes from the last complete checkpoint)")
    args = _args_json(path)
    record_path, recipe, data_dir, general = _record(path.parent)
    if checkpoint.kind == "adapter" and not args.get("model"):
        raise UserError.one(f"{path / 'args.json'} does not name the base model",
                            fix="the checkpoint was not written by swift sft; pass a complete ms-swift checkpoint")
    kind = "adapter" if checkpoint.kind == "adapter" else "full"
    if kind == "full":
        args = {**args, "model": args.get("model") or str(path)}
    return Target(path, kind, args, recipe, record_path, data_dir, general)


def _from_gguf(path: Path) -> Target:
    """A GGUF file: converted once (float32, the CPU's dtype; cached), then loaded as the model dir it became, with
    the model type and template its header names (--model-type / --template win)."""
    from swiftkit.gguf.convert import convert, read_marker

    model_dir = convert(path)
    marker = read_marker(model_dir) or {}
    target = _from_model_dir(model_dir)
    known = {k: marker[k] for k in ("model_type", "template") if marker.get(k)}
    return replace(target, args={**target.args, **known, "torch_dtype": marker.get("dtype", "float32")})


def _from_model_dir(path: Path) -> Target:
    problems = exports.problems(path) if exports.is_export(path) else []
    if problems:
        raise UserError.one(f"incomplete export: {path}: " + "; ".join(problems),
                            fix="delete it and export again (swiftkit export CHECKPOINT)")
    info = exports.read_marker(path)
    if info is not None and info.format == "gguf":
        files = ", ".join(info.sha256) or "its GGUF files"
        raise UserError.one(f"{path} is a GGUF export ({files}): llama.cpp and Ollama run it, ms-swift does not",
                            fix=f"ollama create NAME -f {path / 'Modelfile'} (or the .Modelfile beside a file); for "
                                f"swiftkit, pass the merged export it was made from: {info.source}")
    args = _args_json(path)
    record_path, recipe, data_dir, general = None, None, None, None
    if info is not None:
        args = {**args, "model": info.base_model}
        record_path, recipe, data_dir, general = _record(Path(info.source).parent)
    else:
        args = {**args, "model": str(path)}  # a plain model dir: its own base
    return Target(path, "export" if info else "model", args, recipe, record_path, data_dir, general)


def _args_json(path: Path) -> dict:
    try:
        data = json.loads((path / "args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(run_dir: Path) -> tuple[Path | None, Recipe | None, Path | None, Path | None]:
    """The run record beside a checkpoint, the recipe it ran, where its data was rendered, its general probes."""
    path = run_dir / RECORD_NAME
    if not path.is_file():
        return None, None, None, None
    record = read_record(path)
    try:
        recipe = Recipe.model_validate(record.resolved_recipe) if record.resolved_recipe else None
    except ValidationError:
        recipe = None  # a record from another swiftkit version: the checkpoint's args.json still says enough
    data_dir = Path(record.output_dir) / "data" if record.output_dir else None
    general = recipe.verify.general_probes if recipe else None
    if general and record.recipe:  # recipe paths are relative to the recipe file
        general = str(Path(record.recipe).parent / general)
    return path, recipe, data_dir, Path(general) if general else None
