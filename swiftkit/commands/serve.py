"""`swiftkit serve TARGET`: the tuned model behind an OpenAI-compatible API (`swift deploy`), said ready only
once it answers as the tuned model did.

The server runs under `process.supervise` in this thread (its log teed, Ctrl-C and SIGTERM stopping its whole
process group); a watcher thread polls its health, then asks it the run's verification questions through the
`openai` client, and stops it when its answers are not the tuned model's (exit 15). A server that dies while
loading ends the supervision at once, and its reason comes from its log (logparse.diagnose), never a hang.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import click

from swiftkit import paths
from swiftkit.datasets import write_atomic
from swiftkit.errors import EXIT_FAILURE, EXIT_OK, UserError
from swiftkit.flags.catalog import load_catalog
from swiftkit.logparse import diagnose
from swiftkit.logparse.events import EXIT_CODES
from swiftkit.process import stop_group, supervise
from swiftkit.render import render_deploy
from swiftkit.results import targets
from swiftkit.results.record import now
from swiftkit.serve import endpoint
from swiftkit.serve.policy import access_problems, port_problem, slug


def serve(target: str, *, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
          backend: str = "transformers", max_concurrency: int = 16, api_key: str | None = None,
          insecure: bool = False, verify: bool = True, min_agreement: float | None = None,
          ready_timeout: float = 900, model_type: str | None = None, template: str | None = None) -> int:
    t = targets.resolve(target, model_type=model_type, template=template)
    ref = t.ref()
    problems = access_problems(host, api_key, insecure)
    busy = port_problem(host, port)
    if busy is not None:
        problems.append(busy)
    if problems:
        raise UserError(problems, headline=f"swiftkit serve {target}: nothing was started")
    identity = t.recipe.identity if t.recipe else None
    served = name or (slug(identity.name.en) if identity else slug(t.path.name))
    rows, verify_dir = _questions(t) if verify else ([], None)
    base_name = "base" if ref.adapter and backend == "vllm" else None  # see render_deploy
    inv = render_deploy(ref, load_catalog(), host=host, port=port, name=served, base_name=base_name, api_key=api_key,
                        backend=backend, max_batch_size=max_concurrency, lora_rank=_rank(ref.adapter),
                        swift=paths.swift_command())
    home = (Path(t.record_path).parent if t.record_path else t.path)
    log, record_path = home / f"serve-{port}.log", home / f"serve-{port}.json"
    record = {"target": str(t.path), "host": host, "port": port, "model": served,
              "base_model": base_name, "backend": backend, "api_key": bool(api_key),
              "started_at": now(), "command": inv.display().replace(api_key, "***") if api_key else inv.display()}
    click.echo(f"swiftkit serve: starting {ref.label} on {host}:{port} as '{served}' ({backend}); log: {log}",
               err=True)
    if verify and not rows:
        click.echo("swiftkit serve: no verification answers of this target to compare with (verify it first: "
                   "`swiftkit verify TARGET`); serving unchecked", err=True)
    elif not verify:
        click.echo("swiftkit serve: --no-verify: the endpoint's answers are not checked", err=True)
    threshold = min_agreement if min_agreement is not None else (1.0 if ref.dtype == "float32" else 0.7)
    watch = _Watcher(f"http://{_client_host(host)}:{port}", api_key, served, rows, verify_dir, threshold,
                     ready_timeout, record, record_path)
    finished = supervise(inv.argv, inv.env, log, lambda _line: None, on_start=watch.start)
    watch.join()
    record.update({"stopped_at": now(), "returncode": finished.returncode})
    if watch.code is not None:
        record["exit_code"] = watch.code
        _write(record_path, record)
        return watch.code
    if finished.interrupted_by is not None and watch.ready:
        record["exit_code"] = EXIT_OK
        _write(record_path, record)
        click.echo("swiftkit serve: stopped; nothing is left running", err=True)
        return EXIT_OK
    diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
    code = diagnosis.exit_code if diagnosis else EXIT_FAILURE
    record.update({"exit_code": code, "diagnosis": diagnosis.message if diagnosis else None})
    _write(record_path, record)
    state = "after it was ready" if watch.ready else "before it was ready"
    click.echo(f"swiftkit serve: the server stopped {state} (exit {finished.returncode}): "
               f"{diagnosis.message if diagnosis else 'no reason in its log'}\n  full log: {log}", err=True)
    return code


def _questions(t: targets.Target) -> tuple[list[dict], Path | None]:
    """The tuned model's verified answers for this target, from its run record's verification."""
    if not t.record_path or not Path(t.record_path).is_file():
        return [], None
    record = json.loads(Path(t.record_path).read_text(encoding="utf-8"))
    answers = (record.get("verification") or {}).get("answers")
    if not answers:
        return [], None
    folder = Path(answers).parent
    return endpoint.expected_rows(folder), folder


def _rank(adapter: Path | None) -> int | None:
    """The adapter's LoRA rank (adapter_config.json's r), for vLLM's rank limit."""
    try:
        return int(json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    except (TypeError, OSError, ValueError, KeyError):
        return None


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _write(path: Path, record: dict) -> None:
    try:
        write_atomic(path, (json.dumps(record, indent=1, ensure_ascii=False) + "\n").encode())
    except OSError:
        pass  # the record is a convenience; the server's log holds what happened


class _Watcher:
    """Readiness, then verification, in a thread beside the supervision; stops the server when it fails."""

    def __init__(self, root, api_key, model, rows, verify_dir, threshold, timeout, record, record_path):
        self.root, self.api_key, self.model, self.rows = root, api_key, model, rows
        self.verify_dir, self.threshold, self.timeout = verify_dir, threshold, timeout
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
        waited = endpoint.wait_ready(self.root, lambda: _alive(pid), self.timeout)
        if waited is None:
            if _alive(pid):  # up but never healthy within the time: stopped, said so
                self.code = EXIT_FAILURE
                click.echo(f"swiftkit serve: not ready after {self.timeout:.0f} s; stopped", err=True)
                stop_group(pid)
            return
        self.record["ready_seconds"] = waited
        if self.rows:
            started = time.monotonic()
            found = endpoint.check(f"{self.root}/v1", self.api_key, self.model, self.rows,
                                   endpoint.base_answers(self.verify_dir), max_tokens=256)
            self.record["verification"] = {**found.to_dict(), "min_agreement": self.threshold,
                                           "seconds": round(time.monotonic() - started, 1)}
            if found.share < self.threshold:
                self.code = EXIT_CODES["serve_unverified"]
                _write(self.record_path, self.record)
                like = (f"; {found.like_base} of them as the base model answered" if found.like_base else "")
                click.echo(f"swiftkit serve: the endpoint does not answer as the tuned model: model '{self.model}' "
                           f"agreed on {found.agreed} of {found.asked} verified answers (needed "
                           f"{self.threshold:.0%}){like}" + (f"; errors: {found.errors[0]}" if found.errors else "")
                           + "\n  stopped; nothing is left running", err=True)
                stop_group(pid)
                return
            click.echo(f"swiftkit serve: verified: '{self.model}' gave the tuned model's answer to {found.agreed} of "
                       f"{found.asked} questions through the openai client", err=True)
        self.ready = True
        _write(self.record_path, self.record)
        click.echo(_ready_text(self.root, self.model, self.api_key, waited), err=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _ready_text(root: str, model: str, api_key: str | None, waited: float) -> str:
    key = ' -H "Authorization: Bearer $API_KEY"' if api_key else ""
    return (f"swiftkit serve: ready in {waited:.0f} s at {root}/v1, model '{model}' (Ctrl-C stops it)\n"
            f"  curl {root}/v1/chat/completions{key} -H 'Content-Type: application/json' \\\n"
            f"    -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Who are you?\"}}]}}'\n"
            f"  python: OpenAI(base_url=\"{root}/v1\", api_key={'API_KEY' if api_key else repr('none')})"
            f".chat.completions.create(model=\"{model}\", messages=[...])")
