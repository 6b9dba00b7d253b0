"""The base of every recipe section: unknown keys refused, numbers plain (recipe/numbers.py)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from swiftkit.recipe.numbers import plain_number


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)

    @field_validator("*", mode="before")
    @classmethod
    def _plain_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # every numeric field of every section: no boolean, .inf, .nan or absurd magnitude (recipe/numbers.py)
        return plain_number(value, cls.model_fields[info.field_name])
