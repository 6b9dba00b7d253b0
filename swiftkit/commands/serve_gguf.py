"""`swiftkit serve GGUF_EXPORT [--quant Q]`: one GGUF file of an export behind llama.cpp's own server, said ready
only once it answers as the merged model it was made from.

llama-server runs in child/serve_gguf.py (xllamacpp, in-process) under `process.supervise`, as `swift deploy`
does: its log teed beside the export, Ctrl-C and SIGTERM stopping its process group, a watcher thread polling
its health. Then the probes the export checked the file with (identity and general) go through the endpoint
with the openai client, greedy, and each answer must equal the merged model's (cached under its fingerprint
when the export asked it) in at least the share the export needed for the type; else the server is stopped and
the exit is 15.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from swiftkit import paths
from swiftkit.errors import EXIT_FAILURE, Problem, UserError
from swiftkit.results import targets
from swiftkit.results.record import now
from swiftkit.run.progress import Reporter
from swiftkit.serve import endpoint, gguf
from swiftkit.serve.policy import access_problems, port_problem
from swiftkit.serve.watch import Watcher, client_host, supervise_server
from swiftkit.verify.ask import prompt_messages, row_key

CHILD = paths.PACKAGE_DIR / "child" / "serve_gguf.py"
# Greedy as the export's check asked llama.cpp (child/llamacpp_answers.py): llama-server's own sampling
# defaults (top-k 40, min-p 0.05) leave temperature 0 greedy, and these make it so whatever they become.
GREEDY = {"top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "seed": 0}


def serve_gguf(target: str, *, quant: str | None = None, host: str = "127.0.0.1", port: int = 8000,
               name: str | None = None, max_concurrency: int = 16, api_key: str | None = None,
               insecure: bool = False, verify: bool = True, min_agreement: float | None = None,
               ready_timeout: float = 900, deploy_only: dict | None = None) -> int:
    found = gguf.locate(target)
    assert found is not None, target  # commands/serve.py sends only GGUF exports here
    q, why, problems = gguf.choose(found.info, quant, found.file, found.folder)
    problems = gguf.deploy_only_problems(deploy_only or {}) + problems
    if q is not None:
        problems += gguf.file_problems(found, q, verify)
    problems += access_problems(host, api_key, insecure)
    busy = port_problem(host, port)
    if busy is not None:
        problems.append(busy)
    source = None
    if verify and q is not None and not problems:
        source, source_problem = _source(found)
        problems += [source_problem] if source_problem else []
    if problems:
        raise UserError(problems, headline=f"swiftkit serve {target}: nothing was started")
    entry = found.info.gguf[q]
    served = name or gguf.served_name(found.info, q)
    gguf_path = found.folder / entry["file"]
    threshold = gguf.threshold(found.info, q, min_agreement)
    rows, max_tokens = _rows(source, found.folder) if source is not None else ([], 0)
    log, record_path = found.folder / f"serve-{port}.log", found.folder / f"serve-{port}.json"
    parallel = max_concurrency
    spec = {"gguf": str(gguf_path), "host": host, "port": port, "alias": served, "parallel": parallel,
            "threads": 0, "ctx": 0}
    record = {"target": str(gguf_path), "export": str(found.folder), "type": q, "server": "llama.cpp (xllamacpp)",
              "host": host, "port": port, "model": served, "api_key": bool(api_key), "parallel": parallel,
              "started_at": now(), "export_agreement": entry.get("agreement")}
    click.echo(f"swiftkit serve: starting {entry['file']} ({why}) in llama.cpp's server on {host}:{port} as "
               f"'{served}'; log: {log}", err=True)
    if not verify:
        click.echo("swiftkit serve: --no-verify: the endpoint's answers are not checked", err=True)
    check = (lambda url: endpoint.check(url, api_key, served, rows, {}, max_tokens=max_tokens,
                                        workers=min(8, parallel), exact=True, extra=GREEDY)) if rows else None
    watch = Watcher(f"http://{client_host(host)}:{port}", api_key, served, check, threshold, ready_timeout, record,
                    record_path, reference="the merged model")
    env = {"OMP_NUM_THREADS": str(os.cpu_count() or 1), **({"SWIFTKIT_SERVE_API_KEY": api_key} if api_key else {})}
    return supervise_server([sys.executable, str(CHILD), json.dumps(spec)], env, log, watch, record, record_path,
                            server="llama.cpp's server", reason=lambda finished: (EXIT_FAILURE, _reason(finished.tail)))


def _source(found: gguf.Located) -> tuple[targets.Target | None, Problem | None]:
    """The merged export the GGUF was made from: its answers are the reference."""
    try:
        return targets.resolve(found.info.source), None
    except UserError as exc:
        return None, Problem(f"the merged export this GGUF was made from cannot be read ({found.info.source}): "
                             f"{exc.problems[0].message}", fix="restore it, or pass --no-verify to serve unchecked")


def _rows(source: targets.Target, folder: Path) -> tuple[list[dict], int]:
    """(messages, response) rows: each probe as the export's check sent it, with the merged model's answer; and
    the answers' token limit, the export's."""
    from swiftkit.commands.export_gguf import probes_of, reference

    settings, probes = probes_of(source)
    work = source.path.parent / "exports" / folder.name
    answers = reference(source, probes, settings, work, Reporter())
    system = source.ref().system
    return [{"messages": prompt_messages(p, system), "response": answers[row_key(p)]}
            for p in probes if row_key(p) in answers], settings.max_new_tokens


def _reason(tail: list[str]) -> str:
    said = [line.split(":", 1)[1].strip() for line in tail if line.startswith("swiftkit-gguf:")]
    if said:
        return said[-1]
    errors = [line.strip() for line in tail if " E " in line or "error" in line.lower()]
    return (errors[-1] if errors else (tail[-1].strip() if tail else "no reason in its log"))[:300]
