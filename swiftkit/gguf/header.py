"""A GGUF file's header, read without its weights: magic, version, metadata, tensor infos.

Pure and fast: the file is memory-mapped and only the header's bytes are touched (the Qwen2.5 0.5B header,
its 151,936-token vocabulary and merges included, reads in well under a second). What a file can make the
reader do is bounded: the header may take at most MAX_HEADER_BYTES, a string MAX_STRING_BYTES, an array
MAX_ARRAY_ITEMS, and the file may declare at most MAX_TENSORS tensors and MAX_KEYS keys, each checked
before anything is allocated, so a hostile header cannot make it allocate gigabytes. Large arrays (the
vocabulary, the merges) are walked, not kept: the header holds their item type and length.

`read_header(path)` raises UserError for a file that is not a GGUF, or is cut off (the header, or the tensor
data that the tensor infos and the alignment place after it, ends past the end of the file).
`convertible(header)` lists what transformers cannot load: an architecture it has no GGUF support for, a
tensor type it cannot dequantize. `require_convertible(path)` does both.
"""
from __future__ import annotations

import collections
import math
import mmap
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Problem, UserError, quote

MAGIC = b"GGUF"
MAX_HEADER_BYTES = 64 * 1024 * 1024  # Qwen2.5's header, 151,936 tokens and their merges, is 5.9 MB
MAX_STRING_BYTES = 16 * 1024 * 1024
MAX_ARRAY_ITEMS = 1 << 21  # 2M: the largest vocabularies and merges lists are a few 100,000
MAX_TENSORS = 1 << 16  # the largest models have a few thousand
MAX_KEYS = 1 << 16
MAX_DIMS = 4  # GGML_MAX_DIMS
KEEP_ARRAY_ITEMS = 64  # arrays up to this length are kept whole; longer ones as Array(type, length)
DEFAULT_ALIGNMENT = 32

# GGUF value types -> struct format (8: string, 9: array)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9

# ggml tensor types: id -> (name, elements a block, bytes a block), as gguf.GGML_QUANT_SIZES has them.
TENSOR_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}
# What gguf's dequantize (which transformers calls for every tensor) turns into dense weights.
DEQUANTIZABLE = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K",
                 "Q6_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "IQ1_M",
                 "TQ1_0", "TQ2_0", "MXFP4", "NVFP4"}

# general.architecture as llama.cpp writes it -> transformers' name for it (the keys of its
# GGUF_SUPPORTED_ARCHITECTURES): the decoder-only language models transformers 5.19 loads from a GGUF.
CAUSAL_ARCHITECTURES = {
    "llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen2moe": "qwen2_moe", "qwen3": "qwen3",
    "qwen3moe": "qwen3_moe", "gpt-oss": "gpt_oss", "lfm2": "lfm2", "falcon": "falcon", "phi3": "phi3",
    "bloom": "bloom", "stablelm": "stablelm", "gpt2": "gpt2", "starcoder2": "starcoder2", "mamba": "mamba",
    "nemotron": "nemotron", "gemma2": "gemma2", "gemma3": "gemma3", "gemma4": "gemma4", "deci": "deci",
    "minimax-m2": "minimax_m2",
}
# Loaded by transformers from a GGUF, but not a causal language model ms-swift's sft tunes here.
OTHER_ARCHITECTURES = {"t5": "t5", "t5encoder": "t5", "umt5": "umt5"}

# (architecture, pattern on general.name / basename) -> (ms-swift model_type, template); first match wins.
SWIFT_TYPES = [
    ("qwen2", r"qwen2\.5|qwen-?2_5", ("qwen2", "qwen2_5")),
    ("qwen2", r"qwen1\.5|qwen2", ("qwen2", "qwen")),
    ("llama", r"smollm", ("llama", "chatml")),
]


@dataclass(frozen=True)
class Array:
    """A metadata array too long to keep: its item type and length."""
    item_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type_id: int
    shape: tuple[int, ...]  # as GGUF lists it: the innermost dimension first
    offset: int  # from the start of the tensor data

    @property
    def type_name(self) -> str:
        return TENSOR_TYPES.get(self.type_id, (f"type {self.type_id}",))[0]

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int | None:
        known = TENSOR_TYPES.get(self.type_id)
        if known is None:
            return None
        _, block, size = known
        return self.elements // block * size


@dataclass
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, object]
    tensors: list[TensorInfo]
    header_bytes: int  # where the tensor infos end
    data_offset: int  # where the tensor data starts (aligned)
    data_end: int  # where the last tensor ends
    file_size: int
    alignment: int = DEFAULT_ALIGNMENT
    tensor_types: dict[str, int] = field(default_factory=dict)

    def _arch_key(self, key: str):
        return self.metadata.get(f"{self.architecture}.{key}") if self.architecture else None

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) else None

    @property
    def basename(self) -> str | None:
        value = self.metadata.get("general.basename")
        return value if isinstance(value, str) else None

    @property
    def file_type(self) -> int | None:
        return _int(self.metadata.get("general.file_type"))

    @property
    def block_count(self) -> int | None:
        return _int(self._arch_key("block_count"))

    @property
    def embedding_length(self) -> int | None:
        return _int(self._arch_key("embedding_length"))

    @property
    def head_count(self) -> int | None:
        return _int(self._arch_key("attention.head_count"))

    @property
    def head_count_kv(self) -> int | None:
        return _int(self._arch_key("attention.head_count_kv")) or self.head_count

    @property
    def context_length(self) -> int | None:
        return _int(self._arch_key("context_length"))

    @property
    def vocab_size(self) -> int | None:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, Array):
            return tokens.length
        if isinstance(tokens, tuple):
            return len(tokens)
        return _int(self._arch_key("vocab_size"))

    @property
    def parameters(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def has_chat_template(self) -> bool:
        return isinstance(self.metadata.get("tokenizer.chat_template"), str)

    def swift_types(self) -> tuple[str | None, str | None]:
        """ms-swift's (model_type, template) for this model where the header tells them, else (None, None)."""
        names = " ".join(n for n in (self.name, self.basename) if n).lower()
        for arch, pattern, found in SWIFT_TYPES:
            if self.architecture == arch and re.search(pattern, names):
                return found
        return None, None

    @property
    def model_type(self) -> str | None:
        return self.swift_types()[0]

    @property
    def template(self) -> str | None:
        return self.swift_types()[1]


def plan_config(header: GGUFHeader) -> dict:
    """A config.json-like shape for the memory plan, from the header alone (before the file is converted)."""
    names = {t.name for t in header.tensors}
    return {"model_type": header.architecture, "hidden_size": header.embedding_length,
            "num_hidden_layers": header.block_count, "num_attention_heads": header.head_count,
            "num_key_value_heads": header.head_count_kv, "vocab_size": header.vocab_size,
            "intermediate_size": _int(header._arch_key("feed_forward_length")),
            "max_position_embeddings": header.context_length, "tie_word_embeddings": "output.weight" not in names}


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Cut(Exception):
    """The header runs past the end of the file."""


class _Reader:
    def __init__(self, view, size: int, path: Path):
        self.view, self.size, self.pos, self.path = view, size, 0, path

    def take(self, count: int) -> int:
        start = self.pos
        if start + count > self.size:
            raise _Cut()
        if start + count > MAX_HEADER_BYTES:
            raise _hostile(self.path, f"a header larger than {MAX_HEADER_BYTES:,} bytes")
        self.pos += count
        return start

    def scalar(self, fmt: str):
        start = self.take(struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.view, start)[0]

    def string(self, keep: bool = True) -> str | None:
        length = self.scalar("<Q")
        if length > MAX_STRING_BYTES:
            if self.pos + length > self.size:
                raise _Cut()
            raise _hostile(self.path, f"a string of {length:,} bytes (at most {MAX_STRING_BYTES:,})")
        start = self.take(length)
        return bytes(self.view[start:start + length]).decode("utf-8", errors="replace") if keep else None

    def value(self, kind: int, keep: bool = True):
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == STRING:
            return self.string(keep)
        if kind == ARRAY:
            item_type, length = self.scalar("<I"), self.scalar("<Q")
            if length > MAX_ARRAY_ITEMS:
                raise _hostile(self.path, f"an array of {length:,} items (at most {MAX_ARRAY_ITEMS:,})")
            if item_type in _SCALARS:  # fixed size: skip or unpack in one step
                size = struct.calcsize(_SCALARS[item_type])
                start = self.take(size * length)
                if not keep or length > KEEP_ARRAY_ITEMS:
                    return Array(item_type, length)
                return struct.unpack_from(f"<{length}{_SCALARS[item_type][1]}", self.view, start)
            if item_type == ARRAY:
                raise _hostile(self.path, "an array of arrays")
            short = keep and length <= KEEP_ARRAY_ITEMS
            items = [self.value(item_type, short) for _ in range(length)]
            return tuple(items) if short else Array(item_type, length)
        raise _hostile(self.path, f"a metadata value of unknown type {kind}")


def _hostile(path: Path, what: str) -> UserError:
    return UserError.one(f"not a usable GGUF file: its header declares {what}", file=str(path),
                         fix="the file is damaged or was not written by a GGUF writer; download it again")


def _not_gguf(path: Path, why: str) -> UserError:
    return UserError.one(f"not a GGUF file: {why}", file=str(path),
                         fix="give a .gguf model file (llama.cpp's format), e.g. one of a model's Q4_K_M files")


def _truncated(path: Path, what: str, need: int, size: int) -> UserError:
    return UserError.one(f"the GGUF file is cut off: {what} ends at byte {need:,}, but the file has {size:,} bytes",
                         file=str(path), fix="the download or copy did not finish; fetch the file again")


def read_header(path: str | os.PathLike) -> GGUFHeader:
    """The header of the GGUF file at `path`; UserError when it is no GGUF, is damaged or is cut off."""
    path = Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or a device is never opened
            raise _not_gguf(path, "not a regular file")
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24:
                start = f.read(4)
                if len(start) == 4 and start != MAGIC:
                    raise _not_gguf(path, f"it starts with {quote(repr(start))}, not b'GGUF'")
                raise _not_gguf(path, f"{size} bytes, too short for a GGUF header")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
                return _parse(view, size, path)
    except OSError as err:
        raise UserError.one(f"cannot read the GGUF file: {err.strerror or err}", file=str(path),
                            fix="check the path and its permissions") from None


def _parse(view, size: int, path: Path) -> GGUFHeader:
    if view[:4] != MAGIC:
        raise _not_gguf(path, f"it starts with {quote(repr(bytes(view[:4])))}, not b'GGUF'")
    reader = _Reader(view, size, path)
    reader.take(4)
    version = reader.scalar("<I")
    if version not in (2, 3):
        raise UserError.one(f"GGUF version {version} is not supported (2 and 3 are)", file=str(path),
                            fix="convert the model again with a current llama.cpp (convert_hf_to_gguf.py)")
    tensor_count, kv_count = reader.scalar("<Q"), reader.scalar("<Q")
    if tensor_count > MAX_TENSORS:
        raise _hostile(path, f"{tensor_count:,} tensors (at most {MAX_TENSORS:,})")
    if kv_count > MAX_KEYS:
        raise _hostile(path, f"{kv_count:,} metadata keys (at most {MAX_KEYS:,})")
    metadata: dict[str, object] = {}
    tensors: list[TensorInfo] = []
    try:
        for _ in range(kv_count):
            key = reader.string()
            metadata[key] = reader.value(reader.scalar("<I"))
        for _ in range(tensor_count):
            name = reader.string()
            dims = reader.scalar("<I")
            if dims > MAX_DIMS:
                raise _hostile(path, f"a tensor with {dims:,} dimensions (at most {MAX_DIMS})")
            shape = tuple(reader.scalar("<Q") for _ in range(dims))
            tensors.append(TensorInfo(name, reader.scalar("<I"), shape, reader.scalar("<Q")))
    except _Cut:
        raise _truncated(path, "the header", reader.pos + 1, size) from None
    alignment = _int(metadata.get("general.alignment")) or DEFAULT_ALIGNMENT
    if alignment <= 0 or alignment & (alignment - 1):
        raise _hostile(path, f"an alignment of {alignment} (a power of two is needed)")
    data_offset = -(-reader.pos // alignment) * alignment
    data_end = data_offset if tensors else reader.pos  # no tensors: no padding is needed after the header
    for tensor in tensors:
        if any(d <= 0 or d > 1 << 40 for d in tensor.shape):
            raise _hostile(path, f"tensor {quote(tensor.name)} with the shape {tensor.shape}")
        known = TENSOR_TYPES.get(tensor.type_id)
        if known and tensor.shape and tensor.shape[0] % known[1]:
            raise _hostile(path, f"tensor {quote(tensor.name)} of {known[0]} with rows of {tensor.shape[0]} "
                                 f"elements (not a multiple of {known[1]})")
        if tensor.nbytes is not None:
            data_end = max(data_end, data_offset + tensor.offset + tensor.nbytes)
    if data_end > size:
        raise _truncated(path, f"the tensor data of {len(tensors)} tensors", data_end, size)
    counts = collections.Counter(t.type_name for t in tensors)
    return GGUFHeader(path, version, metadata, tensors, reader.pos, data_offset, data_end, size, alignment,
                      dict(counts.most_common()))


def convertible(header: GGUFHeader) -> list[Problem]:
    """What stops transformers from loading this GGUF as a causal language model; [] when nothing does."""
    problems = []
    arch, where = header.architecture, str(header.path)
    if arch is None:
        problems.append(Problem("the GGUF file names no architecture (general.architecture)", file=where,
                                key="general.architecture", fix="use a GGUF written by llama.cpp's converter"))
    elif arch in OTHER_ARCHITECTURES:
        problems.append(Problem(f"architecture {quote(arch)} is not a causal language model", file=where,
                                key="general.architecture", fix="fine-tune a decoder model (llama, qwen2, ...)"))
    elif arch not in CAUSAL_ARCHITECTURES:
        shown = ", ".join(sorted(CAUSAL_ARCHITECTURES))
        problems.append(Problem(f"architecture {quote(arch)} cannot be loaded from a GGUF file by transformers",
                                file=where, key="general.architecture",
                                fix=f"use the model's Hugging Face weights instead, or a GGUF of: {shown}"))
    if not header.tensors:
        problems.append(Problem("the GGUF file holds no tensors (a vocabulary-only file?)", file=where,
                                fix="use the model's GGUF file with its weights"))
    bad = {name: n for name, n in header.tensor_types.items() if name not in DEQUANTIZABLE}
    if bad:
        listed = ", ".join(f"{name} ({n} tensors)" for name, n in bad.items())
        problems.append(Problem(f"tensor types that cannot be dequantized: {listed}", file=where,
                                fix="use another quantization of the model (Q4_K_M, Q8_0, F16 all convert)"))
    return problems


def require_convertible(path: str | os.PathLike) -> GGUFHeader:
    """The header of a GGUF that transformers can load; UserError with every reason it cannot."""
    header = read_header(path)
    problems = convertible(header)
    if problems:
        raise UserError(problems, headline=f"cannot convert {path}:")
    return header


def summary(header: GGUFHeader) -> str:
    """One line: name, architecture, size and quantization."""
    types = ", ".join(f"{k} {v}" for k, v in header.tensor_types.items())
    return (f"{header.name or header.path.name}: {header.architecture}, {header.block_count} layers, hidden "
            f"{header.embedding_length}, {header.head_count}/{header.head_count_kv} heads, vocab {header.vocab_size}, "
            f"{header.parameters:,} parameters; tensors {types}")
