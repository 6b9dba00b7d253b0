"""model.id naming a .gguf file, as validate meets it: the header read (never the weights), the model type and
template detected or asked for, the converted dir named as the model ms-swift trains."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from conftest import run_cli
from test_header import write_gguf

BASE = "train: {epochs: 1}\ndatasets: [identity]\nidentity: {name: a, author: b}\ngpu: {count: 0}\n"


def validate(write, model: str, extra: str = "") -> tuple[int, str]:
    code, out, err = run_cli("validate", str(write("r.yaml", f"model: {{id: {model}, dtype: float32{extra}}}\n" + BASE)))
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, out + err


def test_a_gguf_model_is_validated_from_its_header(write, tmp_path):
    write_gguf(tmp_path / "smol.gguf", name="SmolLM2 135M Instruct")
    code, text = validate(write, "smol.gguf")
    assert code == 0, text
    assert "note: model smol.gguf: SmolLM2 135M Instruct: llama, 2 layers, hidden 32" in text
    assert "converted once into float32 at the start of the run, then cached:" in text
    code, out, err = run_cli("render", str(tmp_path / "r.yaml"))
    assert "--model_type llama --template chatml" in out and "/gguf/" in out and "SmolLM2-135M-Instruct" in out


def test_a_gguf_whose_types_the_header_cannot_tell_asks_for_them_at_the_key(write, tmp_path):
    write_gguf(tmp_path / "m.gguf", name="Someone's Model")
    code, text = validate(write, "m.gguf")
    assert code == 2
    assert "r.yaml:1:13: model.id: ms-swift's model_type of m.gguf (llama, Someone's Model) cannot be told from " \
           "its header" in text and "fix: set model.model_type in the recipe (did you mean 'llama'?)" in text
    code, text = validate(write, "m.gguf", ", model_type: llama, template: chatml")
    assert code == 0, text


def test_a_file_that_is_not_gguf_or_is_cut_off_is_refused_at_model_id(write, tmp_path):
    (tmp_path / "fake.gguf").write_bytes(b"PK\x03\x04 not a gguf at all")
    code, text = validate(write, "fake.gguf")
    assert code == 2 and "model.id" in text and "not a GGUF file" in text
    path = write_gguf(tmp_path / "cut.gguf", name="SmolLM2 135M Instruct",
                      tensors=[("token_embd.weight", np.zeros((3, 512), np.float32), None)])
    path.write_bytes(path.read_bytes()[:-100])
    code, text = validate(write, "cut.gguf")
    assert code == 2 and "model.id" in text and "cut.gguf" in text


def test_a_missing_gguf_is_named_with_a_guess(write, tmp_path):
    write_gguf(tmp_path / "smol.gguf", name="SmolLM2 135M Instruct")
    code, text = validate(write, "smoll.gguf")
    assert code == 2 and f"GGUF file not found: {tmp_path / 'smoll.gguf'}" in text and "did you mean 'smol.gguf'?" in text


def test_the_bundled_real_recipe_says_how_to_get_its_model():
    code, out, err = run_cli("validate", str(Path(__file__).parents[2] / "recipes" / "real-identity.yaml"))
    assert code == 2 and "GGUF file not found" in err and "Traceback" not in err
    assert "known model smollm2-135m-instruct" in err and "swiftkit demo --real" in err
    assert 'model.id="$(swiftkit convert smollm2-135m-instruct)"' in err
