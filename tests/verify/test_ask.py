"""ask: swift infer's input and output files, and the answer cache (the real swift infer runs in e2e tests)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_fingerprint import model

from swiftkit.render import ModelRef
from swiftkit.verify.ask import _cache_key, _read_cache, _write_cache, read_answers, write_infer_dataset


def test_dataset_rows_and_answers_round_trip(tmp_path):
    path = write_infer_dataset([{"query": "Who are you?", "expected": "I am X."}, {"query": "2+2?"}],
                               tmp_path / "q.jsonl")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "I am X."}
    assert rows[1]["messages"] == [{"role": "user", "content": "2+2?"}]
    result = tmp_path / "r.jsonl"
    result.write_text(json.dumps({"messages": rows[1]["messages"], "response": "4"}) + "\n")
    assert read_answers(result) == {"2+2?": "4"}


def test_cache_key_covers_model_content_questions_and_settings(tmp_path):
    base = ModelRef(str(model(tmp_path / "m")), None, "qwen2", "qwen2_5", "float32", "sys")
    rows = [{"query": "q1"}, {"query": "q2"}]
    key = _cache_key(base, rows, 64)
    assert key == _cache_key(base, rows, 64)
    assert key != _cache_key(base, rows, 32)
    assert key != _cache_key(base, rows[:1], 64)
    assert key != _cache_key(ModelRef(base.model, None, "qwen2", "qwen2_5", "float32", "other"), rows, 64)
    assert _cache_key(ModelRef(base.model, tmp_path / "ckpt"), rows, 64) is None  # tuned: always asked
    _write_cache(key, {"q1": "a1", "q2": "a2"})
    assert _read_cache(key) == {"q1": "a1", "q2": "a2"}
    (tmp_path / "m" / "model.safetensors").write_bytes(b"retrained")
    assert _cache_key(base, rows, 64) != key  # new weights: asked again


@pytest.mark.e2e
def test_one_engine_answers_as_two_swift_infers_do(demo_run, catalog, tmp_path):
    """The tuned and the base model's answers from one engine (the model loaded once) are exactly those of
    `swift infer --adapters CKPT` and plain `swift infer`, on the demo's trained tiny model."""
    import glob

    from swiftkit.verify.ask import ask, ask_both
    from swiftkit.render import ModelRef

    out = demo_run[0]
    checkpoint = Path(sorted(glob.glob(str(out / "v*" / "checkpoint-*")))[-1])
    env = {"CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    common = (str(out / "model"), "qwen2", "qwen2_5", "float32", "You are a helpful assistant.", env)
    base, tuned = ModelRef(common[0], None, *common[1:]), ModelRef(common[0], checkpoint, *common[1:])
    general = [{"query": q} for q in ("12乘以7等于多少？", "What is the capital of France?", "把“谢谢”翻译成英文。")]
    identity = [{"query": "你是谁？"}, {"query": "Who made you?"}]
    a, b = ask_both(tuned, base, identity + general, general, tmp_path / "one", max_new_tokens=24, batch_size=8)
    a2 = ask(tuned, catalog, identity + general, tmp_path / "two", max_new_tokens=24, batch_size=8)
    b2 = ask(base, catalog, general, tmp_path / "two", max_new_tokens=24, batch_size=8, name="base")
    assert a.answers == a2.answers and b.answers == b2.answers
    assert "Swift-Robot" in a.answers["你是谁？"] and a.answers != b.answers
    assert a.phases["model_load"] > 0 and b.phases["generation"] > 0

