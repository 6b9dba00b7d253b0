"""Where a LoRA training step's memory goes, outside ms-swift: one process per model shape, the step
ms-swift's trainer takes (transformers' forward with labels, the loss, backward, AdamW) on a PEFT LoRA
(all-linear, rank 8, alpha 32, dropout 0.05) in bf16, one case after another, reading the caching
allocator between the parts. For the memory plan's parts (swiftkit/plan/memory.py): what the forward keeps
(activations and logits), the logits alone, and the step's peak above the weights and trainable state.

On the GPU host, after the shapes are built (bench/gpu/make_qwen_shape.py):
    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True python3 bench/gpu/memory_probe.py OUT.jsonl \\
        SHAPE_DIR MB:TOKENS:GC [MB:TOKENS:GC ...]        (GC: on | off)
"""
import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

GIB = 2**30
out, shape_dir, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
model = AutoModelForCausalLM.from_pretrained(shape_dir, dtype=torch.bfloat16, attn_implementation="sdpa").cuda()
weights = torch.cuda.memory_allocated()
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear"))
model.train()
vocab = model.config.vocab_size
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)


def step(mb: int, tokens: int) -> dict:
    x = torch.randint(0, vocab, (mb, tokens), device="cuda")
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    output = model(input_ids=x, labels=x)
    kept = torch.cuda.memory_allocated() - before
    logits = output.logits.numel() * output.logits.element_size()
    output.loss.backward()
    del output
    peak_step = torch.cuda.max_memory_allocated() - before
    opt.step()
    opt.zero_grad(set_to_none=True)
    return {"kept_after_forward": kept, "logits": logits, "step_peak_above_start": peak_step,
            "start": before, "max_allocated": torch.cuda.max_memory_allocated(),
            "max_reserved": torch.cuda.max_memory_reserved()}


step(1, 8)  # AdamW's moments exist from here on, as after ms-swift's first step
for case in cases:
    mb, tokens, gc = case.split(":")
    if gc == "on":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    else:
        model.gradient_checkpointing_disable()
    torch.cuda.empty_cache()
    result = step(int(mb), int(tokens))
    row = {"shape": shape_dir, "mb": int(mb), "tokens": int(tokens), "gc": gc == "on", "weights": weights,
           **result, "gib": {k: round(v / GIB, 3) for k, v in result.items()}}
    print(json.dumps({k: row[k] for k in ("shape", "mb", "tokens", "gc", "gib")}), flush=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
