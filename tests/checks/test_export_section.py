"""The recipe's export section is checked at validate time, at its key: nothing found out after training."""
from __future__ import annotations

from conftest import run_cli
from helpers import RECIPE, project, tree

from swiftkit.gguf import write


def validate(tmp_path, export: str) -> tuple[int, str]:
    path = project(tmp_path, RECIPE + export)
    before = tree(tmp_path)
    code, _, err = run_cli("validate", str(path))
    assert tree(tmp_path) == before and "Traceback" not in err
    return code, err


def test_gguf_types_the_converter_cannot_write_are_located(tmp_path, catalog):
    code, err = validate(tmp_path, "export:\n  format: gguf\n  gguf_quant: [q8_0, q4_k_m, q9]\n")
    assert code == 2
    assert "export.gguf_quant[1]: q4_k_m: llama.cpp makes q4_k_m with its C++ tool llama-quantize" in err
    assert "llama-quantize MODEL-f16.gguf MODEL-q4_k_m.gguf Q4_K_M" in err
    assert "recipe.yaml:26:30: export.gguf_quant[2]: q9: not a GGUF type" in err and "f32, f16, bf16, q8_0" in err


def test_a_gguf_recipe_that_can_be_exported_passes(tmp_path, catalog):
    code, err = validate(tmp_path, "export:\n  format: gguf\n  gguf_quant: f16\n")
    assert code == 0, err


def test_without_llama_cpp_a_verified_gguf_export_is_refused_before_training(tmp_path, catalog, monkeypatch):
    monkeypatch.setattr(write, "llamacpp_installed", lambda: False)
    code, err = validate(tmp_path, "export:\n  format: gguf\n")
    assert code == 2 and "export.format: export.format gguf is checked in llama.cpp" in err
    assert "fix: pip install xllamacpp" in err
