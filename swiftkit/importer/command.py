"""Pure: a `swift sft ...` command line or shell script -> a recipe (dict) plus notes.

The inverse of `render.render_sft`. Input is what people paste from tutorials and their own
scripts: ms-swift 2.x/3.x/4.x flag spellings, env prefixes, `\\`-continuations, comments,
redirections, other commands around the one that trains (importer/shell.py finds it). Which flag
becomes which recipe key is data (importer/table.py). Nothing here reads files or imports ms-swift:
flags swiftkit has no recipe key for go to the `swift:` escape hatch verbatim, and
`swiftkit validate` checks them against the installed ms-swift. What a recipe cannot express is
refused with the reason, never imported as a different run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from swiftkit.flags.catalog import MODEL_TYPE_RENAMES
from swiftkit.importer.recipe_yaml import ordered, section_model
from swiftkit.importer.shell import (Flags, SftCommand, VARIABLE, expand_variables, find_sft_command, parse_flags,
                                     refuse_unreadable, split_commands, translate_renamed)
from swiftkit.importer.table import (BOOL_FLAGS, DTYPE_ALIASES, EVAL_SETS, NEGATED, NULLABLE_PASSTHROUGH,
                                     OTHER_TRAIN_DATA, SIMPLE, dataset_entry, flag_value,
                                     one_or_list, scalar, why_not_identity)
from swiftkit.recipe.models import SELF_COGNITION, Recipe, looks_like_hub_id

__all__ = ["ImportResult", "SELF_COGNITION", "SftCommand", "find_sft_command", "import_command", "scalar",
           "split_commands"]

# ms-swift 4.6 defaults (swift/arguments, swift/trainers/arguments.py) that differ from the recipe
# schema's defaults; the importer writes them out so the recipe trains like the command did.
SWIFT_DEFAULT_EPOCHS = 3
SWIFT_DEFAULT_WARMUP_RATIO = 0.0
SWIFT_DEFAULT_LR = {"full": 1e-5}  # every other tuner: 1e-4, the recipe's default too
SWIFT_BATCH_TARGET = 16  # gradient_accumulation_steps unset -> ceil(16 / micro / world)
LAUNCH_ENV = {"CUDA_VISIBLE_DEVICES", "NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"}


@dataclass
class ImportResult:
    recipe: dict[str, Any]
    notes: list[str] = field(default_factory=list)


# -- flags -> recipe ------------------------------------------------------------------------------

class _Builder:
    """Accumulates the recipe sections and the notes; one method per concern."""

    def __init__(self, flags: Flags, env: dict[str, str], notes: list[str]):
        self.flags, self.env, self.notes = flags, env, notes
        self.r: dict[str, dict[str, Any]] = {k: {} for k in ("model", "identity", "lora", "train", "gpu", "distributed", "output")}
        self.datasets: list[str | dict[str, Any]] = []
        self.swift: dict[str, Any] = {}

    def set(self, section: str, key: str, value: Any) -> None:
        self.r[section][key] = value

    def build(self) -> dict[str, Any]:
        self._negations()
        self._simple()
        self._model_type()
        self._gpus()
        self._datasets()
        self._epochs()
        self._batch()
        self._eval()
        self._defaults()
        self._escape_hatch()
        return self._assemble()

    def _negations(self) -> None:
        for switch, target in NEGATED.items():
            if switch in self.flags:
                self.flags.pop(switch)
                self.flags[target] = ["false"]

    def _simple(self) -> None:
        for name, (section, key, convert) in SIMPLE.items():
            if name not in self.flags:
                continue
            values = self.flags.pop(name)
            if not values and name in BOOL_FLAGS:
                values = ["true"]
            if len(values) != 1:
                self.notes.append(f"--{name} needs one value, got {len(values)}: kept as written, fix it in "
                                  f"{section}.{key}")
                self.set(section, key, values)
                continue
            self._set_or_pass(name, section, key, convert(values[0]), values)
        self._tuner_and_modules()
        dtype = self.r["model"].get("dtype")
        if dtype in DTYPE_ALIASES:
            self.set("model", "dtype", DTYPE_ALIASES[dtype])

    def _set_or_pass(self, name: str, section: str, key: str, value: Any, values: list[str]) -> None:
        """A value the recipe key cannot hold, where null leaves the setting to ms-swift, goes under swift:."""
        if (section, key) in NULLABLE_PASSTHROUGH and not _fits(section, key, value):
            self.set(section, key, None)
            self.swift[name] = flag_value(values)
            self.notes.append(f"--{name} {' '.join(values)} is not a value {section}.{key} takes: kept under "
                              f"swift: as written, with {section}.{key}: null")
            return
        self.set(section, key, value)

    def _tuner_and_modules(self) -> None:
        if "target_modules" in self.flags:
            self.set("lora", "target_modules", one_or_list(self.flags.pop("target_modules")) or "all-linear")

    def _model_type(self) -> None:
        if "model_type" not in self.flags:
            return
        model_type = one_or_list(self.flags.pop("model_type"))
        if isinstance(model_type, str) and model_type in MODEL_TYPE_RENAMES:
            new_type, template = MODEL_TYPE_RENAMES[model_type]
            self.notes.append(f"model_type {model_type} (ms-swift 3) is model_type {new_type} with template "
                              f"{template} in ms-swift 4")
            self.r["model"].setdefault("template", template)
            model_type = new_type
        self.set("model", "model_type", model_type)

    # -- GPUs --
    def _gpus(self) -> None:
        devices = self.env.get("CUDA_VISIBLE_DEVICES")
        nproc = self.env.get("NPROC_PER_NODE")
        if self._use_cpu() or (devices is not None and devices.strip() in ("", "-1")):
            self.set("gpu", "count", 0)
            return
        listed = [d.strip() for d in devices.split(",") if d.strip()] if devices else []
        count = int(nproc) if nproc and nproc.isdigit() else (len(listed) or 1)
        self.set("gpu", "count", count)
        if listed:
            self._visible_devices(listed, count, nproc is not None)
        if nproc is None and len(listed) > 1:
            self.notes.append(f"CUDA_VISIBLE_DEVICES lists {len(listed)} GPUs without NPROC_PER_NODE: ms-swift ran one "
                              "process with the model split across them (device_map auto); the recipe trains "
                              f"data-parallel on {count} GPUs (NPROC_PER_NODE={count}) with the same per-GPU batch")
        self._other_env()

    def _use_cpu(self) -> bool:
        values = self.flags.get("use_cpu")
        if values is None or (values and [v.lower() for v in values] not in (["true"], ["1"])):
            return False
        self.flags.pop("use_cpu")
        self.notes.append("--use_cpu: a recipe trains on the CPU with gpu.count 0 (CUDA_VISIBLE_DEVICES='')")
        return True

    def _visible_devices(self, listed: list[str], count: int, from_nproc: bool) -> None:
        if not all(d.isdigit() for d in listed):
            self.notes.append(f"CUDA_VISIBLE_DEVICES={','.join(listed)} is not a list of indices: left out of "
                              "gpu.visible_devices; set it in the shell")
            return
        if from_nproc and len(listed) > count:
            self.notes.append(f"NPROC_PER_NODE={count} uses the first {count} of the {len(listed)} visible devices")
            listed = listed[:count]
        self.set("gpu", "visible_devices", [int(d) for d in listed])

    def _other_env(self) -> None:
        nnodes = self.env.get("NNODES")
        if nnodes and nnodes.isdigit() and int(nnodes) > 1:
            self.set("gpu", "nodes", int(nnodes))
            self.notes.append(f"NNODES={nnodes}: gpu.nodes {nnodes}; start `swiftkit run` on each node with its "
                              "--node-rank and --master-addr (NODE_RANK, MASTER_ADDR and MASTER_PORT are per node)")
        ignored = sorted(k for k in self.env if k not in LAUNCH_ENV and k.isupper())
        if ignored:
            shown = ", ".join(f"{k}={self.env[k]}" for k in ignored)
            self.notes.append(f"environment not carried into the recipe: {shown}; export it in the shell that "
                              "runs swiftkit if the run needs it")

    @property
    def gpu_count(self) -> int:
        return self.r["gpu"].get("count", 1)

    @property
    def world_size(self) -> int:
        """Processes ms-swift runs: NPROC_PER_NODE x NNODES, else one (several visible GPUs share one process)."""
        nproc, nnodes = self.env.get("NPROC_PER_NODE", ""), self.env.get("NNODES", "1")
        if self.gpu_count == 0 or not nproc.isdigit():
            return 1
        return int(nproc) * (int(nnodes) if nnodes.isdigit() else 1)

    # -- datasets and identity --
    def _datasets(self) -> None:
        name, author = self.flags.pop("model_name", None), self.flags.pop("model_author", None)
        values = self.flags.pop("dataset", [])
        cognition = [v for v in values if SELF_COGNITION.match(v)]
        why_hub = why_not_identity(cognition, name, author)
        for value in values:
            match = SELF_COGNITION.match(value)
            if match and not why_hub:
                self.datasets.append("identity" + (f"#{match.group(2)}" if match.group(2) else ""))
            else:
                self.datasets.append(dataset_entry(value))
        if cognition and not why_hub:
            self._identity(name, author)
        elif cognition and (name or author):
            for flag, given in (("model_name", name), ("model_author", author)):
                if given:
                    self.swift[flag] = flag_value(given)
            self.notes.append(f"kept {', '.join(cognition)} from the hub, filled by --model_name/--model_author "
                              f"under swift:, because {why_hub}")
        elif cognition:
            self.notes.append(f"{cognition[0]} without --model_name/--model_author keeps its {{{{NAME}}}} and "
                              "{{AUTHOR}} placeholders; use the `identity` dataset with an identity: section")
        elif name or author:
            given = " and ".join(f for f, v in (("--model_name", name), ("--model_author", author)) if v)
            self.notes.append(f"dropped {given}: they only fill the hub dataset swift/self-cognition, "
                              "which this command does not use")
        if not self.datasets and not any(f in self.flags for f in OTHER_TRAIN_DATA):
            self.notes.append("the command has no --dataset: add entries under datasets:")

    def _identity(self, name: list[str], author: list[str]) -> None:
        for key, values in (("name", name), ("author", author)):
            self.set("identity", key, {"zh": values[0], "en": values[1] if len(values) > 1 else values[0]})
        self.notes.append("swift/self-cognition became the `identity` dataset: --model_name/--model_author fill "
                          "{{NAME}}/{{AUTHOR}} only in that hub dataset and do nothing for local data, so swiftkit "
                          "renders its own self-cognition data from identity: (name and author in zh and en)")

    # -- schedule and batch --
    def _epochs(self) -> None:
        train = self.r["train"]
        if train.get("max_steps") is not None and isinstance(train["max_steps"], int) and train["max_steps"] <= 0:
            train.pop("max_steps")  # -1 is transformers' "unset"
        if "epochs" in train and "max_steps" in train:
            self.notes.append(f"dropped --num_train_epochs {train.pop('epochs')}: --max_steps overrides it in "
                              "ms-swift, and a recipe gives one of the two")
        elif "epochs" not in train and "max_steps" not in train:
            train["epochs"] = SWIFT_DEFAULT_EPOCHS
            self.notes.append(f"no --num_train_epochs or --max_steps: epochs {SWIFT_DEFAULT_EPOCHS} is ms-swift's "
                              "default, written out")

    def _batch(self) -> None:
        train = self.r["train"]
        micro = train.setdefault("micro_batch_size", 1)  # ms-swift's default per-device batch
        if not isinstance(micro, int) or micro <= 0:
            return  # left as written: validation points at it
        accum = train.get("gradient_accumulation")
        if accum is None:
            accum = max(1, math.ceil(SWIFT_BATCH_TARGET / micro / self.world_size))
            train["gradient_accumulation"] = accum
            self.notes.append(f"no --gradient_accumulation_steps: ms-swift's default ceil(16 / {micro} / "
                              f"{self.world_size} process(es)) = {accum}, written out")
        if isinstance(accum, int) and accum > 0:
            train["effective_batch_size"] = micro * accum * max(self.gpu_count, 1) * self.r["gpu"].get("nodes", 1)

    def _eval(self) -> None:
        train = self.r["train"]
        steps = train.get("eval_steps")
        if steps is None or train.get("eval_split"):
            return
        train.pop("eval_steps")
        given = [f"--{f}" for f in EVAL_SETS if f in self.flags]
        if given:
            self.swift["eval_steps"] = steps
            self.notes.append(f"eval_steps went under swift: because the eval data comes from {given[0]} "
                              "(train.eval_steps is for train.eval_split)")
            return
        self.notes.append(f"dropped --eval_steps {steps}: without --split_dataset_ratio or --val_dataset there is "
                          "no eval set in ms-swift 4 (split_dataset_ratio defaults to 0; earlier ms-swift 3 "
                          "releases held out 0.01); to evaluate, set train.eval_split (e.g. 0.01) and "
                          f"train.eval_steps {steps}")

    def _defaults(self) -> None:
        """ms-swift defaults the schema would otherwise replace: written out, or noted where it cannot."""
        train, tuner = self.r["train"], self.r["lora"].get("tuner", "lora")
        if "learning_rate" not in train and tuner in SWIFT_DEFAULT_LR:
            train["learning_rate"] = SWIFT_DEFAULT_LR[tuner]
            self.notes.append(f"no --learning_rate: ms-swift's default for {tuner} ({train['learning_rate']}), "
                              "written out")
        self._warmup()
        differ = []
        if "max_length" not in train:
            differ.append("train.max_length 2048 (ms-swift: the model's context length)")
        if "dtype" not in self.r["model"]:
            differ.append("model.dtype bfloat16 (ms-swift: the dtype in the model's config.json)")
        if "save_total_limit" not in train:
            differ.append("train.save_total_limit 2 (ms-swift: keeps every checkpoint)")
        if "dir" not in self.r["output"]:
            differ.append("output.dir output (ms-swift: output/<model name>)")
        if differ:
            self.notes.append("not in the command, so the recipe's defaults apply: " + "; ".join(differ))

    def _warmup(self) -> None:
        # ms-swift 4.6 refuses a non-zero warmup_ratio together with warmup_steps, and a recipe always
        # renders warmup_ratio (default 0.05): 0 keeps --warmup_steps meaningful.
        train, steps = self.r["train"], "warmup_steps" in self.flags
        if "warmup_ratio" in train:
            if steps and train["warmup_ratio"]:
                self.notes.append("--warmup_ratio and --warmup_steps together are refused by ms-swift 4: keep one")
            return
        train["warmup_ratio"] = SWIFT_DEFAULT_WARMUP_RATIO
        self.notes.append("no --warmup_ratio: 0 written out (" + ("--warmup_steps sets the warmup; ms-swift refuses "
                          "both" if steps else "ms-swift's default; the recipe default would be 0.05") + ")")

    # -- whatever is left --
    def _escape_hatch(self) -> None:
        self._managed_by_swiftkit()
        for name, values in self.flags.items():
            self.swift[name] = flag_value(values)
        if self.swift:
            self.notes.append(f"{len(self.swift)} flag(s) with no recipe key kept under swift: "
                              f"({', '.join(self.swift)}); `swiftkit validate` checks them against ms-swift")

    def _managed_by_swiftkit(self) -> None:
        model = self.r["model"].get("id")
        if "check_model" in self.flags and (not isinstance(model, str) or not looks_like_hub_id(model)):
            self.flags.pop("check_model")
            self.notes.append("dropped --check_model: swiftkit passes --check_model false itself for a local model")
        if "dataloader_num_workers" in self.flags and self.gpu_count == 0:
            self.flags.pop("dataloader_num_workers")
            self.notes.append("dropped --dataloader_num_workers: on the CPU swiftkit passes 0 itself")
        elif (workers := " ".join(map(str, self.flags.get("dataloader_num_workers") or ["0"]))) != "0":
            self.notes.append(f"kept --dataloader_num_workers {workers} (swift:): "
                              "swiftkit passes 0 where it is not set, because ms-swift encodes the rows before "
                              "training and on a CUDA host each worker costs about 5 s at exit; delete it to "
                              "take that")

    def _assemble(self) -> dict[str, Any]:
        recipe: dict[str, Any] = {"description": self._description()}
        recipe.update({k: v for k, v in self.r.items() if v})
        recipe["datasets"] = self.datasets
        if self.swift:
            recipe["swift"] = self.swift
        if not self.r["model"].get("id"):
            self.notes.append("the command has no --model: fill in model.id")
        self._relative_paths()
        return ordered(recipe)

    def _description(self) -> str:
        model = self.r["model"].get("id")
        return f"imported from a swift sft command ({model})" if isinstance(model, str) else \
            "imported from a swift sft command"

    def _relative_paths(self) -> None:
        sources = [d.partition("#")[0] for d in self.datasets if isinstance(d, str)]  # the long form is a hub id
        local = [s for s in sources if s != "identity" and not looks_like_hub_id(s)]
        model = self.r["model"].get("id")
        if isinstance(model, str) and not looks_like_hub_id(model):
            local.insert(0, model)
        if isinstance(self.r["output"].get("dir"), str):
            local.append(self.r["output"]["dir"])
        relative = [p for p in local if not p.startswith(("/", "~"))]
        if relative:
            self.notes.append(f"relative paths ({', '.join(relative)}) are read relative to the recipe file, not to "
                              "the directory the command ran in: save the recipe there, or adjust them")


def _fits(section: str, key: str, value: Any) -> bool:
    model = section_model(Recipe.model_fields[section].annotation)
    try:
        model.__pydantic_validator__.validate_assignment(model.model_construct(), key, value)
    except ValidationError:
        return False
    return True


# -- entry points ---------------------------------------------------------------------------------

def import_command(text: str) -> ImportResult:
    """A `swift sft` command line or a shell script holding one -> a recipe and what changed on the way."""
    command = find_sft_command(text)
    notes: list[str] = []
    if command.others:
        notes.append(f"the script runs `swift sft` {command.others + 1} times; imported the first")
    _unexported(command, notes)
    flags = parse_flags(command.args, notes)
    flags = expand_variables(flags, command.variables, notes)
    flags = translate_renamed(flags, notes)
    refuse_unreadable(flags)
    # Variables the script itself uses (`$MODEL`) are not settings the run needs from the environment.
    used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(text)}
    env = {k: v for k, v in command.env.items() if k not in used or k in LAUNCH_ENV}
    recipe = _Builder(flags, env, notes).build()
    return ImportResult(recipe, notes)


def _unexported(command: SftCommand, notes: list[str]) -> None:
    for name in sorted(LAUNCH_ENV & (set(command.variables) - set(command.env))):
        notes.append(f"{name}={command.variables[name]} is set in the script but not exported: ms-swift does not "
                     "see it, and neither does the recipe")
