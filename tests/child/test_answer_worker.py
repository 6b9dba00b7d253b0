"""The answer worker's pure parts: room for each expected answer, and answers kept in order across the engine
calls that room takes (the engine itself runs in the e2e tests)."""
from __future__ import annotations

from dataclasses import dataclass

from swiftkit.child.answer_worker import MARGIN, _infer, budgets


def test_an_expected_answer_longer_than_the_limit_gets_room_for_all_of_it():
    # a UTF-8 byte at most one token: 30 Chinese characters are 90 bytes
    assert budgets(["", "short", "x" * 100, "我" * 30], 64) == [64, 64, 100 + MARGIN, 90 + MARGIN]


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


def test_answers_come_back_in_order_with_one_call_per_limit():
    engine = Engine()
    answers = _infer(engine, ["a", "b", "c", "d"], [64, 90, 64, 120], Config)
    assert answers == ["a@64", "b@120", "c@64", "d@120"]
    assert engine.calls == [(["a", "c"], 64), (["b", "d"], 120)]


def test_all_at_the_floor_is_one_call():
    engine = Engine()
    assert _infer(engine, ["a", "b"], [64, 64], Config) == ["a@64", "b@64"]
    assert len(engine.calls) == 1
