"""ask: swift infer's input and output files, and the answer cache (the real swift infer runs in e2e tests)."""
from __future__ import annotations

import json

from test_fingerprint import model

from swiftkit.ask import _cache_key, _read_cache, _write_cache, read_answers, write_infer_dataset
from swiftkit.render import ModelRef


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
