"""The memory plan's arithmetic against every GPU run measured for it (bench/results/gpu-memory: an H200,
ms-swift 4.6.0), the choices `auto` makes, and the data tables it reads (model shapes, cards)."""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT

from swiftkit.plan import memory as memplan
from swiftkit.plan.cards import find_card
from swiftkit.plan.known_models import known_config
from swiftkit.plan.memory import Setup, Shape, choose, plan_memory

sys.path.insert(0, str(ROOT / "bench"))
from memory_table import peak_attempt, runs, setup_of, shape_of  # noqa: E402  (the bench's own reading of the results)

RUNS = runs()
SEVEN_B = Shape.from_config(known_config("Qwen/Qwen2.5-7B-Instruct"))


# Runs whose reserved peak the plan misses by more than 10 %, each for a reason measured beside it (tested below):
# - CACHE: SmolLM2-135M's identity rows (42-119 tokens) leave the caching allocator holding 0.8 GiB it no longer
#   uses on a card with room (reserved 3.78, allocated 3.00, planned 3.19); under a cap at the plan the run trains;
# - SAMPLED: an entry's #300 of a 568-row file, planned on the file's longest row (211); ms-swift drew rows of at most 158;
# - BOUND: replay rows, planned as prompt + max_new_tokens (answers cut off there are dropped: the real ones are shorter).
CACHE = {"real-real-smollm2-gpu-lr1e-3-ep10", "real-real-smollm2-gpu-lr1e-3-ep10-r16", "g5-smol-real-identity",
         "g6-smol-identity", "g6-smol-identity-sysdef", "g7-smol-identity", "g7-smol-identity-cap3.1"}
SAMPLED = {"real-real-smollm2-gpu-lr1e-3-ep15-mix300", "g6-smol-mix300"}
BOUND = {"real-replay-qwen-gpu-lr2e-4-ep10-replay100", "real-replay-qwen-gpu-lr2e-4-ep10-replay500"}
BY_NAME = {r["name"]: r for r in RUNS}
ALLOCATED = {Path(a["output_dir"]).name: a for a in map(json.loads, (ROOT / "bench" / "results" / "gpu-memory" /
                                                                      "allocated-7.jsonl").read_text().splitlines())}


def test_every_run_is_recorded():
    assert len(RUNS) == 93
    assert {r["split"] for r in RUNS} == {"fit", "test", "varied", "preset", "auto", "long", "real", "capped", "small",
                                          "diag", "capped-small"}
    assert len([r for r in RUNS if r["split"] == "long"]) == 19 and len([r for r in RUNS if r["split"] == "real"]) == 9


@pytest.mark.parametrize("run", [r for r in RUNS if r["split"] != "fit" and (r["expandable_segments"]
                                                                             or not r.get("shortest"))
                                 and "no-expandable" not in r["name"] and r["name"] not in CACHE | SAMPLED | BOUND],
                         ids=lambda r: r["name"])
def test_the_plan_is_within_ten_percent_of_runs_it_was_not_fitted_on(run):
    assert abs(run["error"]) <= 0.10, f"planned {run['planned_gib']} GiB, measured {run['measured_gib']} GiB"


def test_the_fitted_runs_are_within_five_percent():
    fitted = [r for r in RUNS if r["split"] == "fit"]
    assert len(fitted) == 16
    assert max(abs(r["error"]) for r in fitted) <= 0.05


def test_rows_of_many_lengths_leave_cache_that_a_card_at_the_plan_takes_back():
    """SmolLM2's identity rows: reserved 19 % over what the tensors need on a card with room; the allocated peak is
    within 7 % of the plan, and under a cap 3 % over the plan the same job trains at the same micro-batch."""
    assert all(BY_NAME[n]["dataset_token_length"].startswith(("68.", "62.")) for n in CACHE if n.startswith("g"))
    for name in ("g7-smol-identity", "g7-smol-identity-cap3.1", "g7-0.5b-identity"):
        run, used = BY_NAME[name], ALLOCATED[name]
        assert abs(run["planned_gib"] - used["max_allocated_gib"]) / used["max_allocated_gib"] <= 0.08, name
    assert BY_NAME["g7-smol-identity"]["measured_gib"] - ALLOCATED["g7-smol-identity"]["max_allocated_gib"] > 0.7
    for name, uncapped in (("g7-smol-identity-cap3.3", "g7-smol-identity"), ("g7-0.5b-identity-cap4.2",
                                                                              "g7-0.5b-identity")):
        capped = BY_NAME[name]
        assert capped["exit"] == 0 and not capped["oom"] and capped["memory_plan"]["micro_batch_size"] == 16
        assert capped["cap_gib"] <= 1.04 * BY_NAME[uncapped]["planned_gib"] < BY_NAME[uncapped]["measured_gib"]


def test_a_sampled_entry_is_planned_on_the_longest_row_it_may_draw():
    run = BY_NAME["g6-smol-mix300"]
    assert run["memory_plan"]["longest_row_tokens"] == 211 and "max=158.000000" in run["dataset_token_length"]
    setup = setup_of(run)
    drawn = replace(setup, tokens=158, logit_tokens=setup.logit_tokens - (211 - 158))
    # on the rows drawn, under by 9.5 %: the cache rows of many lengths leave (above)
    assert abs(plan_memory(shape_of(run), drawn).peak_gib - run["measured_gib"]) / run["measured_gib"] <= 0.10
    assert run["error"] > 0.10  # on the longest row of the file: over, the safe side


def test_replay_rows_are_planned_on_their_answers_bound():
    for name in BOUND | {"real-replay-qwen-gpu-lr2e-4-ep10-replay300"}:
        assert 0 < BY_NAME[name]["error"] <= 0.12, name


def test_the_attempt_that_made_the_peak_is_the_one_planned():
    """7B, 16 x 62 tokens, checkpointing off under a 23 GiB cap: planned not to fit (24 GiB), it ran out of memory at
    micro-batch 16 and peaked at 19.49 GiB on the OOM ladder's micro-batch 8, which the table plans."""
    run = BY_NAME["capped-7b-nockpt"]
    assert peak_attempt(run) == 2 and run["memory_plan"]["peak_memory_gib"] > 23
    assert abs(run["error"]) <= 0.05


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
