"""`swiftkit plan`, and the plan's line in validate and run, as a user meets them: the real ms-swift
template measures the rows (child/token_lengths.py), the bundled Qwen2.5 tokenizer stands in for a hub
model's, and a run that cannot fit is refused before anything is written."""
from __future__ import annotations

import json

import pytest
from conftest import ROOT, run_cli

from swiftkit.tinymodel import build_tiny_model, identity_corpus

PRESET = str(ROOT / "recipes" / "presets" / "24gb-identity.yaml")


def test_plan_json_has_what_scripts_read():
    code, out, err = run_cli("plan", PRESET, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert isinstance(plan["peak_memory_gib"], float) and isinstance(plan["micro_batch_size"], int)
    assert plan["gradient_checkpointing"] is True and plan["fits"] is True
    assert set(plan["breakdown"]) == {"weights", "trainable_state", "activations", "logits_and_loss", "allocator"}
    assert abs(sum(plan["breakdown"].values()) - plan["peak_memory_gib"]) < 0.02
    # ms-swift itself counted these 74 identity rows on the GPU host: max=62 (bench/results/gpu-memory)
    assert plan["longest_row_tokens"] == 62 and plan["longest_row_from"].startswith("measured: 74 rows")
    assert plan["card"]["source"] == "gpu.memory_gb" and plan["card"]["limit_gib"] == 23.4
    # measured through swiftkit run on an H200 capped at 23 GiB: 16.33 GiB
    assert abs(plan["peak_memory_gib"] - 16.33) / 16.33 < 0.10


def test_plan_shows_where_the_memory_goes_and_the_time_on_a_named_card():
    code, out, err = run_cli("plan", PRESET, "--gpu", "4090D")
    assert code == 0, err
    assert out.startswith("plan: peak 16.3 GiB (micro-batch 16 x 62 tokens, checkpointing on); fits 23.4 GiB usable "
                          "(RTX 4090D)")
    # the identity rows' shortest prompt is 20 tokens: ms-swift computes no logits before it
    assert "  longest row: 62 tokens (measured: 74 rows, ms-swift's qwen2_5 template); logits kept for its last 43 " in out
    for part in ("weights", "trainable state", "activations", "logits and loss", "allocator", "peak"):
        assert f"\n    {part} " in out
    assert "time (estimate, RTX 4090D): about" in out and "50 steps" in out


def test_a_card_too_small_exits_2_and_says_so():
    code, out, _ = run_cli("plan", PRESET, "--gpu-memory-gb", "12")
    assert code == 2
    assert "does NOT fit 11.4 GiB usable (--gpu-memory-gb)" in out


def test_validate_and_run_refuse_a_run_that_cannot_fit_before_writing_anything(tmp_path):
    out_dir = tmp_path / "out"
    for verb in ("validate", "run"):
        code, out, err = run_cli(verb, PRESET, "--set", "gpu.memory_gb=12", "--set", f"output.dir={out_dir}")
        assert code == 2, (out, err)
        assert "the run cannot fit the card; nothing was run" in err
        assert "planned peak 16.3 GiB does not fit 11.4 GiB usable (gpu.memory_gb)" in err
        assert "lora.quant_bits: 4" in err and "Traceback" not in err
        assert not out_dir.exists()


def test_validate_shows_the_plan_and_what_auto_chose():
    code, out, err = run_cli("validate", str(ROOT / "recipes" / "presets" / "48gb-identity.yaml"))
    assert code == 0, err
    assert "micro-batch 16 x accumulation 1" in out
    assert "plan: peak" in out and "checkpointing off); fits 47.4 GiB usable (gpu.memory_gb)" in out
    assert "auto: micro-batch 16 (the whole per-GPU batch), gradient checkpointing off: it fits without" in out


def test_auto_splits_the_batch_when_the_whole_of_it_does_not_fit(tmp_path):
    code, out, err = run_cli("validate", PRESET, "--set", "train.micro_batch_size=auto",
                             "--set", "gpu.memory_gb=17.5")
    assert code == 0, err
    assert "ok: " in out and "micro-batch 8 x accumulation 2 x 1 GPU(s)" in out
    assert "auto: micro-batch 8 (the largest divisor of 16 that fits)" in out


def test_a_local_model_is_planned_from_its_own_config_and_tokenizer(tmp_path, write):
    model = build_tiny_model(tmp_path / "model", identity_corpus([{"query": "hi", "response": "ok"}]))
    data = write("data.jsonl", "".join(json.dumps({"messages": [{"role": "user", "content": "hi " * n},
                                                                 {"role": "assistant", "content": "ok"}]}) + "\n"
                                       for n in (3, 30, 9)))
    recipe = write("r.yaml", f"model: {{id: {model}, model_type: qwen2, template: qwen2_5, dtype: float32}}\n"
                             f"datasets: [{data}]\ntrain: {{epochs: 1, effective_batch_size: 3}}\ngpu: {{count: 0}}\n")
    code, out, err = run_cli("plan", str(recipe), "--gpu-memory-gb", "8", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["model"]["hidden"] == 64 and plan["model"]["vocab"] == 1000
    assert plan["longest_row_from"] == "measured: 3 rows, ms-swift's qwen2_5 template"
    assert plan["micro_batch_size"] == 3 and plan["fits"] is True


def test_a_hub_model_it_does_not_know_is_a_clear_error(write):
    recipe = write("r.yaml", "model: {id: meta-llama/Llama-3.1-8B-Instruct}\ndatasets: [org/data]\n"
                             "train: {epochs: 1}\ngpu: {memory_gb: 24}\n")
    code, out, err = run_cli("plan", str(recipe))
    assert code == 2
    assert "meta-llama/Llama-3.1-8B-Instruct is a hub id whose shape swiftkit does not know offline" in err
    assert "fix: give model.id as a local dir with config.json and the tokenizer" in err


# (micro-batch, accumulation, checkpointing, measured seconds a step): Qwen2.5-7B's shape, the 74 identity rows
# (longest 62 tokens), 50 steps (bench/results/gpu-whole-job: train_runtime / 50)
H200_FIT = [(16, 1, True, 21.58 / 50), (8, 2, False, 26.71 / 50), (1, 16, True, 265.76 / 50)]
# not fitted on: the same job on an H100 (bench/results/gpu-presets, bench/README.md)
H100_HELD_OUT = [(16, 1, True, 24.49 / 50), (1, 16, True, 237.72 / 50)]


@pytest.mark.parametrize("card, runs, tolerance", [("H200", H200_FIT, 0.05), ("H100", H100_HELD_OUT, 0.15)])
def test_step_time_follows_the_passes_not_the_arithmetic(card, runs, tolerance):
    """A 7B LoRA step on short rows is bound by each pass's overhead: 1 x 16 is ten times 16 x 1, which an
    arithmetic-only estimate (the same tokens either way) cannot say."""
    from swiftkit.plan.cards import find_card
    from swiftkit.plan.known_models import known_config
    from swiftkit.plan.memory import Setup, Shape
    from swiftkit.plan.sizing import step_seconds

    shape = Shape.from_config(known_config("Qwen/Qwen2.5-7B-Instruct"))
    tflops = find_card(card)[2]
    for micro, accumulation, checkpointing, measured in runs:
        setup = Setup(micro_batch=micro, tokens=62, gradient_checkpointing=checkpointing)
        estimate = step_seconds(shape, setup, micro * accumulation, tflops)
        assert abs(estimate - measured) / measured <= tolerance, (micro, accumulation, estimate, measured)


def test_a_micro_batch_smaller_than_the_card_holds_is_named_with_what_it_costs(tmp_path):
    """The blog post's 1 x 16 on a 24 GB card: validate says 16 x 1 fits and how many passes a step it
    saves; plan, with the card's speed, says the step times."""
    recipe = tmp_path / "mb1.yaml"
    recipe.write_text(open(PRESET, encoding="utf-8").read().replace("micro_batch_size: 16", "micro_batch_size: 1")
                      .replace("../../output", str(tmp_path / "output")), encoding="utf-8")
    code, out, err = run_cli("validate", str(recipe))
    assert code == 0, err
    assert ("note: micro-batch 1 x 16 leaves the card idle: 16 x 1 plans 16.3 GiB and fits, 1 pass a step "
            "instead of 16, for the same effective batch. Set train.micro_batch_size: 16 (or auto)") in out + err
    code, out, err = run_cli("plan", str(recipe), "--gpu", "H200")
    assert code == 0, err
    assert "about 0.44 s a step against 5.27 s (estimate, H200)" in out + err
    code, out, err = run_cli("validate", PRESET)  # the preset itself: nothing to say
    assert code == 0 and "leaves the card idle" not in out + err


def test_every_bundled_preset_plans_to_fit_its_card():
    for preset in sorted((ROOT / "recipes" / "presets").glob("*.yaml")):
        code, out, err = run_cli("validate", str(preset))
        assert code == 0, err
        assert " fits " in out and "does NOT fit" not in out, (preset.name, out)


def test_validate_says_what_run_does_when_assumed_rows_do_not_fit():
    code, out, err = run_cli("validate", str(ROOT / "recipes" / "mixed.yaml"), "--set", "gpu.memory_gb=24")
    assert code == 0, err
    assert "does NOT fit 23.4 GiB usable" in out
    assert ("run: goes ahead, since the rows are assumed: max_length (hub data) (2048 tokens), not measured; if they "
            "are that long it runs out of memory and the OOM ladder (on_oom) steps down") in out
