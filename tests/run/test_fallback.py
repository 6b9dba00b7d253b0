"""The OOM ladder as data: every step keeps the effective batch and says what it changed."""
from __future__ import annotations

import pytest

from swiftkit.recipe.models import OnOom, Recipe
from swiftkit.render import resolve_batch
from swiftkit.run.fallback import Facts, STEPS, next_recipe


def recipe(**kw) -> Recipe:
    base = {"model": {"id": "Qwen/Qwen2.5-7B-Instruct"}, "datasets": ["a/b"],
            "train": {"epochs": 1, "effective_batch_size": 16, "micro_batch_size": 16,
                      "gradient_checkpointing": False, "max_length": 2048}, "gpu": {"count": 1}}
    for key, value in kw.items():
        base.setdefault(key, {}).update(value)
    return Recipe.model_validate(base)


def effective(r: Recipe) -> int:
    micro, accum = resolve_batch(r)
    return micro * accum * max(r.gpu.count, 1)


def test_every_default_step_is_a_known_function():
    assert set(OnOom().steps) == set(STEPS)


def test_default_ladder_walks_in_order_and_keeps_the_effective_batch():
    r, tried, seen = recipe(), [], []
    facts = Facts(bitsandbytes=True, rows_over=lambda n: 3 if n < 2048 else 0, total_rows=100)
    while (change := next_recipe(r, tried, facts)) is not None:
        tried.append(change.index)
        seen.append(change.step)
        r = change.recipe
        assert effective(r) == 16, change.what
    assert seen == ["halve_micro_batch", "gradient_checkpointing", "shorten_max_length", "qlora", "lower_rank"]
    assert resolve_batch(r) == (8, 2) and r.train.gradient_checkpointing
    assert r.train.max_length == 1024 and r.lora.quant_bits == 4 and (r.lora.rank, r.lora.alpha) == (4, 16)


def test_what_each_step_says():
    facts = Facts(bitsandbytes=False, rows_over=lambda n: 7, total_rows=1074)
    first = next_recipe(recipe(), [], facts)
    assert first.what.startswith("micro-batch 16 x accumulation 1 -> 8 x 2 (same effective batch")
    length = next_recipe(recipe(), [0, 1], facts)
    assert length.what.startswith("max_length 2048 -> 1024: 7 of 1074 training rows are longer")


def test_inapplicable_steps_are_skipped():
    r = recipe(train={"micro_batch_size": 1, "gradient_checkpointing": True})
    change = next_recipe(r, [], Facts(bitsandbytes=False))
    assert change.step == "shorten_max_length"  # micro 1, checkpointing on: nothing to do there
    cpu = recipe(gpu={"count": 0}, train={"micro_batch_size": 1, "gradient_checkpointing": True,
                                          "max_length": 256})
    assert next_recipe(cpu, [], Facts(bitsandbytes=True)).step == "lower_rank"  # no QLoRA on CPU


def test_odd_micro_batch_keeps_effective_batch():
    r = recipe(train={"effective_batch_size": 12, "micro_batch_size": 3})
    change = next_recipe(r, [], Facts())
    assert resolve_batch(change.recipe) == (1, 12)


@pytest.mark.parametrize("retries,expected", [(0, None), (1, "halve_micro_batch")])
def test_max_retries(retries, expected):
    change = next_recipe(recipe(on_oom={"max_retries": retries}), [], Facts())
    assert (change.step if change else None) == expected


def test_custom_order_from_the_recipe():
    r = recipe(on_oom={"steps": ["gradient_checkpointing", "halve_micro_batch", "halve_micro_batch"]})
    tried, steps = [], []
    while (c := next_recipe(r, tried, Facts())) is not None:
        tried.append(c.index)
        steps.append(c.step)
        r = c.recipe
    assert steps == ["gradient_checkpointing", "halve_micro_batch", "halve_micro_batch"]
    assert resolve_batch(r) == (4, 4)
