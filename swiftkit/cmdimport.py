"""Pure: a `swift sft ...` command line or shell script -> a recipe (dict) plus notes.

The inverse of `render.render_sft`. Input is what people paste from tutorials and their own
scripts: ms-swift 2.x/3.x/4.x flag spellings, env prefixes, `\\`-continuations, comments,
redirections, other commands around the one that trains. Nothing here reads files or imports
ms-swift: flags swiftkit has no recipe key for go to the `swift:` escape hatch verbatim, and
`swiftkit validate` checks them against the installed ms-swift.
"""
from __future__ import annotations

import math
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml
from pydantic import BaseModel

from .errors import UserError
from .recipe import Recipe, looks_like_hub_id
from .swift_flags import MODEL_TYPE_RENAMES, REMOVED, RENAMED

DEFAULT_SCHEMA = "./recipe.schema.json"

# ms-swift 4.6 defaults (swift/arguments, swift/trainers/arguments.py) that differ from the recipe
# schema's defaults; the importer writes them out so the recipe trains like the command did.
SWIFT_DEFAULT_EPOCHS = 3
SWIFT_DEFAULT_WARMUP_RATIO = 0.0
SWIFT_DEFAULT_LR = {"lora": 1e-4, "full": 1e-5}
SWIFT_BATCH_TARGET = 16  # gradient_accumulation_steps unset -> ceil(16 / micro / world)

ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
REDIRECT = re.compile(r"(?:\d*|&)(?:>>|>&|>|<&|<)")
SELF_COGNITION = re.compile(r"^(?:(?:swift|modelscope)/)?self-cognition(?::([\w-]+))?(?:#(\d+))?$")
PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
# Words before the program that do not change it: wrappers, and shell keywords that start a command
# (`if ...; then swift sft ...`).
WRAPPERS = {"nohup", "time", "exec", "command", "env", "then", "do", "else", "{", "!"}
LAUNCH_ENV = {"CUDA_VISIBLE_DEVICES", "NPROC_PER_NODE", "NNODES"}


@dataclass
class ImportResult:
    recipe: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class SftCommand:
    env: dict[str, str]  # assignments in effect for the command (prefix and earlier `export`s)
    args: list[str]  # the words after `sft`
    variables: dict[str, str] = field(default_factory=dict)  # every assignment, exported or not
    others: int = 0  # further `swift sft` commands in the script (ignored)


# -- shell text -> simple commands --------------------------------------------------------------

def split_commands(text: str) -> list[str]:
    """Shell text -> one string per simple command, quotes intact for shlex.

    Done by hand because shlex's comment handling is not the shell's: it would cut
    `org/name#500` at the '#'. Continuations, comments and redirections are removed;
    newlines, `;`, `|`, `&&`, `||` and `&` end a command."""
    text = text.replace("\r\n", "\n")
    commands, current, i = [], "", 0
    while i < len(text):
        c, word_start = text[i], not current or current[-1] in " \t"
        if c == "\\":
            current += "" if text[i + 1:i + 2] == "\n" else text[i:i + 2]
            i += 2
        elif c in "'\"":
            end = _quote_end(text, i)
            current += text[i:end].replace("\\\n", "") if c == '"' else text[i:end]
            i = end
        elif c == "#" and word_start:
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif word_start and REDIRECT.match(text, i):
            i = _skip_word(text, _skip_blanks(text, REDIRECT.match(text, i).end()))
        elif c in "\n;|&":
            commands.append(current)
            current, i = "", i + (2 if text[i:i + 2] in ("&&", "||") else 1)
        else:
            current += c
            i += 1
    commands.append(current)
    return [c.strip() for c in commands if c.strip()]


def _quote_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
        elif text[i] == quote:
            return i + 1
        else:
            i += 1
    line = text.count("\n", 0, start) + 1
    raise UserError.one(f"unterminated {quote} quote starting on line {line} of the command",
                        fix="close the quote (a value with spaces needs matching quotes)")


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _skip_word(text: str, i: int) -> int:
    while i < len(text) and text[i] not in " \t\n;|&":
        i = _quote_end(text, i) if text[i] in "'\"" else i + (2 if text[i] == "\\" else 1)
    return i


# -- finding the swift sft command ------------------------------------------------------------------

def find_sft_command(text: str) -> SftCommand:
    """The first `swift sft` of a script, with the environment it runs in."""
    variables: dict[str, str] = {}  # every assignment, for $VAR in flag values
    exported: dict[str, str] = {}  # what child processes (ms-swift) see
    found: list[str] = []
    sft: SftCommand | None = None
    for raw in split_commands(text):
        prefix, words = _leading_assignments(_split_words(raw), variables)
        if not words or words[0] == "export":
            _assign(prefix, words[1:], variables, exported)
            continue
        words = _strip_wrappers(words, prefix, variables)
        launch = _swift_verb(words)
        found.append(shlex.join(words[:3]) + (" ..." if len(words) > 3 else ""))
        if launch and launch[0] == "sft":
            if sft is None:
                sft = SftCommand({**exported, **prefix}, launch[1], variables={**variables, **prefix})
            else:
                sft.others += 1
    if sft is None:
        raise _no_sft(found)
    return sft


def _split_words(raw: str) -> list[str]:
    try:
        return shlex.split(raw)
    except ValueError as exc:
        raise UserError.one(f"cannot split the command into words: {exc}: {raw[:80]}",
                            fix="check its quotes") from None


def _leading_assignments(words: list[str], variables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """`A=1 B=$A cmd ...` -> ({A: 1, B: 1}, [cmd, ...]); values expanded from earlier assignments."""
    env: dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, value = ASSIGNMENT.match(words[0]).groups()
        env[name] = expand(value, {**variables, **env})
        words = words[1:]
    return env, words


def _assign(prefix: dict[str, str], export: list[str], variables: dict[str, str],
            exported: dict[str, str]) -> None:
    """`A=1` sets a shell variable; `export A=1` and `export A` also hand it to child processes."""
    variables.update(prefix)
    for word in export:
        name, eq, value = word.partition("=")
        if eq:
            variables[name] = expand(value, variables)
        if name in variables:
            exported[name] = variables[name]


def _strip_wrappers(words: list[str], env: dict[str, str], variables: dict[str, str]) -> list[str]:
    # `nohup swift sft ...`, `env A=1 swift sft ...`
    while words and words[0] in WRAPPERS:
        more, words = _leading_assignments(words[1:], variables)
        env.update(more)
    return words


def expand(value: str, variables: dict[str, str], unknown: set[str] | None = None) -> str:
    """`$NAME` and `${NAME}` set earlier in the script -> their values; others are kept as written."""
    def one(match: re.Match) -> str:
        var = match.group(1) or match.group(2)
        if var in variables:
            return variables[var]
        if unknown is not None:
            unknown.add(var)
        return match.group(0)

    return VARIABLE.sub(one, value)


def _swift_verb(words: list[str]) -> tuple[str, list[str]] | None:
    """(verb, its arguments) for `swift VERB`, `python -m swift.cli.main VERB`, `python -m swift.cli.VERB`
    and `python .../swift/cli/VERB.py` (what `swift` itself runs); None for any other command."""
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "swift":
        return (words[1], words[2:]) if len(words) > 1 else ("", [])
    if not PYTHON.match(program):
        return None
    rest = [w for w in words[1:] if w not in ("-u", "-B", "-O", "-OO")]
    if len(rest) >= 2 and rest[0] == "-m" and rest[1].startswith("swift.cli."):
        module = rest[1][len("swift.cli."):]
        return _main_or_verb(module, rest[2:])
    if rest and re.search(r"(^|/)swift/cli/\w+\.py$", rest[0]):
        return _main_or_verb(rest[0].rsplit("/", 1)[-1][:-3], rest[1:])
    return None


def _main_or_verb(module: str, rest: list[str]) -> tuple[str, list[str]]:
    if module == "main":
        return (rest[0], rest[1:]) if rest else ("", [])
    return module, rest


def _no_sft(found: list[str]) -> UserError:
    expected = ("expected a `swift sft ...` command (or `python -m swift.cli.main sft ...`), "
                "optionally after other lines of a script")
    if not found:
        return UserError.one(f"no command found in the input: {expected}",
                             fix="paste the training command, e.g. `swift sft --model Qwen/Qwen2.5-7B-Instruct ...`")
    shown = "; ".join(f"`{f}`" for f in found[:4]) + ("; ..." if len(found) > 4 else "")
    swift = next((f for f in found if f.startswith("swift ") or "swift.cli" in f), None)
    fix = ("swiftkit import reads the training command; a recipe renders infer and export itself"
           if swift else "paste the script or line that runs `swift sft`")
    return UserError.one(f"no `swift sft` command in the input (found {shown}): {expected}", fix=fix)


# -- words -> flags -------------------------------------------------------------------------------

Flags = dict[str, list[str]]


def parse_flags(args: list[str], notes: list[str]) -> Flags:
    """`--name v1 v2`, `--name=v`, `--dash-name` -> {name: [values]}; later repeats win, as in argparse."""
    flags: Flags = {}
    name: str | None = None
    for word in args:
        if word.startswith("--") and len(word) > 2:
            key, eq, value = word[2:].partition("=")
            name = key.replace("-", "_")
            if name in flags:
                notes.append(f"--{name} is given twice; the last one wins (as in ms-swift)")
            flags[name] = [value] if eq else []
        elif name is None:
            notes.append(f"dropped {word!r}: `swift sft` takes no positional arguments")
        else:
            flags[name].append(word)
    return flags


def expand_variables(flags: Flags, variables: dict[str, str], notes: list[str]) -> Flags:
    """Flag values with the script's variables filled in; unset ones are kept with a note."""
    unknown: set[str] = set()
    out = {name: [expand(v, variables, unknown) for v in values] for name, values in flags.items()}
    if unknown:
        notes.append(f"kept {', '.join('$' + v for v in sorted(unknown))} verbatim: not set in the script; "
                     "replace with the value")
    return out


def translate_renamed(flags: Flags, notes: list[str]) -> Flags:
    """Old spellings -> ms-swift 4 names (swift_flags.RENAMED); removed flags dropped (REMOVED)."""
    out: Flags = {}
    for name, values in flags.items():
        if name in REMOVED:
            notes.append(f"dropped --{name}: {REMOVED[name]}")
        elif name in RENAMED:
            new, why = RENAMED[name]
            notes.append(why)
            out[new] = values
        else:
            out[name] = values
    return out


# -- values ---------------------------------------------------------------------------------------

INT = re.compile(r"^[-+]?\d+$")
FLOAT = re.compile(r"^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$")


def scalar(text: str) -> str | int | float | bool:
    """A flag value as YAML should hold it: int/float/bool when clearly one, else the string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if INT.match(text):
        return int(text)
    if FLOAT.match(text):
        return float(text)
    return text


def _number(text: str) -> int | float | str:
    value = scalar(text)
    if isinstance(value, float) and value.is_integer() and "e" not in text.lower():
        return int(value)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def _integer(text: str) -> int | str:
    value = _number(text)
    return value if isinstance(value, int) else text


def _flag_value(values: list[str]) -> Any:
    """The escape-hatch form: no value -> true (a bare switch), one -> scalar, several -> list."""
    if not values:
        return True
    converted = [scalar(v) for v in values]
    return converted[0] if len(converted) == 1 else converted


def _bool(text: str) -> bool | str:
    value = scalar(text)
    return value if isinstance(value, bool) else text


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


# flag -> (section, key, converter of the single value)
Convert = Callable[[str], Any]
SIMPLE: dict[str, tuple[str, str, Convert]] = {
    "model": ("model", "id", str),
    "template": ("model", "template", str),
    "torch_dtype": ("model", "dtype", str),
    "tuner_type": ("lora", "tuner", str),
    "lora_rank": ("lora", "rank", _integer),
    "lora_alpha": ("lora", "alpha", _number),
    "lora_dropout": ("lora", "dropout", _number),
    "num_train_epochs": ("train", "epochs", _number),
    "max_steps": ("train", "max_steps", _integer),
    "learning_rate": ("train", "learning_rate", _number),
    "warmup_ratio": ("train", "warmup_ratio", _number),
    "lr_scheduler_type": ("train", "scheduler", str),
    "per_device_train_batch_size": ("train", "micro_batch_size", _integer),
    "gradient_accumulation_steps": ("train", "gradient_accumulation", _integer),
    "max_length": ("train", "max_length", _integer),
    "gradient_checkpointing": ("train", "gradient_checkpointing", _bool),
    "seed": ("train", "seed", _integer),
    "save_steps": ("train", "save_steps", _integer),
    "save_total_limit": ("train", "save_total_limit", _integer),
    "logging_steps": ("train", "logging_steps", _integer),
    "eval_steps": ("train", "eval_steps", _integer),
    "split_dataset_ratio": ("train", "eval_split", _number),
    "system": ("train", "system", str),
    "output_dir": ("output", "dir", str),
}
# Bool flags whose bare form means true (`--gradient_checkpointing`), and their `--no_*` switches.
BOOL_FLAGS = {"gradient_checkpointing"}
NEGATED = {"no_gradient_checkpointing": "gradient_checkpointing", "no_check_model": "check_model"}
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


# -- flags -> recipe ------------------------------------------------------------------------------

class _Builder:
    """Accumulates the recipe sections and the notes; one method per concern."""

    def __init__(self, flags: Flags, env: dict[str, str], notes: list[str]):
        self.flags, self.env, self.notes = flags, env, notes
        self.r: dict[str, dict[str, Any]] = {k: {} for k in ("model", "identity", "lora", "train", "gpu", "output")}
        self.datasets: list[str] = []
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
            self.set(section, key, convert(values[0]))
        self._tuner_and_modules()
        dtype = self.r["model"].get("dtype")
        if dtype in DTYPE_ALIASES:
            self.set("model", "dtype", DTYPE_ALIASES[dtype])

    def _tuner_and_modules(self) -> None:
        if "target_modules" in self.flags:
            self.set("lora", "target_modules", _one_or_list(self.flags.pop("target_modules")) or "all-linear")
        tuner = self.r["lora"].get("tuner")
        if tuner is not None and tuner not in ("lora", "full"):
            self.notes.append(f"tuner {tuner!r}: recipes train `lora` or `full`; validation will reject it")

    def _model_type(self) -> None:
        if "model_type" not in self.flags:
            return
        model_type = _one_or_list(self.flags.pop("model_type"))
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
        if nnodes and nnodes != "1":
            self.notes.append(f"NNODES={nnodes}: recipes describe one node; gpu.count is the GPUs of one node")
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
        identity_used = False
        for value in self.flags.pop("dataset", []):
            match = SELF_COGNITION.match(value)
            if match and (name or author):
                identity_used = True
                self.datasets.append("identity" + (f"#{match.group(2)}" if match.group(2) else ""))
                if match.group(1):
                    self.notes.append(f"subset :{match.group(1)} of {value} is not reproduced: swiftkit's identity "
                                      "data has no think prefix; add it to an identity template if needed")
            else:
                if match:
                    self.notes.append(f"{value} without --model_name/--model_author keeps its {{{{NAME}}}} and "
                                      "{{AUTHOR}} placeholders; use the `identity` dataset with an identity: section")
                self.datasets.append(value)
        if identity_used:
            self._identity(name, author)
        elif name or author:
            given = " and ".join(f for f, v in (("--model_name", name), ("--model_author", author)) if v)
            self.notes.append(f"dropped {given}: they only fill the hub dataset swift/self-cognition, "
                              "which this command does not use")
        if not self.datasets:
            self.notes.append("the command has no --dataset: add entries under datasets:")

    def _identity(self, name: list[str] | None, author: list[str] | None) -> None:
        for key, values in (("name", name), ("author", author)):
            if not values:
                self.notes.append(f"no --model_{key}: ms-swift would have left {{{{{key.upper()}}}}} in the data; "
                                  f"fill in identity.{key}")
                continue
            if len(values) > 2:
                self.notes.append(f"--model_{key} takes a zh and an en form; ignored {' '.join(values[2:])}")
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
            train["effective_batch_size"] = micro * accum * max(self.gpu_count, 1)

    def _eval(self) -> None:
        train = self.r["train"]
        steps = train.get("eval_steps")
        if steps is None or train.get("eval_split"):
            return
        train.pop("eval_steps")
        if "val_dataset" in self.flags:
            self.swift["eval_steps"] = steps
            self.notes.append("eval_steps went under swift: because the eval data comes from --val_dataset "
                              "(train.eval_steps is for train.eval_split)")
            return
        self.notes.append(f"dropped --eval_steps {steps}: without --split_dataset_ratio or --val_dataset there is "
                          "no eval set in ms-swift 4 (split_dataset_ratio defaults to 0; earlier ms-swift 3 "
                          "releases held out 0.01); to evaluate, set train.eval_split (e.g. 0.01) and "
                          f"train.eval_steps {steps}")

    def _defaults(self) -> None:
        """ms-swift defaults the schema would otherwise replace: written out, or noted where it cannot."""
        train, tuner = self.r["train"], self.r["lora"].get("tuner", "lora")
        if "learning_rate" not in train and tuner in SWIFT_DEFAULT_LR and SWIFT_DEFAULT_LR[tuner] != 1e-4:
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
            self.swift[name] = _flag_value(values)
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
        local = [d.partition("#")[0] for d in self.datasets
                 if d.partition("#")[0] != "identity" and not looks_like_hub_id(d.partition("#")[0])]
        model = self.r["model"].get("id")
        if isinstance(model, str) and not looks_like_hub_id(model):
            local.insert(0, model)
        if isinstance(self.r["output"].get("dir"), str):
            local.append(self.r["output"]["dir"])
        relative = [p for p in local if not p.startswith(("/", "~"))]
        if relative:
            self.notes.append(f"relative paths ({', '.join(relative)}) are read relative to the recipe file, not to "
                              "the directory the command ran in: save the recipe there, or adjust them")


def ordered(recipe: dict[str, Any]) -> dict[str, Any]:
    """Keys in the schema's order (Recipe and its section models), for a diff-friendly, familiar layout."""
    return _ordered(recipe, Recipe)


def _ordered(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        if key not in data:
            continue
        sub = _section_model(info.annotation)
        out[key] = _ordered(data[key], sub) if sub and isinstance(data[key], dict) else data[key]
    out.update({k: v for k, v in data.items() if k not in out})  # unknown keys last (validation names them)
    return out


def _section_model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


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
    # Variables the script itself uses (`$MODEL`) are not settings the run needs from the environment.
    used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(text)}
    env = {k: v for k, v in command.env.items() if k not in used or k in LAUNCH_ENV}
    recipe = _Builder(flags, env, notes).build()
    return ImportResult(recipe, notes)


def _unexported(command: SftCommand, notes: list[str]) -> None:
    for name in sorted(LAUNCH_ENV & (set(command.variables) - set(command.env))):
        notes.append(f"{name}={command.variables[name]} is set in the script but not exported: ms-swift does not "
                     "see it, and neither does the recipe")


class _Dumper(yaml.SafeDumper):
    # Lists indented under their key, as the bundled recipes write them.
    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: ARG002
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # a multi-line system prompt stays readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = all(isinstance(v, (int, float)) for v in value)  # visible_devices: [0, 1]
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def to_yaml(result: ImportResult, schema: str = DEFAULT_SCHEMA) -> str:
    """The recipe as a YAML document: the editor modeline, the notes as comments, then the keys."""
    head = [f"# yaml-language-server: $schema={schema}"]
    for note in result.notes:
        head += textwrap.wrap(note, 110, initial_indent="# note: ", subsequent_indent="#       ",
                              break_on_hyphens=False, break_long_words=False)
    body = yaml.dump(result.recipe, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=110)
    return "\n".join(head) + "\n" + body
