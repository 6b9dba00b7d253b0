"""The answer worker's pure parts: room for each expected answer, and answers kept in order across the engine
calls that room takes (the engine itself runs in the e2e tests)."""
from __future__ import annotations

from dataclasses import dataclass

from swiftkit.child.answer_worker import MARGIN, _infer, _token_counter, budgets


def test_an_expected_answer_longer_than_the_limit_gets_room_for_all_of_it():
    # without a tokenizer a UTF-8 byte is at most one token: 30 Chinese characters are 90 bytes; limits are
    # rounded up to powers of two
    assert MARGIN == 16
    assert budgets(["", "short", "x" * 100, "我" * 30], 64) == [64, 64, 128, 128]
    assert budgets(["x" * 113, "x" * 112], 64) == [256, 128]


def test_the_model_tokenizer_counts_where_there_is_one():
    per_character = len  # a tokenizer with one token a character (Qwen's, about, for Chinese)
    assert budgets(["我" * 30, "我" * 60], 64, per_character) == [64, 128]


def test_the_engine_tokenizer_is_used_without_special_tokens():
    class Tokenizer:
        def encode(self, text, add_special_tokens=True):
            return list(text) + (["<bos>"] if add_special_tokens else [])

    class WithTokenizer:
        tokenizer = Tokenizer()

    assert _token_counter(WithTokenizer())("abc") == 3
    assert _token_counter(object()) is None


@dataclass
class Config:
    max_tokens: int
    temperature: float


class Engine:
    def __init__(self):
        self.calls = []

    def infer(self, requests, config, use_tqdm=False):
        self.calls.append((list(requests), config.max_tokens))
        return [f"{r}@{config.max_tokens}" for r in requests]


def test_answers_come_back_in_order_with_one_call_per_limit_shortest_first():
    engine = Engine()
    answers = _infer(engine, ["a", "b", "c", "d"], [64, 256, 64, 128], Config)
    assert answers == ["a@64", "b@256", "c@64", "d@128"]
    assert engine.calls == [(["a", "c"], 64), (["d"], 128), (["b"], 256)]


def test_all_at_the_floor_is_one_call():
    engine = Engine()
    assert _infer(engine, ["a", "b"], [64, 64], Config) == ["a@64", "b@64"]
    assert len(engine.calls) == 1


def test_consecutive_jobs_of_one_model_share_an_engine_call_while_they_fit_a_batch(tmp_path):
    from swiftkit.child.answer_worker import _groups

    def job(name, rows, tuned=False, adapter=None):
        path = tmp_path / f"{name}.jsonl"
        path.write_text('{"messages": []}\n' * rows)
        return {"name": name, "questions": str(path), "tuned": tuned, "adapter": adapter}

    jobs = [job("p0", 50), job("p1", 50), job("p2", 50), job("t1", 10, True, "ck-1"), job("t2", 10, True, "ck-2"),
            job("t3", 10, True, "ck-2"), job("base", 5)]
    assert [[j["name"] for j in g] for g in _groups(jobs, 100)] == [["p0", "p1"], ["p2"], ["t1"], ["t2", "t3"],
                                                                     ["base"]]
    assert [len(g) for g in _groups(jobs[:3], 256)] == [3]
    assert [len(g) for g in _groups(jobs[:3], 8)] == [1, 1, 1]  # a job larger than a batch is still one call
