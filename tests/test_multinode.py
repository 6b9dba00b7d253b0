"""Two "nodes" on one host, on the CPU (gloo): two `swiftkit run` processes with node ranks 0 and 1 train one
run of the tiny model through the real ms-swift and torchrun. Node 0 owns the run record and verification,
each node writes its own record; an OOM injected on node 1 only moves both nodes one rung down the ladder."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAULT

from swiftkit.commands.demo import DEMO_RECIPE, make_tiny_model

pytestmark = pytest.mark.e2e

RECIPE = """\
model: {{id: {model}, model_type: qwen2, template: qwen2_5, dtype: float32}}
identity: {{name: Swift-Robot, author: CSDN 迪菲赫尔曼}}
datasets: [identity]
lora: {{rank: 16, alpha: 32}}
train:
  epochs: 2
  learning_rate: 1.0e-2
  warmup_ratio: 0
  effective_batch_size: 24
  micro_batch_size: auto
  max_length: 128
  gradient_checkpointing: false
  logging_steps: 1
gpu: {{count: 0, nodes: 2}}
output: {{dir: out}}
verify: {{enabled: {verify}, retention: false}}
swift: {{report_to: none}}
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(DEMO_RECIPE, tmp_path_factory.mktemp("tiny") / "model")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(recipe: Path, rank: int, port: int, **env: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "swiftkit.cli", "run", str(recipe), "--nnodes", "2", "--node-rank", str(rank),
            "--master-addr", "127.0.0.1", "--master-port", str(port)]
    return subprocess.Popen(argv, cwd=recipe.parent, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def both(recipe: Path, node1_env: dict | None = None, timeout: float = 600) -> tuple[tuple[int, str], ...]:
    port = free_port()
    one = start_node(recipe, 1, port, **(node1_env or {}))  # the follower first: it waits for node 0
    zero = start_node(recipe, 0, port)
    out0, _ = zero.communicate(timeout=timeout)
    out1, _ = one.communicate(timeout=timeout)
    return (zero.returncode, out0), (one.returncode, out1)


def run_dir(recipe: Path) -> Path:
    dirs = sorted((recipe.parent / "out").glob("v*-*"))
    return dirs[-1]


def test_two_nodes_train_one_run_with_one_record_and_two_node_records(tmp_path, model):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(model=model, verify="true"), encoding="utf-8")
    (code0, out0), (code1, out1) = both(recipe)
    assert code0 == 0, out0[-3000:]
    assert code1 == 0, out1[-3000:]
    assert "node 0 of 2, master 127.0.0.1" in out0 and "node 0 owns the run record" in out0
    assert "node 1 of 2" in out1 and "node 0 decides, this node follows" in out1
    assert "verification" in out0 and "verifying" not in out1  # node 0 alone asks the probes
    assert "peak memory per rank of this node: rank 0 " in out0 and " GiB host" in out0
    d = run_dir(recipe)
    assert [p.name for p in sorted(d.glob("swiftkit-run*.json"))] == ["swiftkit-run.json"]
    record = json.loads((d / "swiftkit-run.json").read_text())
    assert record["status"] == "succeeded" and record["launch"]["nnodes"] == 2
    # every identity row, asked on node 0 alone: 74 trained + 18 held out + 36 challenges
    v = record["verification"]
    assert v["answered"] == v["trained"] + v["heldout"] + v["challenge"] == 128 and record["timings"]["verification"] > 0
    # 24 = micro 12 x accumulation 1 x 1 CPU process x 2 nodes; 74 rows, 2 epochs -> 8 steps
    assert record["attempts"][0]["micro_batch"] == 12 and record["summary"]["global_step"] == 8
    assert "--ddp_backend gloo" in " ".join(record["command"])
    for rank in (0, 1):
        node = json.loads((d / f"swiftkit-node-{rank}.json").read_text())
        assert node["node_rank"] == rank and node["returncode"] == 0 and node["host"] == socket.gethostname()
        assert [r["rank"] for r in node["ranks"]] == [rank] and node["ranks"][0]["peak_rss_gib"] > 0.1
        assert Path(node["log"]).is_file() and Path(node["log"]).parent == d
    assert (d / "swiftkit.log").is_file() and (d / "swiftkit-node1.log").is_file()
    assert record["attempts"][0]["phases"]["training"] > 0


def test_an_oom_on_node_1_moves_both_nodes_down_the_ladder(tmp_path, model):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(model=model, verify="false"), encoding="utf-8")
    oom = {"PYTHONPATH": FAULT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SWIFTKIT_TEST_OOM_ABOVE_MICRO_BATCH": "6"}
    (code0, out0), (code1, out1) = both(recipe, node1_env=oom)
    assert code0 == 0, out0[-3000:]
    assert code1 == 0, out1[-3000:]
    assert "out of memory (attempt 1); retrying with micro-batch 12 x accumulation 1 -> 6 x 2" in out0
    assert "node 1, attempt 1: The GPU ran out of memory" in out1
    record = json.loads((run_dir(recipe) / "swiftkit-run.json").read_text())
    first, second = record["attempts"]
    assert first["diagnosis"]["kind"] == "cuda_oom" and first["diagnosis"]["message"].startswith("node 1 (")
    assert {n["node_rank"]: (n["diagnosis"] or {}).get("kind") for n in first["nodes"]}[1] == "cuda_oom"
    assert (second["micro_batch"], second["gradient_accumulation"]) == (6, 2)  # 6 x 2 x 2 nodes = 24, kept
    assert record["status"] == "succeeded"


def test_prewarmed_verification_on_one_node(tmp_path, model):
    """verify.prewarm: the verifying engine imports ms-swift while training runs, then answers the tuned and the
    base model's questions in one process; its import is not counted as verification's."""
    from conftest import run_cli

    recipe = tmp_path / "recipe.yaml"
    text = RECIPE.format(model=model, verify="true").replace("nodes: 2", "nodes: 1")
    recipe.write_text(text.replace("retention: false}", "retention: true, prewarm: true}"), encoding="utf-8")
    code, _, err = run_cli("run", str(recipe))
    assert code == 0, err[-3000:]
    record = json.loads((run_dir(recipe) / "swiftkit-run.json").read_text())
    phases = record["verification"]["phases"]
    assert phases["engine"] == "shared" and phases["tuned"]["start"] == 0.0 and phases["base"]["generation"] > 0
    assert record["verification"]["answered"] == 128 and record["retention"]["score"] > 0
    assert list((recipe.parent / "out" / ".swiftkit").glob("answers-prewarm-*.log"))
    # again: the base model's answers come from the cache, and the prewarmed worker answers the tuned model alone
    code, _, err = run_cli("run", str(recipe))
    assert code == 0, err[-3000:]
    again = json.loads((run_dir(recipe) / "swiftkit-run.json").read_text())["verification"]["phases"]
    assert (again["engine"], again["base"], again["tuned"]["start"]) == ("answer worker", "cached", 0.0)
