"""A running endpoint: ready when its health check answers (or never, when its process died), and proven to
answer as the tuned model did in swiftkit's own verification, through the official `openai` client.

The commonest complaint about served adapters is a model that answers like the base: a request whose `model`
names no adapter falls back to the base model. So the check asks the adapter's name, greedy, the questions
whose answers the run's verification kept (answers.jsonl), and counts agreement; where it falls short it says
how many answers equal the base model's instead (base-answers.jsonl), and which name it called.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

IDENTITY_ROWS = 32  # the first identity answers of the run's verification asked again through the endpoint
GENERAL_ROWS = 8


def wait_ready(root: str, alive: Callable[[], bool], timeout: float, poll: float = 0.5) -> float | None:
    """Seconds until GET ROOT/health answers 200; None when the server process ended first or time ran out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not alive():
            return None
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=2) as response:
                if response.status == 200:
                    return round(time.monotonic() - start, 1)
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(poll)
    return None


def expected_rows(verify_dir: Path) -> list[dict]:
    """(messages, response) rows of the tuned model from the run's verification (answers.jsonl: the identity
    probes, then the general ones): the first IDENTITY_ROWS and the last GENERAL_ROWS."""
    path = verify_dir / "answers.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r.get("messages") and isinstance(r.get("response"), str)]
    return rows[:IDENTITY_ROWS] + rows[IDENTITY_ROWS:][-GENERAL_ROWS:]


def base_answers(verify_dir: Path) -> dict[str, str]:
    path = verify_dir / "base-answers.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {_key(r["messages"]): r.get("response") or "" for r in rows if r.get("messages")}


def _key(messages: list[dict]) -> str:
    return json.dumps([[m.get("role"), m.get("content")] for m in messages if m.get("role") != "assistant"],
                      ensure_ascii=False)


def same(served: str, expected: str) -> bool:
    """Equal, or the verification's answer stopped at its token limit and the served one goes on from it."""
    a, b = served.strip(), expected.strip()
    return a == b or (bool(b) and a.startswith(b))


@dataclass
class Agreement:
    model: str
    asked: int = 0
    agreed: int = 0
    like_base: int = 0  # disagreeing answers equal to the base model's answer
    errors: list[str] = field(default_factory=list)
    differing: list[dict] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.agreed / self.asked if self.asked else 0.0

    def to_dict(self) -> dict:
        return {"model": self.model, "asked": self.asked, "agreed": self.agreed, "share": round(self.share, 4),
                "like_base": self.like_base, "errors": self.errors[:5], "differing": self.differing[:5]}


def check(base_url: str, api_key: str | None, model: str, rows: list[dict], base: dict[str, str],
          max_tokens: int, workers: int = 8, exact: bool = False, extra: dict | None = None) -> Agreement:
    """Ask `model` every row greedily through the openai client, in parallel; count the agreeing answers
    (`same`; with `exact`, equal but for surrounding spaces, as the GGUF export compared). `extra`: more
    sampling fields of the request body (llama-server's top_k and the like)."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=0, timeout=600)
    found = Agreement(model)

    def ask(row: dict) -> tuple[dict, str | None, str | None]:
        messages = [m for m in row["messages"] if m.get("role") != "assistant" or m is not row["messages"][-1]]
        try:
            reply = client.chat.completions.create(model=model, messages=messages, temperature=0,
                                                   max_tokens=max_tokens, extra_body=extra)
            return row, reply.choices[0].message.content or "", None
        except Exception as err:  # noqa: BLE001 - an API error is a finding, reported with the rest
            return row, None, f"{type(err).__name__}: {err}"

    with ThreadPoolExecutor(workers) as pool:
        for row, served, error in pool.map(ask, rows):
            found.asked += 1
            if error is not None:
                found.errors.append(error)
            elif (served.strip() == row["response"].strip()) if exact else same(served, row["response"]):
                found.agreed += 1
            else:
                was_base = base.get(_key(row["messages"]))
                found.like_base += bool(was_base is not None and same(served, was_base))
                found.differing.append({"question": _question(row["messages"]), "served": served[:200],
                                        "verified": row["response"][:200]})
    return found


def _question(messages: list[dict]) -> str:
    return next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
