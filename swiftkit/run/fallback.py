"""Pure: the OOM fallback ladder as data. (Recipe, what was tried) -> the next Recipe, or None.

Each step keeps the effective batch and says what it changed and why. The order and the
limits come from the recipe's `on_oom:`; a step that cannot apply (micro-batch already 1,
checkpointing already on, bitsandbytes missing) is skipped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from swiftkit.recipe.models import Recipe
from swiftkit.render import resolve_batch


@dataclass(frozen=True)
class Facts:
    """What the ladder may need to know about the world, gathered by the caller."""

    bitsandbytes: bool = False
    rows_over: Callable[[int], int | None] = field(default=lambda _n: None)  # rows longer than N tokens
    total_rows: int | None = None


@dataclass(frozen=True)
class Change:
    index: int  # position in on_oom.steps
    step: str
    what: str  # one line for the user and the run record
    recipe: Recipe


def _update(recipe: Recipe, section: str, **values) -> Recipe:
    part = getattr(recipe, section).model_copy(update=values)
    return recipe.model_copy(update={section: part})


def halve_micro_batch(recipe: Recipe, facts: Facts) -> tuple[Recipe, str] | None:
    batch = resolve_batch(recipe)
    if isinstance(batch, str) or batch[0] <= 1:
        return None
    micro, accum = batch
    smaller = max(d for d in range(1, micro // 2 + 1) if micro % d == 0)
    new_accum = accum * (micro // smaller)
    new = _update(recipe, "train", micro_batch_size=smaller, gradient_accumulation=new_accum)
    return new, (f"micro-batch {micro} x accumulation {accum} -> {smaller} x {new_accum} "
                 "(same effective batch, less activation memory per step)")


def gradient_checkpointing(recipe: Recipe, facts: Facts) -> tuple[Recipe, str] | None:
    if recipe.train.gradient_checkpointing:
        return None
    return (_update(recipe, "train", gradient_checkpointing=True),
            "gradient checkpointing on (recomputes activations: much less memory, ~20-30 % slower steps)")


def shorten_max_length(recipe: Recipe, facts: Facts) -> tuple[Recipe, str] | None:
    ladder, current = recipe.on_oom, recipe.train.max_length
    new = max(ladder.min_max_length, int(current * ladder.max_length_factor))
    if new >= current:
        return None
    dropped = facts.rows_over(new)
    if dropped is None:
        impact = "rows longer than that are dropped by ms-swift (count unknown: no local tokenizer or hub data)"
    else:
        total = f" of {facts.total_rows}" if facts.total_rows else ""
        impact = f"{dropped}{total} training rows are longer and will be dropped by ms-swift"
    return _update(recipe, "train", max_length=new), f"max_length {current} -> {new}: {impact}"


def qlora(recipe: Recipe, facts: Facts) -> tuple[Recipe, str] | None:
    if recipe.lora.tuner != "lora" or recipe.lora.quant_bits or recipe.gpu.count == 0 or not facts.bitsandbytes:
        return None
    return (_update(recipe, "lora", quant_bits=4),
            "4-bit QLoRA: base weights loaded in 4 bits with bitsandbytes (about a quarter of bf16 weight memory)")


def lower_rank(recipe: Recipe, facts: Facts) -> tuple[Recipe, str] | None:
    lora = recipe.lora
    new = max(recipe.on_oom.min_rank, lora.rank // 2)
    if lora.tuner != "lora" or new >= lora.rank:
        return None
    alpha = lora.alpha * new / lora.rank  # keep alpha/rank, the scale of the update
    return (_update(recipe, "lora", rank=new, alpha=alpha),
            f"LoRA rank {lora.rank} -> {new} (alpha {lora.alpha:g} -> {alpha:g}, same scale)")


STEPS: dict[str, Callable[[Recipe, Facts], tuple[Recipe, str] | None]] = {
    "halve_micro_batch": halve_micro_batch,
    "gradient_checkpointing": gradient_checkpointing,
    "shorten_max_length": shorten_max_length,
    "qlora": qlora,
    "lower_rank": lower_rank,
}


def next_recipe(recipe: Recipe, tried: list[int], facts: Facts) -> Change | None:
    """The first step after those already tried that changes something, or None when exhausted."""
    if len(tried) >= recipe.on_oom.max_retries:
        return None
    start = (max(tried) + 1) if tried else 0
    for index in range(start, len(recipe.on_oom.steps)):
        step = recipe.on_oom.steps[index]
        applied = STEPS[step](recipe, facts)
        if applied is not None:
            new, what = applied
            return Change(index, step, what, new)
    return None
