"""Ask a GGUF file the probes in llama.cpp itself (child/llamacpp_answers.py, supervised), greedy.

The same rows and system prompts as `ask` sends ms-swift (prompt_messages), keyed the same way (row_key), so
the answers compare one to one with the merged model's. The GGUF's own chat template formats them.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from swiftkit import paths
from swiftkit.process import supervise
from swiftkit.verify.ask import prompt_messages, row_key

CHILD = paths.PACKAGE_DIR / "child" / "llamacpp_answers.py"
STALL_SECONDS = 600


@dataclass(frozen=True)
class GGUFAnswers:
    answers: dict[str, str]  # row_key -> answer
    finish: dict[str, str]  # row_key -> stop | length
    tokens_per_second: float | None
    load_seconds: float
    seconds: float
    log_path: Path


class GGUFAskFailed(Exception):
    def __init__(self, message: str, log_path: Path, interrupted: bool = False):
        self.log_path, self.interrupted = log_path, interrupted
        super().__init__(f"{message}\n  full log: {log_path}")


def ask_gguf(gguf: Path, rows: list[dict], system: str | None, folder: Path, *, name: str, max_new_tokens: int,
             parallel: int = 4, threads: int = 0, on_line=None) -> GGUFAnswers:
    folder.mkdir(parents=True, exist_ok=True)
    questions, out = folder / f"{name}.questions.jsonl", folder / f"{name}.json"
    with open(questions, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"key": row_key(row), "messages": prompt_messages(row, system)}, ensure_ascii=False) + "\n")
    out.unlink(missing_ok=True)
    spec = {"gguf": str(gguf), "questions": str(questions), "out": str(out), "max_new_tokens": max_new_tokens,
            "parallel": parallel, "threads": threads}
    reason: list[str] = []

    def line(text: str) -> None:
        if text.startswith("swiftkit-gguf:"):
            reason.append(text.split(":", 1)[1].strip())
        elif on_line is not None and text.startswith("[llama.cpp]"):
            on_line(text)

    done = supervise([sys.executable, str(CHILD), json.dumps(spec)], {"OMP_NUM_THREADS": str(threads or os.cpu_count() or 1)},
                     folder / f"{name}.log", line, stall_timeout=STALL_SECONDS)
    if done.returncode != 0 or not out.is_file():
        last = reason[0] if reason else next((t for t in reversed(done.tail) if "rror" in t),
                                             done.tail[-1] if done.tail else "")
        raise GGUFAskFailed(f"llama.cpp did not answer (exit {done.returncode}): {last.strip()[:300]}",
                            done.log_path, interrupted=bool(done.interrupted_by))
    data = json.loads(out.read_text(encoding="utf-8"))
    return GGUFAnswers(data["answers"], data.get("finish", {}), data.get("tokens_per_second"),
                       data.get("load_seconds", 0.0), data.get("seconds", 0.0), done.log_path)
