"""Runs in a child process: one GGUF file -> a Hugging Face model dir (safetensors, config, tokenizer).

argv[1] is a JSON spec: gguf (the file), out (the dir to write, which must not exist yet or be empty), dtype
("float32", "bfloat16", "float16"). transformers dequantizes every tensor of the GGUF into dense weights,
but a model loaded from a GGUF cannot be saved ("The model is quantized with QuantizationMethod.GGUF and is
not serializable"), so a fresh model is built from the same config with `quantization_config` removed and
given the dequantized weights (strict: no key missing or left over); both must give the same logits on a
short prompt before the fresh one is saved with the tokenizer (its chat template included).

Progress goes to stderr; the last stdout line is {"facts": {...}}: class, parameters, dtype, tied, the
largest logit difference, whether a chat template was saved, seconds.
"""
from __future__ import annotations

import json
import sys
import time

PROMPT = "The capital of France is"
TOLERANCE = 1e-3


STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[convert] {time.monotonic() - STARTED:5.1f} s: {text}", file=sys.stderr, flush=True)


def die_with_parent() -> None:
    """A conversion whose parent was killed stops too (Linux: PR_SET_PDEATHSIG), instead of writing on."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def parse_once() -> None:
    """transformers parses the GGUF file three times (tokenizer, config, weights: gguf's GGUFReader takes 5-9 s
    a time for a 49,152-token vocabulary on a 2-core machine) and builds gguf's tensor name map once per module
    (397 times for SmolLM2, 8 s). Both are read-only: parse the file once, build each map once."""
    import functools
    import os

    import gguf

    if not hasattr(gguf, "GGUFReader") or not hasattr(gguf, "get_tensor_name_map"):
        return
    readers: dict = {}
    original = gguf.GGUFReader

    def reader(path, mode="r"):
        key = (os.path.abspath(os.fspath(path)), mode)
        if mode != "r":
            return original(path, mode)
        if key not in readers:
            readers[key] = original(path, mode)
        return readers[key]

    gguf.GGUFReader = reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(gguf.get_tensor_name_map)


def no_init():
    """transformers' own switch that skips weight initialization, where this version has it."""
    import contextlib

    try:
        from transformers.initialization import no_init_weights
    except ImportError:
        return contextlib.nullcontext()
    return no_init_weights()


def main() -> int:
    spec = json.loads(sys.argv[1])
    die_with_parent()
    import os

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parse_once()

    dtype = getattr(torch, spec.get("dtype") or "float32")
    folder, name = os.path.dirname(os.path.abspath(spec["gguf"])), os.path.basename(spec["gguf"])
    say(f"imported torch and transformers; reading the tokenizer of {name}")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    say(f"dequantizing the weights of {name} to {spec.get('dtype') or 'float32'}")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype)
    loaded.eval()
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = dtype
    inputs = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        expected = loaded(**inputs).logits
    say("building a plain model from the config")
    with no_init():  # every weight is replaced by a dequantized one: initializing them is wasted time
        fresh = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = loaded.state_dict()
    result = fresh.load_state_dict(state, strict=True, assign=True)
    if result.missing_keys or result.unexpected_keys:
        raise SystemExit(f"weights do not fit the config: missing {result.missing_keys[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")
    if getattr(config, "tie_word_embeddings", False):
        fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    del loaded, state
    fresh.eval()
    with torch.no_grad():
        got = fresh(**inputs).logits
    difference = float((got.float() - expected.float()).abs().max())
    if difference > TOLERANCE:
        raise SystemExit(f"the converted model does not give the GGUF model's logits (largest difference "
                         f"{difference:g} on {PROMPT!r})")
    say(f"same logits (largest difference {difference:g}); saving")
    out = spec["out"]
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    say(f"saved to {out}")
    facts = {
        "class": type(fresh).__name__,
        "model_type": config.model_type,
        "parameters": sum(p.numel() for p in fresh.parameters()),
        "dtype": str(dtype).removeprefix("torch."),
        "tied": bool(getattr(config, "tie_word_embeddings", False)),
        "logit_difference": difference,
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "seconds": round(time.monotonic() - STARTED, 1),
    }
    print(json.dumps({"facts": facts}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
