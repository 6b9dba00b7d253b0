"""GGUF types for `swiftkit export --format gguf`: written here, refused with a fix, named once, sized."""
from __future__ import annotations

import pytest

from swiftkit.errors import Problem
from swiftkit.gguf import outtypes


@pytest.mark.parametrize("name", sorted(outtypes.WRITTEN))
def test_every_written_type_passes(name):
    assert outtypes.problems([name]) == []
    assert outtypes.problems([name.upper()]) == []


def test_all_written_types_together_pass():
    assert outtypes.problems(list(outtypes.WRITTEN)) == []


def test_a_k_quant_is_refused_with_the_llama_quantize_command():
    (problem,) = outtypes.problems(["q4_k_m"])
    assert isinstance(problem, Problem)
    assert problem.message.startswith("--quant q4_k_m: ")
    assert "llama-quantize" in problem.message
    assert problem.fix is not None
    assert "export --quant f16" in problem.fix
    assert "llama-quantize MODEL-f16.gguf MODEL-q4_k_m.gguf Q4_K_M" in problem.fix
    assert "q8_0" in problem.fix  # the type that is written here is offered instead
    assert "llama-quantize" in problem.format() and "fix:" in problem.format()


def test_a_k_quant_asked_in_capitals_names_the_type_as_asked_and_the_command_in_llama_cpp_form():
    (problem,) = outtypes.problems(["Q5-K-M"])
    assert "--quant Q5-K-M:" in problem.message
    assert "MODEL-q5_k_m.gguf Q5_K_M" in problem.fix


def test_a_ternary_type_is_refused_as_ternary():
    (problem,) = outtypes.problems(["tq1_0"])
    assert problem.message.startswith("--quant tq1_0: ")
    assert "ternary" in problem.message and "BitNet" in problem.message
    assert "llama-quantize" not in problem.message
    assert "q8_0" in problem.fix


def test_a_made_up_type_is_refused_listing_the_types_offered():
    (problem,) = outtypes.problems(["q9"])
    assert problem.message == "--quant q9: not a GGUF type"
    assert problem.fix == "one of f32, f16, bf16, q8_0"


def test_one_problem_per_refused_type_in_the_order_asked():
    got = outtypes.problems(["q4_k_m", "f16", "q9", "tq2_0"])
    assert [p.message.split(":")[0] for p in got] == ["--quant q4_k_m", "--quant q9", "--quant tq2_0"]


def test_chosen_normalises_case_and_dashes():
    assert outtypes.chosen(["Q8-0"]) == ["q8_0"]
    assert outtypes.chosen([" BF16 "]) == ["bf16"]


def test_chosen_names_each_type_once_in_the_order_asked():
    assert outtypes.chosen(["f16", "q8_0", "F16", "Q8-0", "f32"]) == ["f16", "q8_0", "f32"]


@pytest.mark.parametrize("empty", [[], (), None])
def test_chosen_gives_the_default_when_none_is_asked(empty):
    assert outtypes.DEFAULT == ("q8_0",)
    assert outtypes.chosen(empty) == ["q8_0"]


def test_bytes_needed_scales_with_the_type_width():
    n = 494_032_768
    f32, f16, bf16, q8 = (outtypes.bytes_needed(n, q) for q in ("f32", "f16", "bf16", "q8_0"))
    assert f32 == pytest.approx(2 * f16, rel=1e-6)
    assert f16 == bf16
    assert f16 > q8 > f16 / 2
    assert q8 == pytest.approx(n * 34 / 32 * 1.05, rel=1e-6)
    assert f16 >= n * 2  # never below the weights themselves
    assert outtypes.bytes_needed(0, "f16") == 0


def test_min_agreement_has_a_floor_per_written_type():
    assert set(outtypes.MIN_AGREEMENT) == set(outtypes.WRITTEN)
    for quant in outtypes.WRITTEN:
        assert 0 < outtypes.min_agreement(quant) <= 1
    assert outtypes.min_agreement("f32") >= outtypes.min_agreement("f16") >= outtypes.min_agreement("q8_0")


def test_min_agreement_override_wins_even_when_zero():
    assert outtypes.min_agreement("f32", 0.25) == 0.25
    assert outtypes.min_agreement("q8_0", 1.0) == 1.0
    assert outtypes.min_agreement("f16", 0.0) == 0.0
    assert outtypes.min_agreement("f16", None) == outtypes.MIN_AGREEMENT["f16"]
