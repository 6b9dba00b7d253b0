"""Build a model with Qwen2.5-7B-Instruct's exact shape (7.6 B parameters, random bf16 weights) on a GPU,
saved like a hub model, with the tiny local tokenizer (config.json's vocab_size sets the embedding size,
so memory and speed are those of the real model). No download: nothing leaves the machine.

usage: python3 bench/gpu/make_qwen7b_shape.py OUT_DIR
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from swiftkit.commands.demo import DEMO_RECIPE, make_tiny_model

out = Path(sys.argv[1])
cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=0, eos_token_id=2, pad_token_id=0,
                  torch_dtype="bfloat16")
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = Qwen2ForCausalLM(cfg)
print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B", flush=True)
model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=2, pad_token_id=0)
model.save_pretrained(out, safe_serialization=True)
with tempfile.TemporaryDirectory() as tmp:
    tiny = make_tiny_model(DEMO_RECIPE, Path(tmp) / "tiny")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny / name, out / name)
print(json.dumps({"saved": str(out), "files": sorted(p.name for p in out.iterdir())}), flush=True)
