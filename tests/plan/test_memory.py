"""The memory plan's arithmetic against every GPU run measured for it (bench/results/gpu-memory: an H200,
ms-swift 4.6.0), the choices `auto` makes, and the data tables it reads (model shapes, cards)."""
from __future__ import annotations

import sys
from dataclasses import replace

import pytest
from conftest import ROOT

from swiftkit.plan import memory as memplan
from swiftkit.plan.cards import find_card
from swiftkit.plan.known_models import known_config
from swiftkit.plan.memory import Setup, Shape, choose, plan_memory

sys.path.insert(0, str(ROOT / "bench"))
from memory_table import runs  # noqa: E402  (the bench's own reading of the results)

RUNS = runs()
SEVEN_B = Shape.from_config(known_config("Qwen/Qwen2.5-7B-Instruct"))


# The one model the plan is known to miss by more than 10 %: SmolLM2-135M (576 wide, 49k vocabulary), under by
# 19 % at rows of 119 tokens and over by 13 % at 211. What it misses there is not found yet (README, "Will it fit?").
# And 7B at micro-batch 16 x 62 tokens with checkpointing off under a 23 GiB cap: planned 23.61 GiB, peaked
# 19.49 (+21 %), where the same rows with liger kernels (no logits kept whole) are within 3.2 %.
KNOWN_MISSES = {"real-real-smollm2-gpu-lr1e-3-ep10", "real-real-smollm2-gpu-lr1e-3-ep10-r16",
                "real-real-smollm2-gpu-lr1e-3-ep15-mix300", "capped-7b-nockpt"}


def test_every_run_is_recorded():
    assert len(RUNS) == 64
    assert {r["split"] for r in RUNS} == {"fit", "test", "varied", "preset", "auto", "long", "real", "capped"}
    assert len([r for r in RUNS if r["split"] == "long"]) == 19 and len([r for r in RUNS if r["split"] == "real"]) == 9


@pytest.mark.parametrize("run", [r for r in RUNS if r["split"] != "fit" and (r["expandable_segments"]
                                                                             or not r.get("shortest"))
                                 and "no-expandable" not in r["name"] and r["name"] not in KNOWN_MISSES],
                         ids=lambda r: r["name"])
def test_the_plan_is_within_ten_percent_of_runs_it_was_not_fitted_on(run):
    assert abs(run["error"]) <= 0.10, f"planned {run['planned_gib']} GiB, measured {run['measured_gib']} GiB"


def test_the_fitted_runs_are_within_five_percent():
    fitted = [r for r in RUNS if r["split"] == "fit"]
    assert len(fitted) == 10
    assert max(abs(r["error"]) for r in fitted) <= 0.05


def test_without_expandable_segments_rows_of_many_lengths_fragment_the_allocator():
    """Why swiftkit sets PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True: the same runs reserved more
    without it (2.0x with rows of 135-1635 tokens; 1.14x for the 24 GB preset's identity rows)."""
    by_name = {r["name"]: r for r in RUNS}
    pairs = [("7b-mb8-r16-gc-100to1600", "7b-mb8-r16-gc-100to1600-exp"),
             ("preset24-7b-no-expandable", "preset24-7b")]
    ratios = [by_name[a]["measured_gib"] / by_name[b]["measured_gib"] for a, b in pairs]
    assert ratios[0] > 1.9 and ratios[1] > 1.1


def test_the_parts_add_up_and_grow_with_what_drives_them():
    setup = Setup(micro_batch=8, tokens=512)
    plan = plan_memory(SEVEN_B, setup)
    assert plan.peak_gib == pytest.approx(sum(plan.breakdown.values()), abs=0.02)
    assert plan.breakdown["weights"] == pytest.approx(7.62e9 * 2 / 2**30, rel=0.01)
    more_tokens = plan_memory(SEVEN_B, replace(setup, micro_batch=16))
    assert more_tokens.breakdown["logits_and_loss"] == pytest.approx(2 * plan.breakdown["logits_and_loss"], rel=1e-3)
    no_gc = plan_memory(SEVEN_B, replace(setup, gradient_checkpointing=False))
    assert no_gc.breakdown["activations"] > 5 * plan.breakdown["activations"]
    rank64 = plan_memory(SEVEN_B, replace(setup, rank=64))
    assert rank64.breakdown["trainable_state"] == pytest.approx(8 * plan.breakdown["trainable_state"], rel=1e-3)
    assert plan_memory(SEVEN_B, replace(setup, quant_bits=4)).breakdown["weights"] < plan.breakdown["weights"] / 2.5


def test_qwen25_sizes_have_their_parameter_counts():
    expected = {"0.5B": 0.49, "1.5B": 1.54, "3B": 3.09, "7B": 7.62, "14B": 14.77, "32B": 32.76, "72B": 72.71}
    for size, billions in expected.items():
        shape = Shape.from_config(known_config(f"Qwen/Qwen2.5-{size}-Instruct"))
        assert shape.params() / 1e9 == pytest.approx(billions, rel=0.01), size
    assert known_config("Qwen/Qwen2.5-7B") == known_config("qwen/Qwen2.5-7B-Instruct")
    assert known_config("meta-llama/Llama-3-8B") is None


def test_auto_takes_the_largest_micro_batch_that_fits_and_keeps_the_batch_exact():
    setup = Setup(micro_batch=16, tokens=1035, rank=16)
    chosen, why = choose(SEVEN_B, setup, 16, 23.0, micro_batch_auto=True, checkpointing_auto=True)
    assert 16 % chosen.micro_batch == 0 and chosen.gradient_checkpointing
    assert plan_memory(SEVEN_B, chosen).peak_gib * (1 + memplan.AUTO_MARGIN) <= 23.0
    bigger = [d for d in (16, 8, 4, 2, 1) if d > chosen.micro_batch]
    assert all(plan_memory(SEVEN_B, replace(chosen, micro_batch=d)).peak_gib * 1.08 > 23.0 for d in bigger)
    assert f"micro-batch {chosen.micro_batch}" in why and "largest divisor of 16" in why


def test_auto_turns_checkpointing_off_where_it_fits_without():
    chosen, why = choose(SEVEN_B, Setup(micro_batch=16, tokens=62), 16, 79.0, micro_batch_auto=True,
                         checkpointing_auto=True)
    assert (chosen.micro_batch, chosen.gradient_checkpointing) == (16, False)
    assert "gradient checkpointing off: it fits without" in why


def test_auto_says_when_nothing_fits():
    chosen, why = choose(SEVEN_B, Setup(micro_batch=16, tokens=62), 16, 11.0, micro_batch_auto=True,
                         checkpointing_auto=True)
    assert (chosen.micro_batch, chosen.gradient_checkpointing) == (1, True)
    assert why.startswith("nothing fits 11.0 GiB")


@pytest.mark.parametrize("name, card", [("NVIDIA GeForce RTX 4090", "RTX 4090"), ("4090D", "RTX 4090D"),
                                        ("NVIDIA A100-SXM4-80GB", "A100 80GB"), ("NVIDIA H100 80GB HBM3", "H100"),
                                        ("a10", "A10"), ("Tesla T4", "T4")])
def test_cards_are_found_by_the_names_people_and_drivers_use(name, card):
    assert find_card(name)[0] == card


def test_an_unknown_card_is_not_guessed():
    assert find_card("Radeon RX 7900") is None and find_card("A100") is None
