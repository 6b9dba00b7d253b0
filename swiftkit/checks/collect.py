"""Every check that can run before a GPU spins, collected into one report.

`check(path)` loads the recipe (schema), then runs the cross-field, model, dataset and
flag checks, gathering every problem before raising one UserError. What it resolves
on the way (model type, dataset arguments, batch split) becomes the Plan that render.py
turns into commands.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from swiftkit import datasets as ds, paths
from swiftkit.checks.data import check_datasets, check_general_probes, plan_holdout
from swiftkit.checks.distributed import check_distributed
from swiftkit.checks.export_section import export_problems
from swiftkit.checks.gguf_model import GgufSource, check_gguf, is_gguf
from swiftkit.checks.model_config import config_problems
from swiftkit.checks.output_dir import WEIGHT_GLOBS, check_output_dir, has_weights
from swiftkit.datasets.holdout import Holdout
from swiftkit.errors import Problem, UserError, choice_fix, nearby_name, unique
from swiftkit.flags.catalog import Catalog, MODEL_TYPE_RENAMES, REMOVED, RENAMED, load_catalog
from swiftkit.launch.node import Launch
from swiftkit.recipe.models import SELF_COGNITION, LoadedRecipe, load_recipe
from swiftkit.render import (Invocation, Plan, export_options, model_ref, render_export, render_infer, render_sft,
                             resolve_batch)
from swiftkit.paths import bundled_identity_template  # noqa: F401  (imported from here by commands/demo.py)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
# Flags swiftkit rejects in the escape hatch, and why.
FORBIDDEN_FLAGS = {
    "model_name": "--model_name only fills the hub dataset swift/self-cognition; for local data it does nothing. "
                  "Use `identity: {name: ...}` and the `identity` dataset",
    "model_author": "--model_author only fills the hub dataset swift/self-cognition; for local data it does nothing. "
                    "Use `identity: {author: ...}` and the `identity` dataset",
}


@dataclass
class Checked:
    loaded: LoadedRecipe
    plan: Plan
    catalog: Catalog
    notes: list[str] = field(default_factory=list)
    reports: list = field(default_factory=list)
    identity_template: Path | None = None
    holdout: Holdout | None = None  # general rows kept out of training for eval loss
    general_probes: Path | None = None  # verify.general_probes resolved (None: the bundled set)
    gguf: GgufSource | None = None  # model.id named a .gguf file: where plan.model's weights come from
    identity_systems: list[str | None] | None = None  # identity.train_systems as the rows' system prompts


def check(path: Path | str, *, catalog: Catalog | None = None, overrides: list[str] | None = None,
          launch: Launch | None = None) -> Checked:
    """`launch`: which node of the run this is (launch/node.py), checked against the recipe; None: not a run (the
    commands are shown as node 0 of a run over gpu.nodes would start them, minus the master)."""
    loaded = load_recipe(path, overrides)
    problems: list[Problem] = []
    notes: list[str] = []
    problems += cross_field(loaded)
    problems += check_output_dir(loaded)
    problems += check_distributed(loaded, launch, notes)
    launch = launch or Launch()
    catalog = catalog or load_catalog()
    is_local = loaded.paths.model_is_local
    model, model_type, template, gguf = check_model(loaded, catalog, problems, notes)
    tokenizer_dir = model if is_local and (gguf is None or gguf.converted) else None  # not before conversion
    dataset_args, reports, identity_template, general = check_datasets(loaded, problems, notes, tokenizer_dir)
    if problems:
        raise UserError(problems, headline=f"{loaded.path}: {len(problems)} problem(s); nothing was run")
    micro, accum = resolve_batch(loaded.recipe)  # type: ignore[misc]  (cross_field proved it resolves)
    output_dir = loaded.paths.output_dir
    held = plan_holdout(loaded, general, output_dir / "data", dataset_args, notes)
    plan = Plan(loaded.recipe, model, is_local, model_type, template, dataset_args, output_dir,
                output_dir / "data", micro, accum, val_dataset=held.heldout_path if held else None, launch=launch,
                deepspeed_config=loaded.paths.deepspeed_config, fsdp_config=loaded.paths.fsdp_config)
    probes = loaded.paths.general_probes
    checked = Checked(loaded, plan, catalog, notes, reports, identity_template, held, probes, gguf)
    checked.identity_systems = identity_systems(loaded, catalog, model_type, template, problems)
    problems += check_general_probes(loaded, probes)
    problems += check_flags(checked)
    if problems:
        raise UserError(problems, headline=f"{loaded.path}: {len(problems)} problem(s); nothing was run")
    return checked


def identity_systems(loaded: LoadedRecipe, catalog: Catalog, model_type: str | None, template: str | None,
                     problems: list[Problem]) -> list[str | None] | None:
    """identity.train_systems as the train rows' system prompts: recipe -> none in the row (train.system
    applies), default -> the template's own text ("" where it has none, which is what a request without a
    system prompt gets)."""
    ident = loaded.recipe.identity
    if ident is None or ident.train_systems == ["recipe"]:
        return None
    known = catalog.template_of(model_type, template)
    if known is None:
        problems.append(loaded.problem("identity.train_systems: default needs the model's chat template, and it "
                                       "could not be told from the model", ("identity", "train_systems"),
                                       "set model.template (a Qwen2.5 model uses qwen2_5)"))
        return None
    default = catalog.default_system(known) or ""
    return [None if name == "recipe" else default for name in ident.train_systems]


# -- cross-field -------------------------------------------------------------------------------

def cross_field(loaded: LoadedRecipe) -> list[Problem]:
    r, p = loaded.recipe, loaded.problem
    out: list[Problem] = []
    if (r.train.epochs is None) == (r.train.max_steps is None):
        both = r.train.epochs is not None
        out.append(p("give exactly one of train.epochs and train.max_steps" + (" (both are set)" if both else ""),
                     ("train", "max_steps" if both else "epochs"), "keep epochs (e.g. `epochs: 10`) or max_steps, not both"
                     if both else "add `epochs: 3` (or `max_steps: N`) under train:"))
    batch = resolve_batch(r)
    if isinstance(batch, str):
        out.append(p(batch, ("train", "effective_batch_size"), "change train.micro_batch_size, "
                     "train.gradient_accumulation or train.effective_batch_size so that they multiply out"))
    uses_identity = any(d.identity for d in r.datasets)
    if uses_identity and r.identity is None:
        i = next(i for i, d in enumerate(r.datasets) if d.identity)
        out.append(p("the identity dataset needs an `identity:` section (name and author)", ("datasets", i),
                     "add `identity: {name: Swift-Robot, author: Your Team}` at the top level"))
    for i, d in enumerate(r.datasets):
        if d.weight is not None and d.hub and d.samples is None:
            out.append(p("weight needs samples for a hub dataset (its size cannot be known offline)",
                         ("datasets", i, "weight"), "give `samples: N` instead of (or as well as) weight"))
    if r.train.eval_steps and not r.train.eval_split and "val_dataset" not in r.swift:
        out.append(p("eval_steps does nothing without an eval split (ms-swift would ignore it silently)",
                     ("train", "eval_steps"), "set train.eval_split, e.g. 0.05, or remove eval_steps"))
    if r.swift.get("warmup_steps") and r.train.warmup_ratio:
        out.append(p("ms-swift refuses warmup_steps together with warmup_ratio", ("swift", "warmup_steps"),
                     "set `train.warmup_ratio: 0` to use warmup_steps, or drop warmup_steps"))
    gpu = r.gpu
    if gpu.visible_devices is not None and gpu.count and len(gpu.visible_devices) != gpu.count:
        out.append(p(f"{len(gpu.visible_devices)} visible device(s) for gpu.count {gpu.count}",
                     ("gpu", "visible_devices"), f"list exactly {gpu.count} device index(es), or change gpu.count"))
    if r.verify.min_score is not None and not uses_identity and not r.verify.probes:
        out.append(p("verify.min_score needs something to verify: the identity dataset or verify.probes",
                     ("verify", "min_score"), "add verify.probes, or remove min_score"))
    if r.verify.min_retention is not None and not r.verify.retention:
        out.append(p("verify.min_retention needs verify.retention", ("verify", "min_retention"),
                     "remove min_retention, or set retention: true"))
    if r.verify.checkpoints != "last" and r.lora.tuner == "full":
        out.append(p(f"{r.verify.checkpoints} swaps each checkpoint's adapter into one engine, and "
                     "a full fine-tune's checkpoints are whole models", ("verify", "checkpoints"),
                     "set `checkpoints: last`, and verify an earlier checkpoint with `swiftkit verify CHECKPOINT`"))
    if r.verify.checkpoints != "last" and r.train.save_total_limit == 1:
        out.append(p(f"{r.verify.checkpoints} with train.save_total_limit 1 has one checkpoint to score",
                     ("verify", "checkpoints"),
                     "keep more (e.g. `save_total_limit: 5` and `save_steps`), or set `checkpoints: last`"))
    return out + export_problems(loaded)


# -- model ---------------------------------------------------------------------------------------

def check_model(loaded: LoadedRecipe, catalog: Catalog, problems: list[Problem], notes: list[str]):
    m, p = loaded.recipe.model, loaded.problem
    local, is_local = loaded.paths.model, loaded.paths.model_is_local
    model_type, template = m.model_type, m.template
    if model_type in MODEL_TYPE_RENAMES and model_type not in catalog.model_types:
        mt, tpl = MODEL_TYPE_RENAMES[model_type]
        problems.append(p(f"'{model_type}' is not a model_type in ms-swift {catalog.version} (it is a template)",
                          ("model", "model_type"), f"write `model_type: {mt}` and `template: {tpl}`"))
        model_type = None
    elif model_type and model_type not in catalog.model_types:
        problems.append(p(f"unknown model_type '{model_type}' for ms-swift {catalog.version}",
                          ("model", "model_type"), choice_fix(model_type, catalog.model_types)))
        model_type = None
    if template and template not in catalog.templates:
        problems.append(p(f"unknown template '{template}' for ms-swift {catalog.version}", ("model", "template"),
                          choice_fix(template, catalog.templates)))
    if not is_local:
        known = any(m.id in info["model_ids"] for info in catalog.model_types.values())
        if not known and not model_type:
            notes.append(f"model {m.id} is not a model id ms-swift knows; set model.model_type and model.template "
                         "if it fails to detect them")
        notes.append(f"model {m.id} is a hub id: it is fetched at run time and cannot be checked offline")
        return m.id, model_type, template, None
    if is_gguf(local):
        return check_gguf(loaded, local, catalog, model_type, template, problems, notes)
    before = len(problems)
    config = _check_model_dir(loaded, local, problems)
    if config is not None and len(problems) == before:
        model_type, template = _detect(loaded, local, config, catalog, model_type, template, problems)
    return str(local.resolve()), model_type, template, None


def _check_model_dir(loaded: LoadedRecipe, local: Path, problems: list[Problem]) -> dict | None:
    p, key = loaded.problem, ("model", "id")
    if not local.is_dir():
        guess = nearby_name(local)
        fix = (f"did you mean '{guess}'?" if guess else "check the path (it is relative to the recipe), "
               "or give a hub id such as Qwen/Qwen2.5-7B-Instruct")
        if loaded.path.resolve() == (paths.RECIPES_DIR / "tiny-identity.yaml").resolve():
            fix = "`swiftkit demo` builds the tiny model there and runs this recipe"
        problems.append(p(f"model directory not found: {local}", key, fix))
        return None
    config_path = local / "config.json"
    if not config_path.is_file():
        problems.append(p(f"{local} has no config.json: not a model directory", key,
                          "point model.id at the directory that holds config.json and the weights"))
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply to read" if isinstance(exc, RecursionError) else f"not valid JSON: {exc}"
        problems.append(p(f"{config_path} is {reason}", key, "restore config.json from the model's source"))
        return None
    if not isinstance(config, dict):
        problems.append(p(f"{config_path} is not a model config: a JSON {type(config).__name__}, not an object",
                          key, "restore config.json from the model's source"))
        return None
    wrong = config_problems(config)
    if wrong:
        problems.extend(p(f"{config_path}: {what}", key, "restore config.json from the model's source") for what in wrong)
        return None
    if not has_weights(local):
        problems.append(p(f"{local} has no weight files ({', '.join(WEIGHT_GLOBS)})", key,
                          "copy the weights from the model's source (an interrupted download leaves only the small "
                          "files), or point model.id at the directory that holds them"))
    if not any((local / f).is_file() for f in TOKENIZER_FILES):
        problems.append(p(f"{local} has no tokenizer ({', '.join(TOKENIZER_FILES)})", key,
                          "copy the tokenizer files from the model's source into the directory"))
    code = sorted(f.name for f in local.glob("*.py"))
    if code and not loaded.recipe.model.trust_remote_code:
        problems.append(p(f"{local} ships Python code ({', '.join(code[:4])}); ms-swift 4 loads local model dirs "
                          "with trust_remote_code=True, so this code would run", key,
                          "read the code, then set `model.trust_remote_code: true` if you trust it"))
    return config


def _detect(loaded, local: Path, config: dict, catalog: Catalog, model_type, template, problems):
    """Fill model_type/template where ms-swift would be ambiguous for a local dir (MS_SWIFT_4.md)."""
    p = loaded.problem
    named_like_hub = any(local.name.lower() == mid.split("/")[-1].lower()
                         for info in catalog.model_types.values() for mid in info["model_ids"])
    if named_like_hub and model_type is None and template is None:
        return None, None  # ms-swift detects dirs named like a hub id
    if model_type is None:
        archs = set(config.get("architectures") or [])
        candidates = sorted(mt for mt, info in catalog.model_types.items() if archs & set(info["architectures"]))
        if config.get("model_type") in candidates:
            model_type = config["model_type"]
        elif len(candidates) == 1:
            model_type = candidates[0]
        else:
            problems.append(p(f"cannot tell the ms-swift model_type of {local.name} "
                              f"(candidates: {', '.join(candidates) or 'none'})", ("model",),
                              "set model.model_type"))
            return None, template
    if template is None:
        options = catalog.model_types.get(model_type, {}).get("templates", [])
        if len(options) == 1:
            template = options[0]
        else:
            problems.append(p(f"the chat template of {local.name} is ambiguous for model_type {model_type}: "
                              f"{', '.join(options)}", ("model",),
                              "set model.template (a Qwen2.5 model uses qwen2_5)"))
    return model_type, template


# -- flags against the installed ms-swift ------------------------------------------------------

def planned_invocations(checked: Checked, *, checkpoint: Path | None = None,
                        swift: list[str] | None = None) -> dict[str, Invocation]:
    """The three commands a recipe leads to; checks parse them all (a placeholder checkpoint will do)."""
    plan, cat = checked.plan, checked.catalog
    ckpt = checkpoint or plan.output_dir / "vN-run" / "checkpoint-N"
    ref, v = model_ref(plan, ckpt), plan.recipe.verify
    return {
        "sft": render_sft(plan, cat, swift),
        "infer": render_infer(ref, cat, val_dataset=plan.data_dir / ds.IDENTITY_PROBES_FILE,
                              result_path=plan.output_dir / "probes.jsonl", max_new_tokens=v.max_new_tokens,
                              batch_size=v.batch_size, swift=swift),
        "export": render_export(ref, cat, output_dir=Path(f"{ckpt}-merged"), options=export_options(plan.recipe),
                                swift=swift),
    }


def check_flags(checked: Checked) -> list[Problem]:
    out: list[Problem] = []
    loaded, cat = checked.loaded, checked.catalog
    invocations = planned_invocations(checked)
    managed = _managed_dests(invocations["sft"], cat)
    for key in loaded.recipe.swift:
        name = key[2:] if key.startswith("--") else key
        dest = cat.options("sft").get(f"--{name}", {}).get("dest")
        if name in FORBIDDEN_FLAGS and not _loads_self_cognition(loaded):
            out.append(loaded.problem(f"--{name} is not allowed here", ("swift", key), FORBIDDEN_FLAGS[name],
                                      at_key=True))
        elif dest in managed:
            out.append(loaded.problem(f"--{name} is set by the recipe key {managed[dest]}", ("swift", key),
                                      f"set {managed[dest]} instead", at_key=True))
    for verb, inv in invocations.items():
        out += [_flag_like(inv, flag, value, loaded) for flag, value in inv.flag_like.items()]
        out += _check_argv(inv, verb, cat, loaded)
    return unique(out)


def _flag_like(inv: Invocation, flag: str, value: str, loaded: LoadedRecipe) -> Problem:
    # A lone value is rendered `--flag=-x`; in a list, ms-swift's parser would end the list at the value
    source = _list_item(loaded, inv.sources.get(flag, ()), value)
    return loaded.problem(f"{value!r} starts with '-': in the list of {flag}, ms-swift would read it as a flag",
                          source, "rename it so that it does not start with '-', or give it as the only value",
                          at_key=bool(source and source[0] == "swift"))


def _loads_self_cognition(loaded: LoadedRecipe) -> bool:
    """--model_name/--model_author fill the hub dataset swift/self-cognition, where the recipe keeps it (a subset
    or hub the identity dataset does not reproduce)."""
    return any(d.hub and SELF_COGNITION.match(d.hub) for d in loaded.recipe.datasets)


def _managed_dests(sft: Invocation, cat: Catalog) -> dict[str, str]:
    """ms-swift dest -> the recipe key that sets it, for the flags swiftkit renders itself."""
    from swiftkit.recipe.yamlfile import dotted

    opts = cat.options("sft")
    return {opts[f]["dest"]: dotted(src) for f, src in sft.sources.items()
            if src and src[0] != "swift" and f in opts}


def _list_item(loaded: LoadedRecipe, key: tuple, value: str) -> tuple:
    """The key of the list item `value` was rendered from (`datasets[1]`), else the list's key."""
    node = loaded.doc.data
    for part in key:
        node = node.get(part) if isinstance(node, dict) else None
    for i, item in enumerate(node if isinstance(node, list) else []):
        text = str((item.get("hub") or item.get("path")) if isinstance(item, dict) else item).split("#")[0]
        if text and value.startswith(text):
            return (*key, i)
    return key


def _check_argv(inv: Invocation, verb: str, cat: Catalog, loaded: LoadedRecipe) -> list[Problem]:
    options = cat.options(verb)
    out: list[Problem] = []
    argv = inv.argv[inv.argv.index(verb) + 1:]
    in_lists = set(inv.flag_like.values())  # reported by _flag_like: not flags of their own
    i = 0
    while i < len(argv):
        flag, joined, value = argv[i].partition("=")  # `--system=-x`: render.words
        j = i + 1
        while j < len(argv) and (not argv[j].startswith("--") or argv[j] in in_lists):
            j += 1
        values = [value] if joined else argv[i + 1:j]
        source = inv.sources.get(flag, ())
        where = dict(key=source, at_key=bool(source and source[0] == "swift"))
        spec = options.get(flag)
        if spec is None:
            out.append(_unknown_flag(flag, verb, cat, loaded, where))
        else:
            out += _check_values(flag, spec, values, verb, cat, loaded, where)
        i = j
    return out


def _unknown_flag(flag: str, verb: str, cat: Catalog, loaded: LoadedRecipe, where: dict) -> Problem:
    name = flag[2:]
    options = cat.options(verb)
    full = sorted(o for o in options if o.startswith(flag) and o != flag and "-" not in o[2:])
    msg = f"`swift {verb}` of ms-swift {cat.version} has no flag {flag}"
    if len(full) == 1:
        return loaded.problem(f"{flag} is an abbreviation: ms-swift would silently read it as {full[0]}",
                              where["key"], f"write the full name {full[0][2:]}", at_key=where["at_key"])
    if name in RENAMED:
        new, note = RENAMED[name]
        return loaded.problem(msg, where["key"], f"{note}; write {new}", at_key=where["at_key"])
    if name in REMOVED:
        return loaded.problem(msg, where["key"], f"remove it: {REMOVED[name]}", at_key=where["at_key"])
    if full:
        return loaded.problem(f"{flag} is an ambiguous abbreviation of {', '.join(full[:6])}", where["key"],
                              "write the full flag name", at_key=where["at_key"])
    return loaded.problem(msg, where["key"], choice_fix(name, cat.flag_names(verb), "a flag such as"),
                          at_key=where["at_key"])


def _check_values(flag, spec, values, verb, cat: Catalog, loaded, where) -> list[Problem]:
    p = lambda msg, fix=None: loaded.problem(msg, where["key"], fix)  # noqa: E731
    dest, kind = spec["dest"], spec["type"]
    if kind == "switch":
        return [p(f"{flag} takes no value", "write `true` to pass the switch")] if values else []
    if not values:
        return [p(f"{flag} needs a value")]
    if spec["nargs"] in (None, "?") and len(values) > 1:
        return [p(f"{flag} takes one value, got {len(values)}: {' '.join(values)}")]
    choices = spec["choices"] or {"tuner_type": cat.tuners, "lr_scheduler_type": cat.schedulers,
                                  "model_type": list(cat.model_types), "template": cat.templates}.get(dest)
    out = []
    for v in values:
        if choices and v not in [str(c) for c in choices]:
            out.append(p(f"{flag} {v}: not accepted by ms-swift {cat.version}", choice_fix(v, map(str, choices))))
        elif kind in ("int", "float") and not _is_number(v, kind):
            out.append(p(f"{flag} expects {'an integer' if kind == 'int' else 'a number'}, got {v!r}"))
        elif kind == "bool" and v.lower() not in ("true", "false", "1", "0", "yes", "no"):
            out.append(p(f"{flag} expects true or false, got {v!r}"))
    return out


def _is_number(text: str, kind: str) -> bool:
    try:
        int(text) if kind == "int" else float(text)
        return True
    except ValueError:
        return False
