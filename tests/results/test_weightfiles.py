"""weightfiles: safetensors files written by hand, whole, cut short and odd."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from swiftkit.results import weightfiles as wf
from test_checkpoints import LORA, safetensors_bytes


@pytest.mark.parametrize("cut", [0, 4, 8, 20])
def test_safetensors_cut_inside_the_header(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(safetensors_bytes(LORA)[:cut])
    assert wf.check_safetensors(path)


def test_safetensors_valid_and_odd(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(safetensors_bytes(LORA))
    assert wf.check_safetensors(path) == []
    path.write_bytes(safetensors_bytes(LORA) + b"junk")
    assert wf.check_safetensors(path) == ["m.safetensors: 4 bytes after the last tensor"]
    path.write_bytes(struct.pack("<Q", 2) + b"{]")
    assert wf.check_safetensors(path) == ["m.safetensors: header is not valid JSON"]
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    assert "dtype and shape need 16" in wf.check_safetensors(path)[0]


def test_the_real_adapter_layout_parses(tmp_path: Path) -> None:
    """Header as in a real ms-swift 4.6 adapter_model.safetensors ('format': 'pt', F32 LoRA A/B)."""
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(safetensors_bytes({
        "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight": ("F32", [8, 64]),
        "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight": ("F32", [32, 8])}))
    assert wf.check_safetensors(path) == []
