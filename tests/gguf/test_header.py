"""GGUF headers: small files written with the gguf package's own writer, hostile ones written by hand, and the
real SmolLM2 file's header when it is fetched."""
from __future__ import annotations

import os
import struct
import time

import gguf
import numpy as np
import pytest

from swiftkit.errors import UserError
from swiftkit.gguf import header as hdr
from swiftkit.gguf.header import convertible, read_header, require_convertible
from test_fetch import smollm2_gguf  # noqa: F401 - a fixture


def write_gguf(path, arch="llama", name="Tiny Test 1M Instruct", tensors=None, **keys):
    """A small GGUF file: a name, a few shape keys, a 3-token vocabulary and the given tensors."""
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(keys.get("block_count", 2))
    writer.add_embedding_length(keys.get("embedding_length", 32))
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_context_length(2048)
    writer.add_file_type(1)
    writer.add_token_list(["<s>", "a", "b"])
    writer.add_chat_template("{{ messages }}")
    for tensor_name, data, raw in tensors or [("token_embd.weight", np.zeros((3, 32), np.float32), None)]:
        writer.add_tensor(tensor_name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def problem_text(err: UserError) -> str:
    return err.value.format()


def test_a_small_gguf_reads_with_its_facts(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf", tensors=[
        ("token_embd.weight", np.zeros((3, 32), np.float32), None),
        ("blk.0.attn_q.weight", np.zeros((32, 32), np.float16), None),
        ("blk.0.ffn_up.weight", np.zeros((32, 34), np.uint8), gguf.GGMLQuantizationType.Q8_0)])
    header = read_header(path)
    assert header.version == 3 and header.architecture == "llama" and header.name == "Tiny Test 1M Instruct"
    assert (header.block_count, header.embedding_length, header.head_count, header.head_count_kv) == (2, 32, 4, 2)
    assert header.vocab_size == 3 and header.context_length == 2048 and header.file_type == 1
    assert header.tensor_types == {"F32": 1, "F16": 1, "Q8_0": 1}
    assert [t.shape for t in header.tensors] == [(32, 3), (32, 32), (32, 32)]  # innermost first
    assert header.parameters == 3 * 32 + 32 * 32 + 32 * 32
    assert header.data_end == header.file_size and header.has_chat_template
    assert convertible(header) == []
    assert header.swift_types() == (None, None)  # a llama that is not SmolLM: the recipe must say


def test_not_a_gguf_says_so(tmp_path):
    for content in (b"", b"GG", b"PK\x03\x04" + b"\0" * 100, b"{\"not\": \"a model\"}" * 4):
        path = tmp_path / "x.gguf"
        path.write_bytes(content)
        with pytest.raises(UserError) as err:
            read_header(path)
        assert "not a GGUF file" in problem_text(err) and "fix:" in problem_text(err)


def test_a_fifo_or_a_dir_is_never_opened(tmp_path):
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(UserError, match="not a regular file"):
            read_header(path)


def test_a_cut_off_file_is_truncated_in_its_data_or_its_header(tmp_path):
    path = write_gguf(tmp_path / "tiny.gguf", tensors=[("w", np.zeros((64, 64), np.float32), None)])
    whole = path.read_bytes()
    header = read_header(path)
    path.write_bytes(whole[:-100])
    with pytest.raises(UserError) as err:
        read_header(path)
    assert "cut off: the tensor data" in problem_text(err) and f"{len(whole):,}" in problem_text(err)
    path.write_bytes(whole[:header.header_bytes - 10])
    with pytest.raises(UserError, match="cut off: the header"):
        read_header(path)


def test_an_unsupported_architecture_and_a_decoder_less_one(tmp_path):
    for arch, words in (("rwkv6", "cannot be loaded from a GGUF"), ("t5", "not a causal language model")):
        path = write_gguf(tmp_path / f"{arch}.gguf", arch=arch)
        with pytest.raises(UserError) as err:
            require_convertible(path)
        assert words in problem_text(err) and "general.architecture" in problem_text(err)


def test_a_vocabulary_only_file_is_not_a_model(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "vocab.gguf"), "llama")
    writer.add_token_list(["a", "b"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    [problem] = convertible(read_header(tmp_path / "vocab.gguf"))
    assert "holds no tensors" in problem.message


def test_an_unsupported_tensor_type_is_named_with_its_count(tmp_path):
    q8_1 = gguf.GGMLQuantizationType.Q8_1
    path = write_gguf(tmp_path / "q81.gguf", tensors=[("a", np.zeros((2, 40), np.uint8), q8_1),
                                                     ("b", np.zeros((2, 40), np.uint8), q8_1)])
    header = read_header(path)
    assert header.tensor_types == {"Q8_1": 2}
    [problem] = convertible(header)
    assert "cannot be dequantized: Q8_1 (2 tensors)" in problem.message


def hostile(*fields: tuple[str, int | bytes]) -> bytes:
    out = b"GGUF"
    for fmt, value in fields:
        out += value if fmt == "raw" else struct.pack(fmt, value)
    return out + b"\0" * 64


@pytest.mark.parametrize("body, words", [
    (hostile(("<I", 3), ("<Q", 1 << 60), ("<Q", 0)), "tensors (at most"),
    (hostile(("<I", 3), ("<Q", 0), ("<Q", 1 << 60)), "metadata keys"),
    (hostile(("<I", 3), ("<Q", 0), ("<Q", 1), ("<Q", 1 << 60)), "cut off: the header"),
    (hostile(("<I", 3), ("<Q", 0), ("<Q", 1), ("<Q", 1), ("raw", b"k"), ("<I", 9), ("<I", 8), ("<Q", 1 << 60)),
     "an array of"),
    (hostile(("<I", 3), ("<Q", 0), ("<Q", 1), ("<Q", 1), ("raw", b"k"), ("<I", 9), ("<I", 9), ("<Q", 2)),
     "an array of arrays"),
    (hostile(("<I", 3), ("<Q", 1), ("<Q", 0), ("<Q", 1), ("raw", b"t"), ("<I", 1 << 30)), "dimensions"),
    (hostile(("<I", 3), ("<Q", 0), ("<Q", 1), ("<Q", 1), ("raw", b"k"), ("<I", 77)), "unknown type 77"),
    (hostile(("<I", 1), ("<Q", 0), ("<Q", 0)), "version 1 is not supported"),
])
def test_a_hostile_header_is_refused_at_once_without_allocating(tmp_path, body, words):
    path = tmp_path / "hostile.gguf"
    path.write_bytes(body)
    started = time.monotonic()
    with pytest.raises(UserError) as err:
        read_header(path)
    assert words in problem_text(err)
    assert time.monotonic() - started < 1.0


def test_a_string_longer_than_the_cap_inside_a_big_enough_file(tmp_path, monkeypatch):
    monkeypatch.setattr(hdr, "MAX_STRING_BYTES", 100)
    path = tmp_path / "long.gguf"
    path.write_bytes(hostile(("<I", 3), ("<Q", 0), ("<Q", 1), ("<Q", 200)) + b"x" * 300)
    with pytest.raises(UserError, match="a string of 200 bytes"):
        read_header(path)


def test_the_swift_types_of_qwen_and_smollm(tmp_path):
    qwen = read_header(write_gguf(tmp_path / "q.gguf", arch="qwen2", name="Qwen2.5 Coder 0.5B Instruct AWQ"))
    smol = read_header(write_gguf(tmp_path / "s.gguf", arch="llama", name="SmolLM2 135M Instruct"))
    old = read_header(write_gguf(tmp_path / "o.gguf", arch="qwen2", name="Qwen1.5 0.5B Chat"))
    assert (qwen.model_type, qwen.template) == ("qwen2", "qwen2_5")
    assert (smol.model_type, smol.template) == ("llama", "chatml")
    assert old.swift_types() == ("qwen2", "qwen")


def test_the_architecture_table_is_transformers_own_list():
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    ours = set(hdr.CAUSAL_ARCHITECTURES.values()) | set(hdr.OTHER_ARCHITECTURES.values())
    assert ours | {"general", "tokenizer"} == set(GGUF_CONFIG_MAPPING), \
        "transformers' GGUF architectures changed: update CAUSAL_ARCHITECTURES / OTHER_ARCHITECTURES"


def test_the_tensor_type_table_is_the_gguf_package_own():
    from gguf import quants

    for type_id, (name, block, size) in hdr.TENSOR_TYPES.items():
        kind = gguf.GGMLQuantizationType(type_id)
        assert kind.name == name and gguf.GGML_QUANT_SIZES[kind] == (block, size)
        raw = np.zeros((1, size * (256 // block) if block < 256 else size), np.uint8)
        try:
            quants.dequantize(raw, kind)
            works = True
        except NotImplementedError:
            works = False
        assert works == (name in hdr.DEQUANTIZABLE), name


@pytest.mark.e2e
def test_the_real_smollm2_header(smollm2_gguf):
    started = time.monotonic()
    header = require_convertible(smollm2_gguf)
    assert time.monotonic() - started < 2.0
    assert header.architecture == "llama" and header.file_type == 3
    assert header.tensor_types == {"Q4_1": 210, "F32": 61, "Q8_0": 1}
    assert (header.block_count, header.embedding_length, header.head_count, header.head_count_kv) == (30, 576, 9, 3)
    assert header.vocab_size == 49152 and header.parameters == 134_515_008
    assert header.data_end == header.file_size == 98_362_432
    assert header.swift_types() == ("llama", "chatml") and header.has_chat_template


def test_a_header_larger_than_the_cap_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(hdr, "MAX_HEADER_BYTES", 100)
    with pytest.raises(UserError, match="a header larger than 100 bytes"):
        read_header(write_gguf(tmp_path / "big.gguf"))
