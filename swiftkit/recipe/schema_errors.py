"""Turn pydantic's ValidationError into Problems a person can act on.

Each error gets the file, line:column of the offending value (or key, for unknown keys),
the dotted key path, and a fix: did-you-mean for unknown keys and enum values.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from swiftkit.errors import Problem, choice_fix, did_you_mean, unique
from swiftkit.recipe.yamlfile import YamlDoc, dotted

TYPE_WORDS = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "a whole number",
    "int_parsing_size": "an integer of a sane size",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false",
    "bool_type": "true or false", "string_type": "a string", "list_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
}


def _data_path(loc: tuple, data: Any) -> tuple:
    """Keep the parts of pydantic's loc that are real keys in the YAML (drop union tags etc.)."""
    out: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
    return tuple(out)


def _model_at(model: type[BaseModel], path: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the mapping at `path` (for listing valid keys)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        current = _inner_model(fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    origin = getattr(annotation, "__origin__", None)
    return _inner_model(origin) if origin not in (None, list, dict) and origin is not annotation else None


def _choices(expected: str) -> list[str]:
    """pydantic's "'a', 'b' or 'c'" (strings quoted) or "4 or 8" (numbers bare) as a list."""
    quoted = re.findall(r"'([^']*)'", expected)
    return quoted or [c for c in re.split(r", | or ", expected) if c]


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # as the recipe wrote it
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def _explain_one(err: dict, doc: YamlDoc, model: type[BaseModel]) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    path = _data_path(loc, doc.data)
    ctx = err.get("ctx") or {}
    value = err.get("input")
    fix = None
    at_key = False
    if kind == "extra_forbidden":
        key = loc[-1]
        path = _data_path(loc[:-1], doc.data) + (key,)
        owner = _model_at(model, path[:-1])
        valid = list(owner.model_fields) if owner else []
        guess = did_you_mean(str(key), valid)
        message = f"unknown key '{key}'"
        fix = f"did you mean '{guess}'?" if guess else (f"valid keys here: {', '.join(valid)}" if valid else None)
        at_key = True
    elif kind == "missing":
        message = f"required key '{loc[-1]}' is missing"
        path = _data_path(loc[:-1], doc.data)
        fix = f"add `{loc[-1]}:` under `{dotted(path) or 'the top level'}`"
    elif kind in ("literal_error", "enum"):
        choices = _choices(str(ctx.get("expected", "")))
        message = f"{_show(value)} is not one of: {', '.join(choices)}"
        fix = choice_fix(str(value), choices)
    elif kind in TYPE_WORDS:
        message = f"expected {TYPE_WORDS[kind]}, got {_show(value)}"
        fix = f"write {TYPE_WORDS[kind]} here"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        rule = err["msg"].lower().replace("input should be", "must be")
        message = f"{rule} (got {_show(value)})"
        fix = f"use a value that {rule.replace('must be', 'is')}"
    elif kind in ("too_short", "string_too_short"):
        message = "must not be empty"
        fix = "give at least one value"
    else:
        message = err["msg"][0].lower() + err["msg"][1:] if err["msg"] else kind
        fix = ctx.get("fix")
    line, col = doc.where(path, key=at_key)
    return Problem(message, file=doc.source(path), line=line, column=col, key=dotted(path) or None, fix=fix)


def explain(exc: ValidationError, doc: YamlDoc, model: type[BaseModel]) -> list[Problem]:
    problems = unique(_explain_one(err, doc, model) for err in exc.errors(include_url=False))
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
