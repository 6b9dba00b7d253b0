"""swiftkit/child/sitecustomize.py in a real training-shaped process: the datasets library maps rows
without pickling the mapped function when swiftkit asks: no hashing for cache names
(SWIFTKIT_DATASET_FINGERPRINT=random), and a map of one process in the process itself
(SWIFTKIT_DATASET_IN_PROCESS=1), as ms-swift maps its rows (num_proc=1). And in any process of the child
(SWIFTKIT_NO_CUDNN_SDPA=1), torch comes up with cuDNN's attention off."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swiftkit.render import CHILD_DIR

# Stands in for ms-swift's encode function: it holds an object that counts every time it is pickled
# (datasets' hashing pickles the function and what it holds, as it pickles ms-swift's tokenizer).
SCRIPT = r'''
import json, os, sys
import datasets

class Tokenizer:
    pickled = 0
    def __reduce__(self):
        Tokenizer.pickled += 1
        return (Tokenizer, ())

tokenizer = Tokenizer()

def encode(row):
    assert tokenizer is not None
    return {"length": len(row["text"]), "pid": os.getpid()}

data = datasets.Dataset.from_dict({"text": ["a", "bb", "ccc"]})
first = data.map(encode, num_proc=int(sys.argv[1]))
print(json.dumps({"lengths": list(first["length"]), "pickled": Tokenizer.pickled,
                  "in_process": set(first["pid"]) == {os.getpid()}}))
'''


def _run(tmp_path: Path, env: dict[str, str], num_proc: int = 1) -> dict:
    script = tmp_path / "swift" / "cli" / "sft.py"  # the training process is the one running swift/cli/sft.py
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SCRIPT)
    path = os.pathsep.join([str(CHILD_DIR), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script), str(num_proc)], env={**os.environ, "PYTHONPATH": path,
                          "HF_DATASETS_CACHE": str(tmp_path / "cache"), **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_as_swiftkit_runs_training_the_function_is_never_pickled(tmp_path):
    out = _run(tmp_path, {"SWIFTKIT_DATASET_FINGERPRINT": "random", "SWIFTKIT_DATASET_IN_PROCESS": "1"})
    assert out["lengths"] == [1, 2, 3]  # the rows are mapped as before
    assert out["pickled"] == 0 and out["in_process"] is True


def test_random_cache_names_alone_skip_the_hash(tmp_path):
    out = _run(tmp_path, {"SWIFTKIT_DATASET_FINGERPRINT": "random"}, num_proc=0)
    assert out["lengths"] == [1, 2, 3] and out["pickled"] == 0


def test_one_process_maps_in_this_one_and_more_are_left_alone(tmp_path):
    assert _run(tmp_path, {"SWIFTKIT_DATASET_IN_PROCESS": "1"})["in_process"] is True
    assert _run(tmp_path, {"SWIFTKIT_DATASET_IN_PROCESS": "1"}, num_proc=2)["in_process"] is False


@pytest.mark.parametrize("env", [{}, {"SWIFTKIT_DATASET_FINGERPRINT": "hash", "SWIFTKIT_DATASET_IN_PROCESS": "0"}])
def test_without_it_datasets_works_as_it_always_did(tmp_path, env):
    out = _run(tmp_path, env)
    assert out["lengths"] == [1, 2, 3]
    assert out["pickled"] > 0 and out["in_process"] is False


CUDNN = "import torch; print(torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled())"


@pytest.mark.parametrize("env, enabled", [({"SWIFTKIT_NO_CUDNN_SDPA": "1"}, "False True"), ({}, "True True")])
def test_cudnn_attention_is_off_in_any_process_that_imports_torch(tmp_path, env, enabled):
    """Not only the training process: verification's answer worker and `swift deploy` import torch too. The
    other attention kernels stay on."""
    path = os.pathsep.join([str(CHILD_DIR), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-c", CUDNN], env={**os.environ, "PYTHONPATH": path, **env},
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == enabled.split()
