"""swiftkit/child/sitecustomize.py in a real training-shaped process: the datasets library maps rows
without pickling the mapped function when swiftkit asks (SWIFTKIT_DATASET_FINGERPRINT=random)."""
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
import json, sys
import datasets

class Tokenizer:
    pickled = 0
    def __reduce__(self):
        Tokenizer.pickled += 1
        return (Tokenizer, ())

tokenizer = Tokenizer()

def encode(row):
    assert tokenizer is not None
    return {"length": len(row["text"])}

data = datasets.Dataset.from_dict({"text": ["a", "bb", "ccc"]})
first = data.map(encode)
print(json.dumps({"lengths": list(first["length"]), "pickled": Tokenizer.pickled}))
'''


def _run(tmp_path: Path, env: dict[str, str]) -> dict:
    script = tmp_path / "swift" / "cli" / "sft.py"  # the training process is the one running swift/cli/sft.py
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(SCRIPT)
    path = os.pathsep.join([str(CHILD_DIR), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": path,
                          "HF_DATASETS_CACHE": str(tmp_path / "cache"), **env},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_random_cache_names_skip_pickling_the_mapped_function(tmp_path):
    out = _run(tmp_path, {"SWIFTKIT_DATASET_FINGERPRINT": "random"})
    assert out["lengths"] == [1, 2, 3]  # the rows are mapped as before
    assert out["pickled"] == 0


@pytest.mark.parametrize("env", [{}, {"SWIFTKIT_DATASET_FINGERPRINT": "hash"}])
def test_without_it_datasets_hashes_as_it_always_did(tmp_path, env):
    out = _run(tmp_path, env)
    assert out["lengths"] == [1, 2, 3]
    assert out["pickled"] > 0
