"""Weight files on disk: tell a whole one from one cut short or damaged, without loading it.

A checkpoint holds an adapter (adapter_config.json + adapter_model.safetensors or .bin) or a full
model (config.json + model*.safetensors / pytorch_model*.bin, maybe sharded with an index), as
does a merged export. Each check returns the problems found, one line each naming the file; an
empty list means every file is there and whole.

No torch or safetensors import: a safetensors file is checked by reading its 8-byte header
length and its JSON header, then comparing the data size the header promises with the file.
"""
from __future__ import annotations

import json
import math
import re
import struct
import zipfile
from pathlib import Path

# A header larger than this is not a header: a corrupt length would otherwise make us read GBs.
_MAX_HEADER = 100 * 1024 * 1024
_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
                "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def check_weights(path: Path) -> tuple[str, list[str]]:
    adapter_files = [p for p in listdir(path) if p.name.startswith("adapter_")]
    if adapter_files:
        return "adapter", _check_adapter(path)
    if (path / "config.json").exists() or model_weight_files(path):
        return "full", check_model_dir(path)
    return "unknown", ["no weights: neither adapter_model.* nor model*.safetensors / pytorch_model*.bin"]


def _check_adapter(path: Path) -> list[str]:
    problems = []
    config, problem = read_json(path / "adapter_config.json")
    if problem:
        problems.append(problem)
    elif not isinstance(config, dict):
        problems.append("adapter_config.json: not a JSON object")
    safetensors, binary = path / "adapter_model.safetensors", path / "adapter_model.bin"
    if safetensors.exists():
        problems.extend(check_safetensors(safetensors))
    elif binary.exists():
        problems.extend(check_torch_zip(binary))
    else:
        problems.append("adapter_model.safetensors missing (nor adapter_model.bin)")
    return problems


def model_weight_files(path: Path) -> list[Path]:
    names = [p for p in listdir(path) if p.is_file()]
    return sorted(p for p in names if re.match(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$",
                                                   p.name))


def check_model_dir(path: Path) -> list[str]:
    """A full model dir (a fully tuned checkpoint, or a merged export): config and every weight file whole."""
    problems = []
    config, problem = read_json(path / "config.json")
    if problem:
        problems.append(problem)
    files = model_weight_files(path)
    problems.extend(_missing_shards(path))
    if not files:
        problems.append("no model*.safetensors or pytorch_model*.bin")
    for f in files:
        problems.extend(check_safetensors(f) if f.suffix == ".safetensors" else check_torch_zip(f))
    return problems


def _missing_shards(path: Path) -> list[str]:
    """Shards the index names but the dir lacks (a save cut off between two shards)."""
    problems = []
    for index in (path / "model.safetensors.index.json", path / "pytorch_model.bin.index.json"):
        if not index.exists():
            continue
        data, problem = read_json(index)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if problem or not isinstance(weight_map, dict):
            problems.append(problem or f"{index.name}: no weight_map")
            continue
        for shard in sorted(set(map(str, weight_map.values()))):
            if not (path / shard).exists():
                problems.append(f"{shard}: missing (named in {index.name})")
    return problems


def check_safetensors(path: Path) -> list[str]:
    """Problems with a .safetensors file, without loading it.

    Layout: 8-byte little-endian header length N, N bytes of JSON header mapping each tensor to
    dtype, shape and data_offsets [begin, end) into the data that follows. A file cut mid-write
    is shorter than 8 + N + the largest end offset."""
    name = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                return [f"{name}: {size} bytes, too short for a safetensors header"]
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(size - 8, _MAX_HEADER):
                return [f"{name}: header length {header_len} does not fit in {size} bytes (truncated?)"]
            raw = f.read(header_len)
    except OSError as e:
        return [f"{name}: unreadable ({e.strerror or e})"]
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return [f"{name}: header is not valid JSON"]
    if not isinstance(header, dict):
        return [f"{name}: header is not a JSON object"]
    return _check_tensors(name, header, size - 8 - header_len)


def _check_tensors(name: str, header: dict, data_size: int) -> list[str]:
    end = 0
    for tensor, info in header.items():
        if tensor == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) for o in offsets) and 0 <= offsets[0] <= offsets[1]):
            return [f"{name}: bad data_offsets for {tensor}"]
        if not isinstance(info.get("dtype"), str):
            return [f"{name}: {tensor}: dtype is {type(info.get('dtype')).__name__}, expected a name such as BF16"]
        if not (isinstance(info.get("shape"), list) and all(isinstance(d, int) and not isinstance(d, bool)
                                                             for d in info["shape"])):
            return [f"{name}: {tensor}: shape is not a list of whole numbers"]
        expected = _tensor_bytes(info)
        if expected is not None and expected != offsets[1] - offsets[0]:
            return [f"{name}: {tensor} spans {offsets[1] - offsets[0]} bytes, its dtype and shape need {expected}"]
        end = max(end, offsets[1])
    if data_size < end:
        return [f"{name}: truncated: {data_size} data bytes, the header needs {end}"]
    if data_size > end:
        return [f"{name}: {data_size - end} bytes after the last tensor"]
    return []


def _tensor_bytes(info: dict) -> int | None:
    width = _DTYPE_BYTES.get(info.get("dtype"))
    shape = info.get("shape")
    if width is None or not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
        return None
    return width * math.prod(shape)


def check_torch_zip(path: Path) -> list[str]:
    """A .bin from torch.save (a zip since torch 1.6): its central directory sits at the end,
    so a truncated file fails to open. Older pickle-only files cannot be checked: size only."""
    try:
        size = path.stat().st_size
    except OSError as e:
        return [f"{path.name}: unreadable ({e.strerror or e})"]
    if size == 0:
        return [f"{path.name}: empty"]
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            magic = f.read(4)
        return [f"{path.name}: not a complete torch zip archive (truncated?)"] if magic == b"PK\x03\x04" else []
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        return [f"{path.name}: broken zip archive ({e})"]
    return []


def read_json(path: Path) -> tuple[object, str | None]:
    """The parsed file and None, or None and a problem naming the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, f"{path.name}: missing"
    except OSError as e:
        return None, f"{path.name}: unreadable ({e.strerror or e})"
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return None, f"{path.name}: not valid JSON (cut short?)"


def listdir(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []
