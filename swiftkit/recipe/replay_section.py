"""A `replay:` dataset entry: the base model's own answers to general prompts, mixed into training so the
tuned model keeps what it already does (swiftkit/replay/ generates them; datasets/prompt_pool.py checks the
prompts)."""
from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from swiftkit.recipe.numbers import MAX_TOKENS
from swiftkit.recipe.strict import Strict

BUNDLED_POOL = "general"  # datasets/general_prompts.jsonl


class ReplaySpec(Strict):
    prompts: str = Field(BUNDLED_POOL, min_length=1, description="general: the bundled pool of 650 general "
                         "prompts (zh and en, 13 categories, disjoint from the retention probes); or a "
                         "JSONL/JSON/CSV/parquet file of prompts (a `query` column), relative to the recipe")
    n: int = Field(500, gt=0, le=10**6, description="Prompts to answer and train on (a seeded sample of the pool; "
                   "samples of the same seed are nested, so n 100 reuses the answers n 500 cached)")
    max_new_tokens: int = Field(512, gt=0, le=MAX_TOKENS, description="Longest answer; an answer cut off here is "
                                "dropped, not trained on")
    seed: int | None = Field(None, ge=0, lt=2**32, description="Which prompts are sampled; default train.seed")

    @model_validator(mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        # `replay: 300` is shorthand for {n: 300}; `replay: true` for the defaults
        if value is True or value is None:
            return {}
        if isinstance(value, int) and not isinstance(value, bool):
            return {"n": value}
        return value
