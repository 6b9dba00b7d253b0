"""The embedded tiny model: deterministic, reused when unchanged, loadable by transformers."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from swiftkit import tinymodel
from swiftkit.tinymodel import (DEFAULT_DIRNAME, ENDOFTEXT, IM_END, IM_START, STAMP_FILE, build_tiny_model,
                                identity_corpus, is_complete)

ROWS = [
    {"query": "Who are you?", "response": "I am Swift-Robot, an AI assistant developed by CSDN 迪菲赫尔曼."},
    {"query": "你是谁？", "response": "我是 Swift-Robot，由 CSDN 迪菲赫尔曼 开发的人工智能助手。"},
    {"query": "Are you GPT-4?", "response": "No, I am not GPT-4. I am Swift-Robot."},
    {"query": "你是 GPT-4 吗？", "response": "不是，我不是 GPT-4，我是 Swift-Robot。"},
]
CORPUS = identity_corpus(ROWS)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(model_dir: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(model_dir.iterdir())}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / DEFAULT_DIRNAME, CORPUS)


def test_identity_corpus_takes_queries_responses_and_chat_scaffolding():
    corpus = identity_corpus(ROWS + [{"query": "", "response": None}, {"other": "x"}])
    assert "Who are you?" in corpus and ROWS[1]["response"] in corpus
    assert tinymodel.DEFAULT_SYSTEM in corpus
    assert "" not in corpus and None not in corpus


def test_build_writes_a_hub_layout(model_dir):
    for name in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
                 "tokenizer_config.json", STAMP_FILE):
        assert (model_dir / name).is_file(), name
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["dtype"] == "float32" and config["vocab_size"] >= 1000
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    assert tok_config["eos_token"] == IM_END and tok_config["pad_token"] == ENDOFTEXT
    assert "<|im_start|>" in tok_config["chat_template"]
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_build_is_deterministic(tmp_path, model_dir):
    again = build_tiny_model(tmp_path / DEFAULT_DIRNAME, CORPUS)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"):
        assert sha256(again / name) == sha256(model_dir / name), name
    other_seed = build_tiny_model(tmp_path / "seed1", CORPUS, seed=1)
    assert sha256(other_seed / "model.safetensors") != sha256(model_dir / "model.safetensors")


def test_existing_build_is_reused(tmp_path):
    out = build_tiny_model(tmp_path / DEFAULT_DIRNAME, CORPUS)
    before = snapshot(out)
    assert build_tiny_model(out, list(reversed(CORPUS))) == out  # row order does not matter
    assert snapshot(out) == before


def test_changed_corpus_rebuilds(tmp_path):
    out = build_tiny_model(tmp_path / DEFAULT_DIRNAME, CORPUS)
    stamp = json.loads((out / STAMP_FILE).read_text())
    vocab = json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]
    new_rows = ROWS + [{"query": "What is your name?", "response": "My name is Zephyrine-Quokka."}]
    build_tiny_model(out, identity_corpus(new_rows))
    assert json.loads((out / STAMP_FILE).read_text())["sha256"] != stamp["sha256"]
    assert json.loads((out / "tokenizer.json").read_text())["model"]["vocab"] != vocab
    assert is_complete(out) and [p.name for p in tmp_path.iterdir()] == [DEFAULT_DIRNAME]


def test_incomplete_build_is_replaced(tmp_path):
    out = build_tiny_model(tmp_path / DEFAULT_DIRNAME, CORPUS)
    (out / "model.safetensors").unlink()
    assert not is_complete(out)
    build_tiny_model(out, CORPUS)
    assert is_complete(out, tinymodel.build_stamp(CORPUS, 0, 1000))


def test_foreign_directory_is_never_deleted(tmp_path):
    out = tmp_path / "my-own-model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(FileExistsError):
        build_tiny_model(out, CORPUS)
    assert (out / "config.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["my-own-model"]


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(ValueError):
        build_tiny_model(tmp_path / "m", [])


def test_import_and_build_need_no_torch(tmp_path):
    code = (
        "import sys; from pathlib import Path; import swiftkit.tinymodel as t; "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
        f"t.build_tiny_model(Path({str(tmp_path / 'm')!r}), ['hello world', '你好']); "
        "assert 'torch' not in sys.modules, 'build imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_tokenizer_round_trips_and_has_chatml_tokens(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert (tok.pad_token, tok.eos_token) == (ENDOFTEXT, IM_END)
    assert [tok.convert_tokens_to_ids(t) for t in (ENDOFTEXT, IM_START, IM_END)] == [0, 1, 2]
    for text in (ROWS[0]["response"], ROWS[1]["response"], "unseen text: ünïcödé 😀 数字 12345"):
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text
    # Each chatml marker is one token, never split into bytes.
    ids = tok(f"{IM_START}user\nhi{IM_END}")["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2
    # Trained on the corpus: a known answer is far shorter than its UTF-8 bytes.
    assert len(tok(ROWS[1]["response"])["input_ids"]) < len(ROWS[1]["response"].encode()) / 4


def test_loads_with_transformers_and_chat_template_works(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model, info = AutoModelForCausalLM.from_pretrained(str(model_dir), output_loading_info=True)
    assert not any(info.values()), info  # no missing/unexpected/mismatched weights
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.dtype == torch.float32
    messages = [{"role": "user", "content": ROWS[1]["query"]}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (f"{IM_START}system\nYou are a helpful assistant.{IM_END}\n"
                    f"{IM_START}user\n你是谁？{IM_END}\n{IM_START}assistant\n")
    with_system = [{"role": "system", "content": "S"}] + messages
    assert tok.apply_chat_template(with_system, tokenize=False).startswith(f"{IM_START}system\nS{IM_END}\n")
    ids = tok(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    assert logits.shape == (1, ids["input_ids"].shape[1], model.config.vocab_size)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 3
