"""`swiftkit serve TARGET`: the tuned model behind an OpenAI-compatible API (`swift deploy`), said ready only
once it answers as the tuned model did.

The server runs under `process.supervise` in this thread (its log teed, Ctrl-C and SIGTERM stopping its whole
process group); a watcher thread polls its health, then asks it the run's verification questions through the
`openai` client, and stops it when its answers are not the tuned model's (exit 15). A server that dies while
loading ends the supervision at once, and its reason comes from its log (logparse.diagnose), never a hang.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from swiftkit import paths
from swiftkit.errors import EXIT_FAILURE, EXIT_OK, UserError
from swiftkit.flags.catalog import load_catalog
from swiftkit.logparse import diagnose
from swiftkit.process import supervise
from swiftkit.render import render_deploy
from swiftkit.results import targets
from swiftkit.results.record import now
from swiftkit.serve import endpoint
from swiftkit.serve.policy import access_problems, port_problem, slug
from swiftkit.serve.watch import Watcher, client_host, write_record


def serve(target: str, *, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
          backend: str | None = None, max_concurrency: int = 16, api_key: str | None = None,
          insecure: bool = False, verify: bool = True, min_agreement: float | None = None,
          ready_timeout: float = 900, model_type: str | None = None, template: str | None = None,
          quant: str | None = None) -> int:
    from swiftkit.serve import gguf

    if gguf.is_gguf_export(target):
        from swiftkit.commands.serve_gguf import serve_gguf

        return serve_gguf(target, quant=quant, host=host, port=port, name=name, max_concurrency=max_concurrency,
                          api_key=api_key, insecure=insecure, verify=verify, min_agreement=min_agreement,
                          ready_timeout=ready_timeout,
                          deploy_only={"--backend": backend, "--model-type": model_type, "--template": template})
    backend = backend or "transformers"
    t = targets.resolve(target, model_type=model_type, template=template)
    ref = t.ref()
    problems = _options_problems({"--quant": quant}) + access_problems(host, api_key, insecure)
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
    check = (lambda url: endpoint.check(url, api_key, served, rows, endpoint.base_answers(verify_dir),
                                        max_tokens=256)) if rows else None
    watch = Watcher(f"http://{client_host(host)}:{port}", api_key, served, check, threshold, ready_timeout, record,
                    record_path)
    finished = supervise(inv.argv, inv.env, log, lambda _line: None, on_start=watch.start)
    watch.join()
    record.update({"stopped_at": now(), "returncode": finished.returncode})
    if watch.code is not None:
        record["exit_code"] = watch.code
        write_record(record_path, record)
        return watch.code
    if finished.interrupted_by is not None and watch.ready:
        record["exit_code"] = EXIT_OK
        write_record(record_path, record)
        click.echo("swiftkit serve: stopped; nothing is left running", err=True)
        return EXIT_OK
    diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
    code = diagnosis.exit_code if diagnosis else EXIT_FAILURE
    record.update({"exit_code": code, "diagnosis": diagnosis.message if diagnosis else None})
    write_record(record_path, record)
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


def _options_problems(gguf_only: dict) -> list:
    """--quant and the like mean something only for a GGUF export."""
    from swiftkit.errors import Problem

    given = [flag for flag, value in gguf_only.items() if value]
    return [Problem(f"{', '.join(given)}: only for a GGUF export (swiftkit export TARGET --format gguf), which "
                    "llama.cpp's server runs", fix="leave it out, or pass the GGUF export dir")] if given else []
