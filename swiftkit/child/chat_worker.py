"""Runs in a child process for `swiftkit chat`: ms-swift's own inference engine behind a line protocol.

argv[1] is a JSON spec (model, adapters, model_type, template, dtype, max_new_tokens). Requests
arrive on stdin, one JSON object a line: {"messages": [...]}, with "base": true for the base model's
answer (the adapter disabled for that answer, as verification does: one engine, one model load). Replies go to the original stdout,
one JSON object a line: {"ready": ...} once loaded, then per request {"delta": "..."} pieces and
{"end": true}. Everything else the libraries print (logs, warnings) is sent to stderr, which the
parent keeps in the chat log, so it can never corrupt the protocol. Generation is ms-swift's.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys


def _protocol_stream():
    """The real stdout for replies; fd 1 then points at stderr for any stray print."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def main() -> int:
    spec = json.loads(sys.argv[1])
    out = _protocol_stream()
    import torch
    from swift.infer_engine import InferRequest, RequestConfig, TransformersEngine

    dtype = getattr(torch, spec["dtype"]) if spec.get("dtype") else None
    engine = TransformersEngine(spec["model"], adapters=spec.get("adapters") or None, model_type=spec.get("model_type"),
                                template_type=spec.get("template"), torch_dtype=dtype)
    out.write(json.dumps({"ready": True, "device": str(engine.model.device)}) + "\n")
    config = RequestConfig(max_tokens=spec.get("max_new_tokens"), temperature=0, stream=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        asked = json.loads(line)
        request = InferRequest(messages=asked["messages"])
        with (engine.model.disable_adapter() if asked.get("base") else contextlib.nullcontext()):
            for chunk in engine.infer([request], config, use_tqdm=False)[0]:
                delta = chunk.choices[0].delta.content if chunk and chunk.choices else None
                if delta:
                    out.write(json.dumps({"delta": delta}, ensure_ascii=False) + "\n")
        out.write(json.dumps({"end": True}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
