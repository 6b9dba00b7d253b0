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
from swiftkit.errors import EXIT_FAILURE, UserError
from swiftkit.flags.catalog import load_catalog
from swiftkit.logparse import diagnose
from swiftkit.process import Finished
from swiftkit.render import render_deploy
from swiftkit.results import targets
from swiftkit.results.record import now
from swiftkit.serve import endpoint
from swiftkit.serve.policy import access_problems, pick_backend, port_problem, slug
from swiftkit.serve.watch import Watcher, client_host, supervise_server


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
                          deploy_only={"--backend": backend if backend != "auto" else None,
                                       "--model-type": model_type, "--template": template})
    t = targets.resolve(target, model_type=model_type, template=template)
    ref = t.ref()
    backend, why = pick_backend(backend, ref.env)
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
    click.echo(f"swiftkit serve: starting {ref.label} on {host}:{port} as '{served}' ({backend}, {why}); log: {log}",
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
    return supervise_server(inv.argv, inv.env, log, watch, record, record_path, server="the server",
                            reason=_diagnosis)


def _diagnosis(finished: Finished) -> tuple[int, str | None]:
    """ms-swift's reason for a server that stopped on its own, and the exit code it means."""
    diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
    return (diagnosis.exit_code, diagnosis.message) if diagnosis else (EXIT_FAILURE, None)


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
