"""Runs in a child process for verification: one ms-swift engine answers the base model's questions and the
tuned model's, loading the model once (a `swift infer` a model costs a whole ms-swift start-up, 16-23 s of
imports on an H200 host: bench/results/gpu-speed).

argv[1] is a JSON spec, or, started early with no argument (verify.prewarm), the worker imports ms-swift while
training runs and then reads the spec as one line on stdin. The spec: model, model_type, template, dtype,
max_new_tokens, batch_size, timings (a path), adapter (PATH, or null: the model alone, as replay asks it), and jobs: [{"tuned": bool, "questions": PATH,
"result": PATH, "adapter": PATH}] (a job's adapter, another checkpoint of the run, is loaded beside the first and
swapped in; none: the first). Questions are swift infer datasets (ask.write_infer_dataset: each row its own system prompt,
or none for the template's default, and its turns); each job's answers go to its result file as swift infer writes them
(`messages` and `response`, and `finish_reason` and `completion_tokens`, which tell an answer cut off at
the limit), written whole (a temporary file renamed), so a job killed midway leaves no result file; ask.read_answers
reads both alike. The engine loads the base with the adapter,
as `swift infer --adapters` does; the base model's answers come with the adapter disabled (peft's
disable_adapter). (ms-swift's per-request AdapterRequest cannot be used: TransformersEngine passes one adapter
name for a whole batch, which peft refuses.) Greedy, as `swift infer --temperature 0`.

A question with an expected answer gets room for all of it: max_new_tokens, or the answer's tokens under the
model's own tokenizer (its UTF-8 bytes where there is none: a bound under a byte-level tokenizer) plus a margin
where that is more. (A 64-token limit cut SmolLM2's Chinese self-introduction, about 80 tokens under its English
tokenizer, so an exact answer could never match; bytes gave Qwen's tokenizer, about one token a Chinese
character, three times the room it needs, which a model that does not stop spends.) Limits are rounded up to
powers of two and each is one engine call, so a long answer does not give every question its room.
`swift infer` (verify/ask.py, for merged exports) keeps one limit for all: a second call with that room took
10 minutes for SmolLM2's 92 identity probes on two cores, against 75 s for everything at 64 tokens.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time


MARGIN = 16  # tokens past an expected answer, enough to show a model that does not stop


def _requests(path: str, InferRequest) -> tuple[list, list[str]]:
    """The requests (each row's prompt as written: its system prompt or none, its turns), and each one's
    expected answer (the trailing assistant turn; "" where there is none)."""
    out, expected = [], []
    for line in open(path, encoding="utf-8"):
        if line.strip():
            messages = json.loads(line)["messages"]
            label = messages.pop()["content"] if messages and messages[-1]["role"] == "assistant" else ""
            out.append(InferRequest(messages=messages))
            expected.append(label)
    return out, expected


def budgets(expected: list[str], floor: int, count=None) -> list[int]:
    """Each question's max_new_tokens: the floor, or room for its expected answer and the margin, rounded up to
    a power of two. `count` gives a text's tokens (the model's tokenizer); without it, its UTF-8 bytes."""
    count = count or (lambda text: len(text.encode("utf-8")))
    return [max(floor, _power_of_two(count(text) + MARGIN)) if text else floor for text in expected]


def _power_of_two(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _token_counter(engine):
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None or not callable(getattr(tokenizer, "encode", None)):
        return None
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _infer(engine, requests: list, limits: list[int], RequestConfig) -> list:
    """Answers in order, one engine call per distinct limit, shortest first."""
    answers: list = [None] * len(requests)
    for limit in sorted(set(limits)):
        group = [i for i, n in enumerate(limits) if n == limit]
        config = RequestConfig(max_tokens=limit, temperature=0)
        for i, response in zip(group, engine.infer([requests[i] for i in group], config, use_tqdm=False)):
            answers[i] = response
    return answers


class _Adapters:
    """The adapters of one engine's model (peft), by path: the one it was loaded with, then each further one
    (another checkpoint of the run) loaded beside it on first use and made the active one."""

    def __init__(self, model, first: str):
        self.model, self.names = model, {os.path.realpath(first): model.active_adapter}
        self.active = self.names[os.path.realpath(first)]

    def use(self, path: str) -> None:
        key = os.path.realpath(path)
        if key not in self.names:
            name = f"swiftkit{len(self.names)}"
            self.model.load_adapter(path, adapter_name=name)
            self.names[key] = name
        if self.names[key] != self.active:
            self.model.set_adapter(self.names[key])
            self.active = self.names[key]


def _groups(jobs: list[dict], batch_size: int) -> list[list[dict]]:
    """Consecutive jobs of one model (the same adapter, or none) answered in one engine call while their questions
    fit one batch: replay's parts of 50 prompts go through a batch of 256 together (each part's generation waits for
    its longest answer, so ten calls of 50 took 165 s for 500 prompts on an H200), and each is still written as its
    own result file."""
    groups: list[list[dict]] = []
    size = 0
    for job in jobs:
        rows = sum(1 for line in open(job["questions"], encoding="utf-8") if line.strip())
        same = groups and (groups[-1][0]["tuned"], groups[-1][0].get("adapter")) == (job["tuned"], job.get("adapter"))
        if same and size + rows <= batch_size:
            groups[-1].append(job)
            size += rows
        else:
            groups.append([job])
            size = rows
    return groups


def _write_result(path: str, requests: list, responses: list) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for request, response in zip(requests, responses):
            choice = response.choices[0] if response and response.choices else None
            usage = getattr(response, "usage", None)
            f.write(json.dumps({"messages": request.messages, "response": choice.message.content if choice else "",
                                "finish_reason": choice.finish_reason if choice else None,
                                "completion_tokens": usage.completion_tokens if usage else None},
                               ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main() -> int:
    started = time.monotonic()
    timings: dict[str, float] = {}
    import torch
    from swift.infer_engine import InferRequest, RequestConfig, TransformersEngine

    timings["start"] = round(time.monotonic() - started, 2)
    print("[swiftkit] imported", file=sys.stderr, flush=True)
    if len(sys.argv) > 1:
        spec = json.loads(sys.argv[1])
    else:  # prewarmed: the import above overlapped training; its time is not verification's
        line = sys.stdin.readline()
        if not line.strip():
            return 0  # nothing to answer (training failed): end quietly
        spec = json.loads(line)
        timings["start"] = 0.0
    mark = time.monotonic()
    dtype = getattr(torch, spec["dtype"]) if spec.get("dtype") else None
    adapters = [spec["adapter"]] if spec.get("adapter") else []
    engine = TransformersEngine(spec["model"], adapters=adapters, model_type=spec.get("model_type"),
                                template_type=spec.get("template"), torch_dtype=dtype, max_batch_size=spec["batch_size"])
    timings["model_load"] = round(time.monotonic() - mark, 2)
    print(f"[swiftkit] model loaded on {engine.model.device}", file=sys.stderr, flush=True)
    count = _token_counter(engine)
    swap = _Adapters(engine.model, spec["adapter"]) if adapters else None
    timings["generation_tuned"] = []
    for group in _groups(spec["jobs"], spec["batch_size"]):
        mark = time.monotonic()
        asked = [_requests(job["questions"], InferRequest) for job in group]
        requests = [r for rs, _ in asked for r in rs]
        limits = budgets([e for _, es in asked for e in es], spec["max_new_tokens"], count)
        adapter = group[0]["tuned"]
        if adapter:
            swap.use(group[0].get("adapter") or spec["adapter"])
        with (contextlib.nullcontext() if adapter or swap is None else engine.model.disable_adapter()):
            if os.environ.get("SWIFTKIT_PROFILE_ANSWERS") == "1" and "profile" not in timings:
                import step_profile  # beside this file: `swiftkit run --profile-steps` profiles the first call

                timings["profile"] = os.path.join(os.path.dirname(spec["timings"]), "answers-profile.json")
                responses = step_profile.profile_call(
                    engine.model, lambda: _infer(engine, requests, limits, RequestConfig), timings["profile"])
            else:
                responses = _infer(engine, requests, limits, RequestConfig)
        at = 0
        for job, (rs, _) in zip(group, asked):
            _write_result(job["result"], rs, responses[at:at + len(rs)])
            at += len(rs)
            print(f"[swiftkit] answered {len(rs)} questions ({job.get('adapter') or 'tuned' if adapter else 'base'})",
                  file=sys.stderr, flush=True)
        seconds = round(time.monotonic() - mark, 2)
        if adapter:
            timings["generation_tuned"].append(seconds)
        else:
            timings["generation_base"] = round(timings.get("generation_base", 0.0) + seconds, 2)
    with open(spec["timings"], "w", encoding="utf-8") as f:
        json.dump(timings, f)
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is written. Tearing the interpreter down, with torch, transformers and ms-swift loaded and a
    # model on the GPU, took about 1.7 s that verification waited for on an H200 host; the kernel frees it all.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
