"""serve/endpoint.py, pure parts: which verified answers are asked again, what counts as the same answer, and
readiness that gives up when the server process is gone."""
from __future__ import annotations

import json

from swiftkit.serve import endpoint


def rows(n: int, prefix: str) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"{prefix} {i}"}], "response": f"answer {i}"}
            for i in range(n)]


def test_the_first_identity_and_the_last_general_answers_are_asked(tmp_path):
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(40, "id") + rows(20, "gen")))
    got = [r["messages"][0]["content"] for r in endpoint.expected_rows(tmp_path)]
    assert got == [f"id {i}" for i in range(32)] + [f"gen {i}" for i in range(12, 20)]
    assert endpoint.expected_rows(tmp_path / "none") == []


def test_an_answer_agrees_when_equal_or_when_it_goes_on_from_one_cut_at_the_limit():
    assert endpoint.same(" I am Swift-Robot. ", "I am Swift-Robot.")
    assert endpoint.same("I am Swift-Robot, built by CSDN.", "I am Swift-Robot, built")
    assert not endpoint.same("I am Qwen.", "I am Swift-Robot.")
    assert not endpoint.same("anything", "")


def test_readiness_gives_up_at_once_when_the_server_is_gone():
    assert endpoint.wait_ready("http://127.0.0.1:9", lambda: False, timeout=30) is None
    assert endpoint.wait_ready("http://127.0.0.1:9", lambda: True, timeout=0.3, poll=0.1) is None
