"""`swiftkit serve` under load: time to ready (verification included), and latency and throughput for one
client and for 16 at once, through the official openai client.

    python bench/serve_load.py TARGET --label NAME [--no-verify] [--requests 8] [--max-tokens 64] [--clients 1,16]
                                                   [--quant Q] [--raw-gguf] [--min-agreement F]

One client asks `--requests` questions one after another; then 16 clients (or each count of `--clients`) ask
`--requests` each, at once. The questions are identity and general prompts; completion tokens come from the
server's usage counts. A GGUF export as TARGET is served by llama.cpp's server (`--quant` picks the type).
`--raw-gguf`: TARGET is a .gguf file that is no swiftkit export (a stock model), started directly in the child
swiftkit serve runs for GGUF exports (child/serve_gguf.py), with nothing to verify it against. Appends a
section to bench/results/serve.md.
"""
from __future__ import annotations

import argparse
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from common import SWIFTKIT, machine

QUESTIONS = ["Who are you?", "你是谁？", "What is 12 times 7?", "Translate 'good morning' into Chinese.",
             "Name three primary colours.", "写一句关于春天的话。", "What is the capital of France?", "Say hello."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(client, model: str, clients: int, requests: int, max_tokens: int) -> dict:
    def one(i: int) -> tuple[float, int]:
        start = time.perf_counter()
        reply = client.chat.completions.create(model=model, temperature=0, max_tokens=max_tokens,
                                               messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
        return time.perf_counter() - start, reply.usage.completion_tokens if reply.usage else 0

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = list(pool.map(one, range(clients * requests)))
    wall = time.perf_counter() - start
    latencies = sorted(d for d, _ in done)
    tokens = sum(t for _, t in done)
    return {"clients": clients, "requests": len(done), "wall_s": round(wall, 2),
            "latency_median_s": round(latencies[len(latencies) // 2], 2), "latency_max_s": round(latencies[-1], 2),
            "tokens": tokens, "tokens_per_s": round(tokens / wall, 1)}


def serve_flags(a) -> list[str]:
    """What this bench passes on to `swiftkit serve`."""
    return ((["--no-verify"] if a.no_verify else []) + (["--quant", a.quant] if a.quant else [])
            + (["--min-agreement", str(a.min_agreement)] if a.min_agreement is not None else []))


def start_serve(a, port: int) -> tuple[subprocess.Popen, str | None, list[str]]:
    proc = subprocess.Popen([*SWIFTKIT, "serve", a.target, "--port", str(port), *serve_flags(a)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    model, log = None, []
    for line in proc.stdout:
        log.append(line)
        if (m := re.search(r"ready in .* model '([^']+)'", line)):
            model = m.group(1)
            break
    return proc, model, log


def start_raw_gguf(a, port: int) -> tuple[subprocess.Popen, str | None, list[str]]:
    """The GGUF file in child/serve_gguf.py, as swiftkit serve starts it, ready when /health answers."""
    import json
    import urllib.request

    from common import ROOT

    spec = {"gguf": a.target, "host": "127.0.0.1", "port": port, "alias": "model", "parallel": max(a.clients),
            "threads": 0, "ctx": 0}
    proc = subprocess.Popen([sys.executable, str(ROOT / "swiftkit" / "child" / "serve_gguf.py"), json.dumps(spec)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, "model", ["llama.cpp's server, started directly: no swiftkit export to verify against"]
        except OSError:
            time.sleep(0.2)
    return proc, None, [f"child exited {proc.returncode}"]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("target")
    p.add_argument("--label", required=True)
    p.add_argument("--no-verify", action="store_true")
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--clients", type=lambda t: [int(c) for c in t.split(",")], default=[1, 16])
    p.add_argument("--quant")
    p.add_argument("--raw-gguf", action="store_true")
    p.add_argument("--min-agreement", type=float, help="passed to swiftkit serve (0: measure, never refuse)")
    a = p.parse_args()
    from openai import OpenAI

    port = free_port()
    start = time.perf_counter()
    proc, model, log = (start_raw_gguf if a.raw_gguf else start_serve)(a, port)
    ready = time.perf_counter() - start
    if model is None:
        sys.exit("".join(log))
    verified = next((line.strip() for line in log if "verified:" in line),
                    log[0] if a.raw_gguf else "not verified (--no-verify)")
    engine = next((m.group(1) for t in log if (m := re.search(r"' \((transformers|vllm), ", t))), "transformers")
    server = ("llama.cpp's server (xllamacpp)" if a.raw_gguf or any("llama.cpp's server" in t for t in log)
              else f"backend {engine}")
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0, timeout=900)
    try:
        rows = [load(client, model, n, a.requests, a.max_tokens) for n in a.clients]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    flags = "".join(f" {f}" for f in serve_flags(a) + (["--raw-gguf"] if a.raw_gguf else [])
                    + (["--clients", ",".join(map(str, a.clients))] if a.clients != [1, 16] else []))
    lines = [f"\n## {a.label}\n", f"`python bench/serve_load.py {a.target} --label '{a.label}'"
             f"{flags} --requests {a.requests} --max-tokens {a.max_tokens}`; {machine()}; {server}\n",
             (f"- time to ready: {ready:.1f} s from starting the child to /health answering ({verified})\n"
              if a.raw_gguf else f"- time to ready: {ready:.1f} s from `swiftkit serve` to its ready line ({verified})\n"),
             "\n| clients | requests | wall s | median latency s | max latency s | completion tokens | tokens/s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['clients']} | {r['requests']} | {r['wall_s']} | {r['latency_median_s']} | {r['latency_max_s']} "
              f"| {r['tokens']} | {r['tokens_per_s']} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = __import__("common").RESULTS / "serve.md"
    if not out.exists():
        out.write_text("# swiftkit serve under load\n\nWritten by bench/serve_load.py, one section per run.\n")
    with open(out, "a", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
