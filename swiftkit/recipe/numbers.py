"""Numbers in a recipe: what YAML and pydantic would let through but no setting means.

pydantic's lax mode reads `true` as 1 for an integer and 1.0 for a float, and takes `.inf`, `.nan` and
`"1e400"` as floats; every one of them would reach ms-swift as a setting (`rank: true` trains at rank 1).
`plain_number` refuses them for any field whose type holds a number and not a boolean, so a field added
later is covered without being named here. Each field's own bound (`le=`) says what is sane for it;
`ABSURD` stops what a field forgot to bound.
"""
from __future__ import annotations

import math
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

ABSURD = 1e15  # beyond every count, size and rate a recipe sets
# Each field's own upper bound, far past any real run, refuses a typo'd magnitude (rank 1e30, epochs 1e12)
# at its key with the bound in the message.
MAX_RANK = 65536  # past the hidden size of every model: a LoRA rank above it is no longer low
MAX_BATCH = 2**20
MAX_STEPS = 10**9
MAX_TOKENS = 2**24
MAX_GB = 1e5
MAX_SECONDS = 10**8  # three years


def kinds(annotation: Any) -> set[str]:
    """What a field's type takes: 'number', 'bool', 'str' (a dict's values are not looked into: `swift:`
    passes any value through to ms-swift, which checks it)."""
    if annotation is bool:
        return {"bool"}
    if annotation in (int, float):
        return {"number"}
    if annotation is str:
        return {"str"}
    if get_origin(annotation) in (Literal, dict):
        return set()
    # a union, a list, Annotated[...]: what any of its types takes (Annotated's metadata takes nothing)
    return set().union(*(kinds(arg) for arg in get_args(annotation)))


def plain_number(value: Any, field: FieldInfo) -> Any:
    """`value` unchanged, or a PydanticCustomError when it is a boolean, not finite, or absurd (where the field
    sets no upper bound of its own) for a field that takes a number; a list is checked item by item."""
    taken = kinds(field.annotation)
    if "number" not in taken:
        return value
    bounded = any(getattr(m, "le", None) is not None or getattr(m, "lt", None) is not None for m in field.metadata)
    for item in value if isinstance(value, list) else [value]:
        _check(item, taken, bounded)
    return value


def _check(item: Any, taken: set[str], bounded: bool) -> None:
    if isinstance(item, bool):
        if "bool" not in taken:
            # `rank: true` would be read as rank 1: YAML's true is not a number a person means
            raise PydanticCustomError("number_bool", "expected a number, got {value} (a YAML boolean)",
                                      {"value": str(item).lower(), "fix": "write a number here, e.g. 8"})
        return
    number = _as_float(item, taken)
    if number is None:
        return
    if not math.isfinite(number):
        raise PydanticCustomError("number_not_finite", "expected a finite number, got {value}",
                                  {"value": _yaml(number), "fix": "write a plain number here"})
    if abs(number) > ABSURD and not bounded:
        raise PydanticCustomError("number_absurd", "{value} is far beyond any sane value here",
                                  {"value": f"{number:g}", "fix": "write the number you mean"})


def _as_float(item: Any, taken: set[str]) -> float | None:
    if isinstance(item, float):
        return item
    if isinstance(item, int):
        return float(min(abs(item), 10**300))  # past a float's range: absurd all the same
    if isinstance(item, str) and "str" not in taken:
        try:
            return float(item)  # pydantic would parse "nan", "inf", "1e400" for a float field
        except ValueError:
            return None  # not a number at all: pydantic's own type error says so
    return None


def _yaml(number: float) -> str:
    return ".nan" if math.isnan(number) else (".inf" if number > 0 else "-.inf")
