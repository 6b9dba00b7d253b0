"""ask: swift infer's input and output files, and the answer cache (the real swift infer runs in e2e tests)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_fingerprint import model

from swiftkit.render import ModelRef
from swiftkit.verify.ask import (_cache_key, _read_cache, _write_cache, keyed, prompt_key, prompt_messages,
                                 read_answers, write_infer_dataset)


def test_dataset_rows_and_answers_round_trip(tmp_path):
    path = write_infer_dataset([{"query": "Who are you?", "expected": "I am X."}, {"query": "2+2?"}],
                               tmp_path / "q.jsonl")
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "I am X."}
    assert rows[1]["messages"] == [{"role": "user", "content": "2+2?"}]
    result = tmp_path / "r.jsonl"
    result.write_text(json.dumps({"messages": rows[1]["messages"], "response": "4"}) + "\n")
    assert read_answers(result) == {"2+2?": "4"}


def test_each_row_carries_its_system_prompt_or_none():
    plain, default = {"query": "Who are you?"}, {"query": "Who are you?", "system": None, "key": "default\x1fWho are you?"}
    turns = {"query": "Who are you?", "key": "c1", "messages": [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."}, {"role": "user", "content": "Who are you?"}]}
    assert prompt_messages(plain, "Be kind.") == [{"role": "system", "content": "Be kind."},
                                                  {"role": "user", "content": "Who are you?"}]
    assert prompt_messages(plain, None) == [{"role": "user", "content": "Who are you?"}]
    assert prompt_messages(default, "Be kind.") == [{"role": "user", "content": "Who are you?"}]  # the template's own
    assert prompt_messages(turns, None)[0] == {"role": "user", "content": "2+2?"} and len(prompt_messages(turns, None)) == 3
    keys = {prompt_key(prompt_messages(r, "Be kind.")) for r in (plain, default, turns)}
    assert len(keys) == 3 and "Who are you?" in keys  # one user turn, no system: the question itself


def test_a_row_asked_without_room_for_its_expected_answer_has_no_label(tmp_path):
    path = write_infer_dataset([{"query": "q", "expected": "a long answer", "label": False}], tmp_path / "q.jsonl")
    assert json.loads(path.read_text())["messages"] == [{"role": "user", "content": "q"}]


def test_answers_come_back_by_row_key_whichever_engine_wrote_them(tmp_path):
    rows = [{"query": "Who are you?"}, {"query": "Who are you?", "system": None, "key": "default\x1fWho are you?"}]
    path = write_infer_dataset(rows, tmp_path / "q.jsonl", "Be kind.")
    written = [json.loads(x)["messages"] for x in path.read_text().splitlines()]
    assert written[0][0] == {"role": "system", "content": "Be kind."} and written[1][0]["role"] == "user"
    result = tmp_path / "r.jsonl"  # swift infer appends the answer to the messages; the answer worker does not
    result.write_text(json.dumps({"messages": written[0] + [{"role": "assistant", "content": "I am X."}],
                                  "response": "I am X."}) + "\n" + json.dumps({"messages": written[1], "response": "I am Qwen."}) + "\n")
    assert keyed(rows, "Be kind.", read_answers(result)) == {"Who are you?": "I am X.", "default\x1fWho are you?": "I am Qwen."}


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
    identity = [{"query": "你是谁？"}, {"query": "Who made you?"},  # under the recipe's system prompt, and:
                {"query": "你是谁？", "system": None, "key": "default\x1f你是谁？"},  # the template's default
                {"query": "Who made you?", "system": "You plan trips.", "key": "custom\x1fWho made you?"},
                {"query": "Who are you?", "key": "turns", "messages": [  # after an unrelated turn
                    {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4."},
                    {"role": "user", "content": "Who are you?"}]}]
    a, b = ask_both(tuned, base, identity + general, general, tmp_path / "one", max_new_tokens=24, batch_size=8)
    a2 = ask(tuned, catalog, identity + general, tmp_path / "two", max_new_tokens=24, batch_size=8)
    b2 = ask(base, catalog, general, tmp_path / "two", max_new_tokens=24, batch_size=8, name="base")
    assert len(a.answers) == 8 and a.answers == a2.answers and b.answers == b2.answers
    assert "Swift-Robot" in a.answers["你是谁？"] and a.answers != b.answers
    assert a.phases["model_load"] > 0 and b.phases["generation"] > 0

