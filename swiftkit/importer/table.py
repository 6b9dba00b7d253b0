"""Data for `swiftkit import`: which `swift sft` flag becomes which recipe key, and how values convert.

importer/command.py walks these tables; a flag found in none of them goes to the recipe's `swift:` section
verbatim, where `swiftkit validate` checks it against the installed ms-swift.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from swiftkit.recipe.models import SELF_COGNITION, looks_like_hub_id

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


def number(text: str) -> int | float | str:
    value = scalar(text)
    if isinstance(value, float) and value.is_integer() and "e" not in text.lower():
        return int(value)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def integer(text: str) -> int | str:
    value = number(text)
    return value if isinstance(value, int) else text


def boolean(text: str) -> bool | str:
    value = scalar(text)
    return value if isinstance(value, bool) else text


def flag_value(values: list[str]) -> Any:
    """The escape-hatch form: no value -> true (a bare switch), one -> scalar, several -> list."""
    if not values:
        return True
    converted = [scalar(v) for v in values]
    return converted[0] if len(converted) == 1 else converted


def one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


# flag -> (section, key, converter of the single value)
Convert = Callable[[str], Any]
SIMPLE: dict[str, tuple[str, str, Convert]] = {
    "model": ("model", "id", str),
    "template": ("model", "template", str),
    "torch_dtype": ("model", "dtype", str),
    "tuner_type": ("lora", "tuner", str),
    "lora_rank": ("lora", "rank", integer),
    "lora_alpha": ("lora", "alpha", number),
    "lora_dropout": ("lora", "dropout", number),
    "num_train_epochs": ("train", "epochs", number),
    "max_steps": ("train", "max_steps", integer),
    "learning_rate": ("train", "learning_rate", number),
    "warmup_ratio": ("train", "warmup_ratio", number),
    "lr_scheduler_type": ("train", "scheduler", str),
    "per_device_train_batch_size": ("train", "micro_batch_size", integer),
    "gradient_accumulation_steps": ("train", "gradient_accumulation", integer),
    "max_length": ("train", "max_length", integer),
    "gradient_checkpointing": ("train", "gradient_checkpointing", boolean),
    "seed": ("train", "seed", integer),
    "save_steps": ("train", "save_steps", integer),
    "save_total_limit": ("train", "save_total_limit", integer),
    "logging_steps": ("train", "logging_steps", integer),
    "eval_steps": ("train", "eval_steps", integer),
    "deepspeed": ("distributed", "deepspeed", str),
    "fsdp": ("distributed", "fsdp", str),
    "ddp_timeout": ("distributed", "timeout", integer),
    "ddp_find_unused_parameters": ("distributed", "find_unused_parameters", boolean),
    "ddp_backend": ("distributed", "backend", str),
    "split_dataset_ratio": ("train", "eval_split", number),
    "system": ("train", "system", str),
    "output_dir": ("output", "dir", str),
}
# Bool flags whose bare form means true (`--gradient_checkpointing`), and their `--no_*` switches.
BOOL_FLAGS = {"gradient_checkpointing"}
NEGATED = {"no_gradient_checkpointing": "gradient_checkpointing", "no_check_model": "check_model"}
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}

# Recipe keys whose value null means "leave it to ms-swift": a value the key cannot hold (save_total_limit -1,
# transformers' "keep every checkpoint") goes under swift: verbatim with the key set to null.
NULLABLE_PASSTHROUGH = {("train", "save_total_limit"), ("train", "save_steps"), ("train", "eval_steps")}

# Flags that give ms-swift an eval set; with none of them (and no split) eval_steps does nothing.
EVAL_SETS = ("val_dataset", "cached_val_dataset", "eval_dataset")
# Flags that give ms-swift training data besides --dataset.
OTHER_TRAIN_DATA = ("cached_dataset",)

# Hub dataset spellings ms-swift reads that the recipe's `org/name#N` shorthand does not:
# `HF::org/name`, `MS::org/name` (which hub), `org/name:subset` (a subset), `org/name#N` (a sample).
HUB_PREFIX = re.compile(r"^(HF|MS)::")
# Values that stand for something to fill in: `<your-dataset>`, `/path/to/model`, `xxx`.
PLACEHOLDER = re.compile(r"^<[^<>]+>$")


# -- dataset spellings ----------------------------------------------------------------------------

def why_not_identity(cognition: list[str], name: list[str] | None, author: list[str] | None) -> str | None:
    """Why swift/self-cognition stays the hub dataset rather than becoming `identity` (None: it can)."""
    if not cognition or not (name or author):
        return "no --model_name/--model_author"
    for value in cognition:
        match = SELF_COGNITION.match(value)
        if match.group(1):
            return f"swiftkit's identity data has no subset :{match.group(1)}"
        if HUB_PREFIX.match(value):
            return f"{value} names the hub to load it from"
    missing = [f"--model_{k}" for k, v in (("name", name), ("author", author)) if not v]
    if missing:
        return f"the command has no {missing[0]} (ms-swift leaves its placeholder in the data)"
    if len(name) > 2 or len(author) > 2:
        return "--model_name/--model_author have more than a zh and an en form"
    return None


def dataset_entry(value: str) -> str | dict[str, Any]:
    """The recipe's `org/name#N` shorthand, or the long form where the shorthand would read it as a file:
    `HF::org/name` and `MS::org/name` (which hub), `org/name:a/b` (several subsets)."""
    source, _, count = value.partition("#")
    bare = HUB_PREFIX.sub("", source)
    if looks_like_hub_id(source) or not looks_like_hub_id(bare.partition(":")[0]):
        return value
    if bare != source or ":" in bare:
        entry: dict[str, Any] = {"hub": source}
        if count:
            entry["samples"] = int(count) if count.isdigit() else count
        return entry
    return value
