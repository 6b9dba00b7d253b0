"""`swiftkit serve` of a GGUF export for real: llama.cpp's own server (xllamacpp) on the demo's tiny model,
verified through the openai client against the merged model's answers before it says ready; concurrent clients,
streaming and not; 401 without the key; SIGTERM leaves nothing running; a type below its threshold is stopped
with exit 15; a type not there and a file marked unverified are refused before anything loads."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import run_cli
from test_serve import free_port, gone as gone_within, pids_with, start as start_serve

from swiftkit.results import exports

KEY = "gguf-key-456"


@pytest.fixture(scope="module")
def gguf_dir(gguf_export):
    copy, code, err = gguf_export
    assert code == 0, err[-3000:]
    return next(copy.glob("v*-*/checkpoint-*-gguf"))


def start(target, port: int, *extra: str) -> tuple[subprocess.Popen, str]:
    proc, lines = start_serve(target, port, *extra, wait=180)
    return proc, "".join(lines)


def server_pids(port: int) -> list[int]:
    return pids_with("serve_gguf.py", f'"port": {port},')


def gone(port: int) -> bool:
    return gone_within(lambda: server_pids(port), timeout=20)


@pytest.mark.e2e
def test_served_by_llama_cpp_verified_concurrent_401_without_the_key_and_sigterm_stops_it(gguf_dir):
    from openai import AuthenticationError, OpenAI

    port = free_port()
    proc, text = start(gguf_dir, port, "--api-key", KEY)
    try:
        assert "swiftkit serve: starting swift-robot-f32.gguf (f32: best agreement of the verified types" in text, text
        assert "--quant picks another of f32, q8_0) in llama.cpp's server" in text
        assert "swiftkit serve: verified: 'swift-robot' gave the merged model's answer to " in text
        assert f" s at http://127.0.0.1:{port}/v1, model 'swift-robot' (Ctrl-C stops it)" in text
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list()] == ["swift-robot"]
        question = [{"role": "user", "content": "Who are you?"}]

        def ask(i: int) -> str:
            if i % 2:
                chunks = client.chat.completions.create(model="swift-robot", messages=question, temperature=0,
                                                        max_tokens=48, stream=True)
                return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return client.chat.completions.create(model="swift-robot", messages=question, temperature=0,
                                                  max_tokens=48).choices[0].message.content

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        assert all("Swift-Robot" in a for a in answers) and len(set(answers)) == 1, answers
        with pytest.raises(AuthenticationError) as err:  # a wrong key
            OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="wrong", max_retries=0).chat.completions.create(
                model="swift-robot", messages=question)
        assert err.value.status_code == 401
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", method="POST",
                                         data=json.dumps({"messages": question}).encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as missing:  # no key at all
            urllib.request.urlopen(request, timeout=30)
        assert missing.value.code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "swiftkit serve: stopped; nothing is left running" in out
    assert gone(port)
    record = json.loads((gguf_dir / f"serve-{port}.json").read_text())
    assert record["type"] == "f32" and record["model"] == "swift-robot" and record["port"] == port
    assert record["verification"]["agreed"] == record["verification"]["asked"] > 100
    assert record["verification"]["min_agreement"] == 0.9 and record["exit_code"] == 0 and record["stopped_at"]
    assert KEY not in json.dumps(record) and KEY not in (gguf_dir / f"serve-{port}.log").read_text()
    assert exports.problems(gguf_dir) == []  # the record and the log beside the files leave the export whole


@pytest.mark.e2e
def test_a_type_below_its_threshold_is_stopped_with_exit_15_naming_the_model(gguf_dir):
    agreement = json.loads((gguf_dir / exports.MARKER).read_text())["gguf"]["q8_0"]["agreement"]
    if agreement == 1.0:
        pytest.skip("q8_0 answered every probe as the merged model: no threshold it falls below")
    port = free_port()
    proc, text = start(gguf_dir, port, "--quant", "q8_0", "--min-agreement", "1", "--name", "robot-q8")
    out, _ = proc.communicate(timeout=120)
    text += out
    assert proc.returncode == 15, text[-3000:]
    assert "starting swift-robot-q8_0.gguf (q8_0, as asked)" in text
    assert "swiftkit serve: the endpoint does not answer as the merged model: model 'robot-q8' agreed on" in text
    assert "(needed 100%)" in text and "stopped; nothing is left running" in text
    assert gone(port)


def test_a_type_not_there_and_a_file_marked_unverified_are_refused_before_anything_loads(gguf_dir, tmp_path):
    code, _, err = run_cli("serve", str(gguf_dir), "--quant", "bf16", "--port", str(free_port()))
    assert code == 2 and f"the GGUF export {gguf_dir} has no bf16 file; it holds f32, q8_0" in err
    assert "nothing was started" in err and "Traceback" not in err
    copy = tmp_path / gguf_dir.name
    shutil.copytree(gguf_dir, copy)
    marker = json.loads((copy / exports.MARKER).read_text())
    marker["gguf"]["q8_0"].update(verified=False, agreement=0.5)
    (copy / exports.MARKER).write_text(json.dumps(marker))
    code, _, err = run_cli("serve", str(copy / "swift-robot-q8_0.gguf"), "--backend", "vllm", "--port", str(free_port()))
    assert code == 2 and "swift-robot-q8_0.gguf is marked NOT verified: llama.cpp answered as the merged model in " \
                         "50.0% of the probes" in err
    assert "--backend vllm: only for `swift deploy`" in err and "--no-verify to serve it unchecked" in err
