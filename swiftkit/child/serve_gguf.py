"""Runs in a child process: llama.cpp's own HTTP server (llama-server, in-process through xllamacpp) serving one
GGUF file, OpenAI-compatible (/v1/chat/completions streaming and not, /v1/models, /health), until SIGINT or
SIGTERM.

argv[1] is a JSON spec: gguf (the file), host, port, alias (the model name clients send and /v1/models lists),
parallel (slots decoding together), threads (0: all cores), ctx (tokens of KV cache shared by the slots; 0: the
model's training context). The API key comes in SWIFTKIT_SERVE_API_KEY (never on a command line): with it,
llama-server answers 401 to a request without it (/health stays open, for readiness).

The chat template is the one stored in the file (Jinja), with its stop tokens: the template the export
checked. llama-server owns the HTTP side (its own thread pool); this process only waits for a signal, then
leaves at once (os._exit: the server's threads hold nothing that must be flushed).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        import xllamacpp as xlc
    except ImportError as exc:
        print(f"swiftkit-gguf: llama.cpp's Python binding (xllamacpp) cannot be imported: {exc}", flush=True)
        return 3
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stop.set())
    params = xlc.CommonParams()
    params.model.path = spec["gguf"]
    params.hostnames = [spec["host"]]
    params.port = int(spec["port"])
    params.model_alias = {spec["alias"]}
    key = os.environ.pop("SWIFTKIT_SERVE_API_KEY", "")
    params.api_keys = [key] if key else []
    params.n_parallel = max(1, int(spec.get("parallel") or 4))
    params.kv_unified = True  # the slots share one cache: a long request may use what idle slots leave
    params.n_ctx = int(spec.get("ctx") or 0)
    params.use_jinja = True
    threads = int(spec.get("threads") or 0) or (os.cpu_count() or 1)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    started = time.monotonic()
    try:
        server = xlc.Server(params)
    except Exception as exc:  # noqa: BLE001 - llama.cpp's reason, said on the line swiftkit reads
        print(f"swiftkit-gguf: llama.cpp could not start its server: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"[llama.cpp] serving {os.path.basename(spec['gguf'])} as '{spec['alias']}' at "
          f"{server.listening_address} ({params.n_parallel} slots, {threads} threads); loaded in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    while not stop.wait(1.0):
        pass
    print("[llama.cpp] stopping", flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
