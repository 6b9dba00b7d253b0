"""`--set KEY=VALUE`: the key checked against the recipe's schema before anything is set.

A bad key is the command line's mistake, not the recipe file's: a problem here names the `--set` it came
from (`--set train..epochs=1: ...`), never a line of the recipe that the key only happened to land in.
"""
from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel

from swiftkit.errors import Problem, UserError
from swiftkit.recipe.schema_errors import _inner_model

EXAMPLE = "for example --set train.epochs=3"


def split_override(item: str, schema: type[BaseModel]) -> tuple[list[str], Any]:
    """('train.epochs=3', Recipe) -> (['train', 'epochs'], 3): the value read as YAML, the key checked."""
    import yaml

    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip():
        _refuse(item, "expected KEY=VALUE", EXAMPLE)
    if not all(p.strip() for p in parts):
        _refuse(item, f"an empty part in the key {key.strip()!r} (two dots, or a dot at an end)", EXAMPLE)
    _check_key(item, parts, schema)
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return parts, value


def _check_key(item: str, parts: list[str], schema: type[BaseModel]) -> None:
    """No key past a value or into a list; an unknown key is left to the schema check."""
    model: Any = schema
    for i, part in enumerate(parts):
        if "[" in part or part.isdigit():
            _refuse(item, f"{part!r}: --set cannot reach into a list", "set the whole list, e.g. "
                    "--set 'datasets=[data/a.jsonl, identity]', or edit the recipe")
        fields = model.model_fields
        if part not in fields:
            return  # an unknown key: the schema check names it (at the command line) with the others
        annotation = fields[part].annotation
        model = _inner_model(annotation)
        rest = parts[i + 1:]
        if not rest:
            return
        if model is None and _is_mapping(annotation):
            return  # `swift:` and `distributed.deepspeed`: keys ms-swift (or DeepSpeed) checks
        if _is_list(annotation):
            _refuse(item, f"{'.'.join(parts[:i + 1])} is a list: --set cannot reach into it",
                    f"set the whole list: --set '{'.'.join(parts[:i + 1])}=[...]', or edit the recipe")
        if model is None:
            _refuse(item, f"{'.'.join(parts[:i + 1])} is a value, not a section with keys",
                    f"write --set {'.'.join(parts[:i + 1])}=VALUE")


def _is_list(annotation: Any) -> bool:
    origin = get_origin(annotation)
    return origin is list or (origin is not dict and any(_is_list(a) for a in get_args(annotation)))


def _is_mapping(annotation: Any) -> bool:
    return get_origin(annotation) is dict or any(_is_mapping(a) for a in get_args(annotation))


def _refuse(item: str, message: str, fix: str) -> None:
    raise UserError([Problem(message, file=f"--set {item}", fix=fix)])
