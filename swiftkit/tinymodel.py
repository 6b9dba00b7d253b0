"""The embedded default model: a tiny Qwen2-architecture causal LM built locally, with no hub.

`build_tiny_model` writes a directory laid out like a hub checkpoint (config.json, model.safetensors,
generation_config.json, tokenizer.json, tokenizer_config.json) that the real `swift sft` and
`swift infer` load on CPU. Weights are random but seeded; the byte-level BPE tokenizer is trained on
the texts the model will be fine-tuned on, so an identity answer is a few dozen tokens.

ms-swift cannot detect the model type of a local directory from its name unless the name looks like
a hub id; callers pass `--model_type qwen2 --template qwen2_5`, and the default directory name
(DEFAULT_DIRNAME) is chosen to match no hub id, so detection never guesses.

The CLI imports this module and must start fast: tokenizers, numpy and safetensors are imported
inside the functions, and torch and transformers are not needed at all (a build takes well under a
second; importing transformers' Qwen2 code alone takes ~6 s on a small CPU).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

DEFAULT_DIRNAME = "swiftkit-tiny-chatml-lm"
STAMP_FILE = "swiftkit-tinymodel.json"
# Bump when the files written here change in a way that must invalidate existing builds.
BUILD_FORMAT = 1

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
# Order fixes the ids: pad 0, im_start 1, eos 2 (Qwen keeps them at the end of a 151k vocab;
# only the names matter to ms-swift's qwen2_5 template).
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

DEFAULT_SYSTEM = "You are a helpful assistant."

# Tuned with the real `swift sft` + `swift infer` on a 2-core CPU: LoRA r32/alpha64 on all-linear,
# lr 1e-2, batch 20, 40 epochs memorises 60 identity answers (zh+en) word for word.
MODEL_SHAPE = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}
# Init scales (Qwen uses 0.02 everywhere). The head is tied to the embeddings and LoRA does not
# train it, so the embedding scale caps the logits: at 0.02 they stay within ~1, the loss never
# falls below ~6 and greedy decoding is a coin toss. 0.3 lets the fine-tune make answers confident.
# Layers at 0.02 are drowned by such embeddings in the residual stream and LoRA learns nothing;
# 0.1 keeps them audible. (Measured: embed/layer 0.3/0.1 -> 58-60 of 60 exact; 0.02/0.02 -> 4.)
EMBED_INIT_STD = 0.3
LAYER_INIT_STD = 0.1

# Qwen2 tokenizer's pre-tokenization (transformers' Qwen2Tokenizer rebuilds exactly this pipeline
# around our vocab and merges, so both tokenizer classes give the same ids).
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2.5's chat template without the tool-call branches, default system as in Qwen2.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] != 'system' or not loop.first %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def identity_corpus(rows: Iterable[dict]) -> list[str]:
    """The texts the tokenizer is trained on: every query and response, plus the chat scaffolding.

    The system prompt and role names are included so they become a few tokens each instead of
    dozens of byte tokens.
    """
    texts = [DEFAULT_SYSTEM, "system\n", "user\n", "assistant\n"]
    for row in rows:
        for key in ("query", "response"):
            value = row.get(key)
            if isinstance(value, str) and value:
                texts.append(value)
    return texts


def _training_texts(corpus: list[str]) -> list[str]:
    # Sorted and de-duplicated: BPE breaks ties by order, and the texts, not the order of the
    # rows, should decide the vocabulary (and whether a build can be reused).
    return sorted(set(corpus))


def build_stamp(corpus: list[str], seed: int, vocab_size: int) -> dict:
    """What identifies a build: a hash of its inputs and of the shape and format of the files."""
    h = hashlib.sha256()
    payload = {
        "format": BUILD_FORMAT,
        "seed": seed,
        "vocab_size": vocab_size,
        "shape": MODEL_SHAPE,
        "init_std": [EMBED_INIT_STD, LAYER_INIT_STD],
        "chat_template": CHAT_TEMPLATE,
        "corpus": _training_texts(corpus),
    }
    h.update(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8"))
    return {"format": BUILD_FORMAT, "sha256": h.hexdigest(), "seed": seed, "vocab_size": vocab_size,
            "corpus_texts": len(corpus)}


REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    STAMP_FILE,
)


def is_complete(model_dir: Path, stamp: dict | None = None) -> bool:
    """True when model_dir holds every file of a build (and, given a stamp, the same build)."""
    model_dir = Path(model_dir)
    if not all((model_dir / name).is_file() for name in REQUIRED_FILES):
        return False
    if stamp is None:
        return True
    try:
        found = json.loads((model_dir / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return found.get("sha256") == stamp["sha256"]


def build_tiny_model(out_dir: Path, corpus: list[str], *, seed: int = 0, vocab_size: int = 1000) -> Path:
    """Build (or reuse) the tiny model in out_dir and return out_dir.

    Same corpus, seed and vocab_size give byte-identical files. An existing complete build with the
    same stamp is returned untouched; another build of ours (stamp file present) or an empty
    directory is replaced; a directory with other content raises FileExistsError rather than be
    deleted. The model is written to a temporary sibling directory and renamed into place, so
    out_dir never holds half a model.
    """
    out_dir = Path(out_dir)
    corpus = [str(t) for t in corpus]
    if not corpus:
        raise ValueError("corpus is empty: the tokenizer needs the texts the model will be trained on")
    stamp = build_stamp(corpus, seed, vocab_size)
    if is_complete(out_dir, stamp):
        return out_dir
    _check_replaceable(out_dir)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        n_vocab = _write_tokenizer(tmp, corpus, vocab_size)
        _write_model(tmp, seed, max(vocab_size, n_vocab))
        (tmp / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
        # mkdtemp makes the dir 0700 and safetensors writes 0600: make it readable like a checkpoint.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        _move_into_place(tmp, out_dir, stamp)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _check_replaceable(out_dir: Path) -> None:
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if out_dir.is_dir() and not out_dir.is_symlink():
        if (out_dir / STAMP_FILE).is_file() or not any(out_dir.iterdir()):
            return
    raise FileExistsError(
        f"{out_dir} exists and is not a tiny model built by swiftkit (no {STAMP_FILE}); "
        "remove it or choose another directory"
    )


def _move_into_place(tmp: Path, out_dir: Path, stamp: dict) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if is_complete(out_dir, stamp):  # another process finished the same build first
            return
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "model")
        shutil.rmtree(old, ignore_errors=True)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        # out_dir appeared between the check and the rename (a concurrent build): keep a
        # complete one, otherwise let the error say what happened.
        if not is_complete(out_dir, stamp):
            raise


def _write_tokenizer(tmp: Path, corpus: list[str], vocab_size: int) -> int:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_texts(corpus), trainer=trainer)
    tok.save(str(tmp / "tokenizer.json"))

    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "model_max_length": MODEL_SHAPE["max_position_embeddings"],
        "bos_token": None,
        "eos_token": IM_END,
        "pad_token": ENDOFTEXT,
        "unk_token": None,
        "additional_special_tokens": [IM_START, IM_END],
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "errors": "replace",
        "chat_template": CHAT_TEMPLATE,
    }
    _write_json(tmp / "tokenizer_config.json", config)
    return tok.get_vocab_size(with_added_tokens=True)


def _write_model(tmp: Path, seed: int, vocab_size: int) -> None:
    """Qwen2ForCausalLM's files, written directly with numpy and safetensors, no torch.

    Importing transformers' modeling code costs ~6 s on a small CPU, and torch's random stream may
    change between releases; numpy's legacy RandomState stream is frozen, so the same inputs give the
    same bytes with any numpy. Initialisation follows Qwen2PreTrainedModel: normal(0, initializer_range) for
    linear weights (embeddings at their own scale, see EMBED_INIT_STD), zero biases and padding
    row, ones for RMSNorm.
    """
    import numpy as np
    from safetensors.numpy import save_file

    shape = MODEL_SHAPE
    hidden, inter = shape["hidden_size"], shape["intermediate_size"]
    head_dim = hidden // shape["num_attention_heads"]
    kv = shape["num_key_value_heads"] * head_dim
    std = LAYER_INIT_STD
    pad_id, eos_id = SPECIAL_TOKENS.index(ENDOFTEXT), SPECIAL_TOKENS.index(IM_END)
    # RandomState, not Generator: its stream is frozen by NumPy's compatibility policy (NEP 19).
    rng = np.random.RandomState(seed)

    def normal(*dims: int, scale: float = std) -> "np.ndarray":
        return (rng.standard_normal(dims) * scale).astype(np.float32)

    tensors = {}
    embed = normal(vocab_size, hidden, scale=EMBED_INIT_STD)
    embed[pad_id] = 0.0
    tensors["model.embed_tokens.weight"] = embed
    for i in range(shape["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for name, rows in (("q_proj", hidden), ("k_proj", kv), ("v_proj", kv)):
            tensors[p + f"self_attn.{name}.weight"] = normal(rows, hidden)
            tensors[p + f"self_attn.{name}.bias"] = np.zeros(rows, dtype=np.float32)
        tensors[p + "self_attn.o_proj.weight"] = normal(hidden, hidden)
        tensors[p + "mlp.gate_proj.weight"] = normal(inter, hidden)
        tensors[p + "mlp.up_proj.weight"] = normal(inter, hidden)
        tensors[p + "mlp.down_proj.weight"] = normal(hidden, inter)
        tensors[p + "input_layernorm.weight"] = np.ones(hidden, dtype=np.float32)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(hidden, dtype=np.float32)
    tensors["model.norm.weight"] = np.ones(hidden, dtype=np.float32)
    if not shape["tie_word_embeddings"]:
        tensors["lm_head.weight"] = normal(vocab_size, hidden, scale=EMBED_INIT_STD)
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    n_layers = shape["num_hidden_layers"]
    _write_json(tmp / "config.json", {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": std,
        "intermediate_size": inter,
        "layer_types": ["full_attention"] * n_layers,
        "max_position_embeddings": shape["max_position_embeddings"],
        "max_window_layers": n_layers,
        "num_attention_heads": shape["num_attention_heads"],
        "num_hidden_layers": n_layers,
        "num_key_value_heads": shape["num_key_value_heads"],
        "rms_norm_eps": 1e-06,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "rope_theta": 10000.0,
        "sliding_window": None,
        "use_sliding_window": False,
        "tie_word_embeddings": shape["tie_word_embeddings"],
        "dtype": "float32",
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": vocab_size,
    })
    _write_json(tmp / "generation_config.json", {
        "bos_token_id": None,
        "eos_token_id": eos_id,
        "pad_token_id": pad_id,
        "do_sample": False,
        "max_new_tokens": 64,
    })


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
