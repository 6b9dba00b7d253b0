"""Beside a supervised server: readiness, then verification, in a thread; the server stopped when it fails.

Shared by both servers `swiftkit serve` runs: `swift deploy` (the tuned model, checked against the run's
verification) and llama.cpp's own server (a GGUF export, checked against the merged model it was made from).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable

import click

from swiftkit.datasets import write_atomic
from swiftkit.errors import EXIT_FAILURE, EXIT_OK
from swiftkit.logparse.events import EXIT_CODES
from swiftkit.process import Finished, stop_group, supervise
from swiftkit.results.record import now
from swiftkit.serve import endpoint


class Watcher:
    """`check(root)` asks the ready endpoint the verified questions (None: nothing to check); below `threshold`
    the server is stopped and `code` is 15. `reference` names whose answers they were ("the tuned model")."""

    def __init__(self, root: str, api_key: str | None, model: str,
                 check: Callable[[str], endpoint.Agreement] | None, threshold: float, timeout: float,
                 record: dict, record_path: Path, reference: str = "the tuned model"):
        self.root, self.api_key, self.model, self.check = root, api_key, model, check
        self.threshold, self.timeout, self.reference = threshold, timeout, reference
        self.record, self.record_path = record, record_path
        self.code: int | None = None
        self.ready = False
        self.thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self.thread = threading.Thread(target=self._run, args=(pid,), daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=5)

    def _run(self, pid: int) -> None:
        waited = endpoint.wait_ready(self.root, lambda: alive(pid), self.timeout)
        if waited is None:
            if alive(pid):  # up but never healthy within the time: stopped, said so
                self.code = EXIT_FAILURE
                click.echo(f"swiftkit serve: not ready after {self.timeout:.0f} s; stopped", err=True)
                stop_group(pid)
            return
        self.record["ready_seconds"] = waited
        if self.check is not None:
            started = time.monotonic()
            found = self.check(f"{self.root}/v1")
            self.record["verification"] = {**found.to_dict(), "min_agreement": self.threshold,
                                           "seconds": round(time.monotonic() - started, 1)}
            if found.share < self.threshold:
                self.code = EXIT_CODES["serve_unverified"]
                write_record(self.record_path, self.record)
                like = (f"; {found.like_base} of them as the base model answered" if found.like_base else "")
                click.echo(f"swiftkit serve: the endpoint does not answer as {self.reference}"
                           f": model '{self.model}' agreed on {found.agreed} of {found.asked} verified answers (needed "
                           f"{self.threshold:.0%}){like}" + (f"; errors: {found.errors[0]}" if found.errors else "")
                           + "\n  stopped; nothing is left running", err=True)
                stop_group(pid)
                return
            click.echo(f"swiftkit serve: verified: '{self.model}' gave {self.reference}'s answer to {found.agreed} of "
                       f"{found.asked} questions through the openai client", err=True)
        self.ready = True
        write_record(self.record_path, self.record)
        checked = self.record.get("verification", {}).get("seconds", 0.0)  # ready means loaded and verified
        click.echo(ready_text(self.root, self.model, self.api_key, waited + checked), err=True)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def write_record(path: Path, record: dict) -> None:
    try:
        write_atomic(path, (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode())
    except OSError:
        pass  # the record is a convenience; the server's log holds what happened


def ready_text(root: str, model: str, api_key: str | None, waited: float) -> str:
    key = ' -H "Authorization: Bearer $API_KEY"' if api_key else ""
    return (f"swiftkit serve: ready in {waited:.0f} s at {root}/v1, model '{model}' (Ctrl-C stops it)\n"
            f"  curl {root}/v1/chat/completions{key} -H 'Content-Type: application/json' \\\n"
            f"    -d '{{\"model\": \"{model}\", "
            f"\"messages\": [{{\"role\": \"user\", \"content\": \"Who are you?\"}}]}}'\n"
            f"  python: OpenAI(base_url=\"{root}/v1\", api_key={'API_KEY' if api_key else repr('none')})"
            f".chat.completions.create(model=\"{model}\", messages=[...])")


def supervise_server(argv: list[str], env: dict[str, str], log: Path, watch: Watcher, record: dict,
                     record_path: Path, *, server: str, reason: Callable[[Finished], tuple[int, str | None]]) -> int:
    """The server under process.supervise with `watch` beside it, until it stops; how it ended, said and kept in
    its record: the watcher's code (15: not the reference's answers), 0 for a ready server stopped by Ctrl-C or
    SIGTERM, else `reason(finished)` -> (exit code, why) for one that stopped on its own."""
    finished = supervise(argv, env, log, lambda _line: None, on_start=watch.start)
    watch.join()
    record.update({"stopped_at": now(), "returncode": finished.returncode})
    if watch.code is not None:
        code = watch.code
    elif finished.interrupted_by is not None and watch.ready:
        code = EXIT_OK
        click.echo("swiftkit serve: stopped; nothing is left running", err=True)
    else:
        code, why = reason(finished)
        record["diagnosis"] = why
        state = "after it was ready" if watch.ready else "before it was ready"
        click.echo(f"swiftkit serve: {server} stopped {state} (exit {finished.returncode}): "
                   f"{why or 'no reason in its log'}\n  full log: {log}", err=True)
    record["exit_code"] = code
    write_record(record_path, record)
    return code
