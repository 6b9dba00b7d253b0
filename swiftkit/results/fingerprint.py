"""What a model is, as one short hash: answers computed once per model are cached under it.

A local model dir's fingerprint is the sha256 of its config, tokenizer and weight files' contents.
Hashing a 15 GB model takes seconds, so each file's hash is kept in the cache keyed by
(path, size, mtime): a file that changes gets hashed again, one that does not is read once.
A hub id (not on disk here) is its own fingerprint.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from swiftkit import paths

# The files that decide what a model answers; args.json and READMEs do not.
_PATTERNS = ("config.json", "generation_config.json", "tokenizer*.json", "tokenizer.model", "vocab.json",
             "merges.txt", "chat_template.jinja", "*.safetensors", "*.bin", "*.safetensors.index.json",
             "adapter_config.json")
CHUNK = 1 << 20


def fingerprint(model: str | Path) -> str:
    path = Path(model)
    if not path.is_dir():
        return hashlib.sha256(f"hub:{model}".encode()).hexdigest()
    files = sorted({f for pattern in _PATTERNS for f in path.glob(pattern) if f.is_file()})
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime) in the cache dir."""
    stat = path.stat()
    memo_key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()
    memo = paths.cache_dir() / "sha256" / f"{memo_key}.json"
    try:
        return json.loads(memo.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"path": str(path), "sha256": value}), encoding="utf-8")
    except OSError:
        pass  # a read-only cache only costs the hash next time
    return value
