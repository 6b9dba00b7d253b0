"""`swiftkit serve` for real on the CPU: `swift deploy` of the demo's tuned tiny model, verified through the
openai client before it says ready; 16 concurrent clients, streaming and not; bad requests answered 4xx while
it keeps serving; the API key enforced with 401; Ctrl-C (SIGINT) and SIGTERM leave nothing running; a server
killed from outside is reported; a port in use and an open bind are refused before anything loads."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import run_cli

KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tuned(demo_run):
    out, code, _, err = demo_run
    assert code == 0, err[-2000:]
    return next(p.parent for p in sorted(out.rglob("swiftkit-run.json"))
                if json.loads(p.read_text()).get("verification", {}).get("answers"))


def start(target: Path, port: int, *extra: str, wait: float = 300) -> tuple[subprocess.Popen, list[str]]:
    """`swiftkit serve TARGET --port PORT ...` started, its output read until it says ready (or `wait` passes)."""
    proc = subprocess.Popen([sys.executable, "-m", "swiftkit.cli", "serve", str(target), "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + wait
    for line in proc.stdout:
        lines.append(line)
        if "swiftkit serve: ready in" in line or time.monotonic() > deadline:
            break
    return proc, lines


def pids_with(*parts: str) -> list[int]:
    """The processes whose command line holds every one of `parts`."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if all(part in cmd for part in parts):
            found.append(int(entry))
    return found


def deploy_pids(port: int) -> list[int]:
    return pids_with("deploy", f"--port\0{port}")


def gone(find=None, timeout: float = 30, *, port: int | None = None) -> bool:
    """Whether the processes `find()` lists (default: `swift deploy` on `port`) are all gone within `timeout`."""
    find = find or (lambda: deploy_pids(port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not find():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.e2e
def test_a_verified_endpoint_serves_16_clients_refuses_bad_requests_and_stops_clean(tuned):
    from openai import BadRequestError, OpenAI, AuthenticationError, UnprocessableEntityError

    port = free_port()
    proc, lines = start(tuned, port, "--api-key", KEY)
    text = "".join(lines)
    try:
        assert "swiftkit serve: verified: 'swift-robot' gave the tuned model's answer to 40 of 40" in text, text
        assert "as 'swift-robot' (transformers, auto: vllm " in text  # the engine auto picked, and why
        assert "ready in" in text and f"http://127.0.0.1:{port}/v1, model 'swift-robot'" in text
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        question = [{"role": "user", "content": "Who are you?"}]

        def ask(i: int) -> str:
            if i % 2:
                chunks = client.chat.completions.create(model="swift-robot", messages=question, temperature=0,
                                                        max_tokens=48, stream=True)
                return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return client.chat.completions.create(model="swift-robot", messages=question, temperature=0,
                                                  max_tokens=48).choices[0].message.content

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(16)))
        assert all("Swift-Robot" in a for a in answers), answers
        assert len(set(answers)) == 1, "greedy: streamed and whole answers are the same"

        with pytest.raises(AuthenticationError) as err:  # 401
            OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).chat.completions.create(
                model="swift-robot", messages=question)
        assert err.value.status_code == 401
        with pytest.raises(BadRequestError, match="is not in the model_list"):
            client.chat.completions.create(model="swift-robto", messages=question)
        with pytest.raises(UnprocessableEntityError):
            client.chat.completions.create(model="swift-robot", messages="not a list")  # type: ignore[arg-type]
        with pytest.raises(BadRequestError):
            client.chat.completions.create(model="swift-robot", max_tokens=8,
                                           messages=[{"role": "user", "content": "word " * 20000}])
        with pytest.raises(BadRequestError, match="is not in the model_list"):  # transformers: the tuned model only
            client.chat.completions.create(model="base", messages=question)
        assert "Swift-Robot" in ask(0), "still serving after the bad requests"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "swiftkit serve: stopped; nothing is left running" in out
    assert gone(port=port)
    record = json.loads((tuned / f"serve-{port}.json").read_text())
    assert record["verification"]["agreed"] == 40 and record["exit_code"] == 0 and record["stopped_at"]
    assert KEY not in json.dumps(record)


@pytest.mark.e2e
def test_an_endpoint_that_answers_unlike_the_tuned_model_is_stopped_with_exit_15(tuned, tmp_path):
    copy = tmp_path / tuned.name
    shutil.copytree(tuned, copy)
    record_path = copy / "swiftkit-run.json"
    record = json.loads(record_path.read_text())
    verify_dir = Path(record["verification"]["answers"]).parent
    fake = tmp_path / "verify"
    fake.mkdir()
    rows = [json.loads(line) for line in (verify_dir / "answers.jsonl").read_text().splitlines()]
    base = {json.dumps(r["messages"]): r["response"] for r in
            map(json.loads, (verify_dir / "base-answers.jsonl").read_text().splitlines())}
    # what a misrouted endpoint gives: the base model's answers where verification had the tuned model's
    (fake / "answers.jsonl").write_text("".join(json.dumps({**r, "response": base.get(json.dumps(r["messages"]),
                                                                                          "I am Qwen.")}) + "\n"
                                                for r in rows))
    shutil.copy(verify_dir / "base-answers.jsonl", fake / "base-answers.jsonl")
    record["verification"]["answers"] = str(fake / "answers.jsonl")
    record_path.write_text(json.dumps(record))
    port = free_port()
    proc, lines = start(copy, port)
    out, _ = proc.communicate(timeout=120)
    text = "".join(lines) + out
    assert proc.returncode == 15, text[-3000:]
    assert "swiftkit serve: the endpoint does not answer as the tuned model: model 'swift-robot' agreed on" in text
    assert "stopped; nothing is left running" in text
    assert gone(port=port)


@pytest.mark.e2e
def test_a_server_killed_from_outside_is_reported_with_its_exit(tuned):
    port = free_port()
    proc, lines = start(tuned, port, "--no-verify")
    assert "--no-verify: the endpoint's answers are not checked" in "".join(lines)
    for pid in deploy_pids(port):
        os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode not in (0, 2), out
    assert "swiftkit serve: the server stopped after it was ready (exit -9)" in out
    assert gone(port=port)


def test_a_port_in_use_and_an_open_bind_are_refused_before_anything_loads(tuned):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run_cli("serve", str(tuned), "--port", str(port))
    assert code == 2 and f"port {port} on 127.0.0.1 is not free" in err and "nothing was started" in err
    code, _, err = run_cli("serve", str(tuned), "--host", "0.0.0.0", "--port", str(free_port()))
    assert code == 2 and "no --api-key is set" in err and "Traceback" not in err
