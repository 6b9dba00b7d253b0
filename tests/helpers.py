"""Builders for the files tests need: model dirs (config + real tokenizer), datasets, recipes."""
from __future__ import annotations

import json
from pathlib import Path


def make_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["who are you", "I am a helpful assistant", "你是谁", "我是助手"] * 5, trainer)
    tok.save(str(path / "tokenizer.json"))


def make_model_dir(path: Path, *, code: bool = False, config: bool = True) -> Path:
    """A local model dir as checks see it: config.json (Qwen2) and a tokenizer; no weights needed."""
    path.mkdir(parents=True, exist_ok=True)
    if config:
        (path / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
                                                      "hidden_size": 64, "num_hidden_layers": 2}))
    make_tokenizer(path)
    (path / "model.safetensors").write_bytes(b"")  # validate refuses a model dir without weight files
    if code:
        (path / "modeling_custom.py").write_text("print('this would run')\n")
    return path


def pairs_jsonl(path: Path, n: int = 3) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


RECIPE = """\
model:
  id: model
  model_type: qwen2
  template: qwen2_5
  dtype: float32
identity:
  name: Tiny-Robot
  author: Test Team
datasets:
  - identity
  - data.jsonl
lora:
  rank: 8
  alpha: 32
train:
  epochs: 1
  effective_batch_size: 4
  micro_batch_size: 2
  max_length: 256
gpu:
  count: 0
output:
  dir: out
"""


def project(tmp: Path, recipe: str = RECIPE, **model_kwargs) -> Path:
    """A recipe in tmp with a local model dir and a dataset beside it; returns the recipe path."""
    make_model_dir(tmp / "model", **model_kwargs)
    pairs_jsonl(tmp / "data.jsonl")
    path = tmp / "recipe.yaml"
    path.write_text(recipe, encoding="utf-8")
    return path


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}
