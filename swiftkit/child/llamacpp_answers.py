"""Runs in a child process: a GGUF file answers questions in llama.cpp itself (xllamacpp), greedily.

argv[1] is a JSON spec: gguf (the file), questions (a JSONL file of {"key", "messages"}), out (the JSON file to
write), max_new_tokens, parallel (requests decoded together), threads (0: all cores).

llama.cpp formats each conversation with the chat template stored in the GGUF (Jinja) and stops at its
end-of-generation tokens: what is checked is the file as any llama.cpp-based tool will run it. Sampling is
greedy (temperature 0, top-k 1, no repetition penalty), as swiftkit's own verification asks ms-swift.
`out` is written whole (a temporary file renamed): {"answers": {key: text}, "finish": {key: reason},
"completion_tokens", "load_seconds", "seconds", "tokens_per_second", "system_info"}.
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> int:
    spec = json.loads(sys.argv[1])
    try:
        import xllamacpp as xlc
    except ImportError as exc:
        print(f"swiftkit-gguf: llama.cpp's Python binding (xllamacpp) cannot be imported: {exc}", flush=True)
        return 3
    questions = [json.loads(line) for line in open(spec["questions"], encoding="utf-8") if line.strip()]
    parallel = max(1, min(int(spec.get("parallel") or 4), len(questions) or 1))
    params = xlc.CommonParams()
    params.model.path = spec["gguf"]
    params.n_parallel = parallel
    params.n_ctx = parallel * int(spec.get("context_per_request") or 4096)
    params.use_jinja = True
    threads = int(spec.get("threads") or 0) or (os.cpu_count() or 1)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    started = time.monotonic()
    server = xlc.Server(params)
    load_seconds = time.monotonic() - started
    print(f"[llama.cpp] loaded {os.path.basename(spec['gguf'])} in {load_seconds:.1f} s; "
          f"{len(questions)} questions, {parallel} at a time", flush=True)

    def answer(q: dict) -> tuple[str, str, str, int]:
        result = server.handle_chat_completions({
            "messages": q["messages"], "max_tokens": int(spec["max_new_tokens"]), "temperature": 0.0, "top_k": 1,
            "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "seed": 0, "stream": False})
        if "choices" not in result:
            raise RuntimeError(f"llama.cpp answered {json.dumps(result)[:300]}")
        choice = result["choices"][0]
        return (q["key"], choice["message"].get("content") or "", choice.get("finish_reason") or "",
                int(result.get("usage", {}).get("completion_tokens") or 0))

    asked = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(answer, questions))
    seconds = time.monotonic() - asked
    tokens = sum(r[3] for r in results)
    out = {"answers": {k: a for k, a, _, _ in results}, "finish": {k: f for k, _, f, _ in results},
           "completion_tokens": tokens, "load_seconds": round(load_seconds, 2), "seconds": round(seconds, 2),
           "tokens_per_second": round(tokens / seconds, 2) if seconds else None, "parallel": parallel,
           "threads": threads, "system_info": xlc.get_system_info()}
    tmp = spec["out"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
    os.replace(tmp, spec["out"])
    print(f"[llama.cpp] {len(results)} answers, {tokens} tokens in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
