"""Which GGUF file of an export `swiftkit serve` runs, and what it refuses before anything starts.

TARGET is a GGUF export dir (`swiftkit export --format gguf`, its marker's format "gguf") or one of its .gguf
files. Several types in one dir: `--quant` picks one; without it, the verified type that agreed best with the
merged model in the export's check (ties: the higher-precision type). A file the export marked unverified is
refused as exports refuse it, unless `--no-verify`. Pure but for reading the marker.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swiftkit.errors import Problem
from swiftkit.gguf import outtypes
from swiftkit.results import exports
from swiftkit.results.fingerprint import file_sha256

FIDELITY = tuple(outtypes.WRITTEN)  # f32, f16, bf16, q8_0: the tie-break among equally agreeing types


@dataclass(frozen=True)
class Located:
    folder: Path  # the GGUF export dir
    info: exports.ExportInfo
    file: str | None  # a .gguf file named as TARGET, else None


def locate(target: str) -> Located | None:
    """The GGUF export TARGET names (its dir, or a file listed in its marker); None when it names none."""
    path = Path(target).expanduser()
    folder, file = (path.parent, path.name) if path.suffix.lower() == ".gguf" else (path, None)
    if not folder.is_dir():
        return None
    info = exports.read_marker(folder)
    if info is None or info.format != "gguf" or (file is not None and file not in info.sha256):
        return None
    return Located(folder.resolve(), info, file)


def is_gguf_export(target: str) -> bool:
    return locate(target) is not None


def type_of(info: exports.ExportInfo, file: str) -> str | None:
    return next((q for q, e in info.gguf.items() if e.get("file") == file), None)


def choose(info: exports.ExportInfo, quant: str | None, file: str | None,
           folder: Path | str = "") -> tuple[str | None, str, list[Problem]]:
    """(the type to serve, why it was chosen, problems). Pure."""
    held = list(info.gguf)
    if file is not None:
        q = type_of(info, file)
        if quant is not None and outtypes.normalise(quant) != q:
            return None, "", [Problem(f"--quant {quant}: {file} is the {q} file", key="--quant",
                                      fix=f"leave --quant out, or pass the export dir {folder}")]
        return q, f"{q}, the file given", []
    if quant is not None:
        q = outtypes.normalise(quant)
        if q not in info.gguf:
            return None, "", [Problem(f"--quant {quant}: the GGUF export {folder} has no {q} file; it holds "
                                      f"{', '.join(held) or 'none'}", key="--quant",
                                      fix=f"--quant {held[0]}" + (f" (one of {', '.join(held)})" if len(held) > 1
                                                                  else "") +
                                      f", or export {q}: swiftkit export {info.source} --format gguf --quant {q}")]
        return q, f"{q}, as asked", []
    if not held:
        return None, "", [Problem(f"{folder}: its marker lists no GGUF file", fix="export it again")]
    verified = [q for q in held if info.gguf[q].get("verified")]
    pool = verified or held
    best = max(pool, key=lambda q: (info.gguf[q].get("agreement") or 0.0, -_rank(q)))
    if len(held) == 1:
        return best, f"{best}, the one type in the export", []
    agreement = info.gguf[best].get("agreement")
    said = f"{agreement:.1%} same answers as the merged model" if agreement is not None else "never checked"
    why = "best agreement of the verified types" if verified else "best agreement, though none is verified"
    return best, f"{best}: {why}, {said}; --quant picks another of {', '.join(held)}", []


def _rank(q: str) -> int:
    return FIDELITY.index(q) if q in FIDELITY else len(FIDELITY)


def file_problems(found: Located, q: str, verify: bool) -> list[Problem]:
    """The chosen file: there, unchanged since the export, and verified (unless --no-verify)."""
    entry = found.info.gguf[q]
    name, path = entry.get("file", ""), found.folder / entry.get("file", "")
    if not path.is_file():
        return [Problem(f"{path} is missing from the GGUF export", fix="export it again")]
    if file_sha256(path) != found.info.sha256.get(name):
        return [Problem(f"{path} changed since the export (sha256 differs from its marker)",
                        fix=f"export it again: swiftkit export {found.info.source} --format gguf --quant {q}")]
    if verify and not entry.get("verified"):
        if entry.get("agreement") is None:
            why = "was never checked in llama.cpp (exported with --no-verify)"
        else:
            why = (f"is marked NOT verified: llama.cpp answered as the merged model in {entry['agreement']:.1%} of "
                   f"the probes (needed {entry.get('min_agreement') or outtypes.min_agreement(q):.0%})")
        return [Problem(f"{name} {why}", key="--quant" if len(found.info.gguf) > 1 else None,
                        fix="export it again (swiftkit export SOURCE --format gguf), or pass --no-verify to serve "
                            "it unchecked")]
    return []


def threshold(info: exports.ExportInfo, q: str, override: float | None) -> float:
    """The share the export needed for this type (its marker), else the type's own; --min-agreement wins."""
    if override is not None:
        return override
    return info.gguf[q].get("min_agreement") or outtypes.min_agreement(q)


def deploy_only_problems(given: dict[str, object]) -> list[Problem]:
    """Options of `swift deploy` given with a GGUF export: refused, all together."""
    named = [f"{flag} {value}" for flag, value in given.items() if value not in (None, False, ())]
    if not named:
        return []
    return [Problem(f"{', '.join(named)}: only for `swift deploy` (a run, a checkpoint or a merged export); a GGUF "
                    "export is served by llama.cpp's own server", fix="leave them out, or serve the merged export it "
                    "was made from")]


def served_name(info: exports.ExportInfo, q: str) -> str:
    """The file's name without the type: swift-robot-q8_0.gguf -> swift-robot (the identity's slug)."""
    stem = Path(info.gguf[q].get("file") or "model.gguf").stem
    return stem.removesuffix(f"-{q}") or stem
