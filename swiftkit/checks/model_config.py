"""A model dir's config.json: the fields swiftkit's plan and ms-swift's loader read, checked by type before
anything loads, the first wrong one named (`hidden_size: "big"` would otherwise fail inside a child process
measuring rows, `architectures: 5` inside ms-swift's model detection)."""
from __future__ import annotations

from typing import Any

# field -> (what it must be, in words; the test)
_POSITIVE_INT = ("a positive whole number", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0)
_FIELDS: dict[str, tuple[str, Any]] = {
    "model_type": ("text", lambda v: isinstance(v, str)),
    "architectures": ("a list of class names", lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v)),
    "hidden_size": _POSITIVE_INT,
    "num_hidden_layers": _POSITIVE_INT,
    "num_attention_heads": _POSITIVE_INT,
    "num_key_value_heads": _POSITIVE_INT,
    "intermediate_size": _POSITIVE_INT,
    "vocab_size": _POSITIVE_INT,
    "max_position_embeddings": _POSITIVE_INT,
    "head_dim": _POSITIVE_INT,
    "tie_word_embeddings": ("true or false", lambda v: isinstance(v, bool)),
    "torch_dtype": ("a dtype name such as bfloat16", lambda v: isinstance(v, str)),
    "dtype": ("a dtype name such as bfloat16", lambda v: isinstance(v, str)),
}


def config_problems(config: dict) -> list[str]:
    """Each field of the wrong type, as 'hidden_size is "big", expected a positive whole number'."""
    out = []
    for name, (expected, ok) in _FIELDS.items():
        if name in config and config[name] is not None and not ok(config[name]):
            shown = repr(config[name])
            out.append(f"{name} is {shown[:40] + '...' if len(shown) > 40 else shown}, expected {expected}")
    return out
