"""Runs inside a child Python that has ms-swift installed; prints JSON on stdout.

`python -m swiftkit.child.introspect catalog` lists every option of SftArguments, InferArguments,
ExportArguments and DeployArguments as ms-swift's own HfArgumentParser builds them, plus registered model
types, templates and tuners. `python -m swiftkit.child.introspect parse VERB -- ARGV...` (or `parse-many`, JSON requests on stdin) asks that
parser which arguments it would reject, with no side effects (the dataclasses are never
constructed: their __post_init__ loads the model and creates the output dir).

It runs in a child process because importing ms-swift takes seconds, logs, and patches
transformers globally; swiftkit itself never imports it.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys

VERBS = {"sft": "SftArguments", "infer": "InferArguments", "export": "ExportArguments", "deploy": "DeployArguments"}


def _parser(verb: str):
    from transformers import HfArgumentParser

    import swift.arguments as arguments
    from swift.utils.utils import _patch_get_type_hints

    with _patch_get_type_hints():
        return HfArgumentParser([getattr(arguments, VERBS[verb])])


def _type_name(action) -> str:
    if action.nargs == 0:
        return "switch"
    t = action.type
    name = getattr(t, "__name__", "") or ""
    if name == "string_to_bool":
        return "bool"
    if name in ("int", "float", "str"):
        return name
    return "str"


def _options(verb: str) -> dict:
    options = {}
    for action in _parser(verb)._actions:
        if "-h" in action.option_strings:
            continue
        for opt in action.option_strings:
            options[opt] = {
                "dest": action.dest,
                "type": _type_name(action),
                "nargs": action.nargs if isinstance(action.nargs, (int, str)) else None,
                "choices": [c for c in action.choices] if action.choices else None,
            }
    return options


def _models() -> dict:
    from swift.model import MODEL_MAPPING

    out = {}
    for name, meta in MODEL_MAPPING.items():
        templates = {g.template for g in meta.model_groups if g.template} | ({meta.template} if meta.template else set())
        ids = sorted({m.ms_model_id or m.hf_model_id or "" for g in meta.model_groups for m in g.models} - {""})
        out[name] = {"architectures": list(meta.architectures or []), "templates": sorted(templates), "model_ids": ids}
    return out


def catalog() -> dict:
    import swift
    from swift.arguments.base_args.base_args import get_supported_tuners
    from swift.template import TEMPLATE_MAPPING
    from transformers import SchedulerType

    return {
        "swift_version": swift.__version__,
        "verbs": {verb: {"options": _options(verb)} for verb in VERBS},
        "model_types": _models(),
        "templates": sorted(TEMPLATE_MAPPING),
        # the system prompt a template sends when a request has none (qwen2_5: "You are Qwen, ...")
        "default_systems": {name: meta.default_system for name, meta in TEMPLATE_MAPPING.items()
                            if isinstance(getattr(meta, "default_system", None), str)},
        "tuners": sorted(get_supported_tuners()),
        "schedulers": sorted(s.value for s in SchedulerType),
    }


def parse(verb: str, argv: list[str]) -> dict:
    parser = _parser(verb)
    parser.allow_abbrev = False  # report abbreviations as leftovers, the way swiftkit does
    _, remaining = parser.parse_known_args(argv)
    return {"remaining": remaining}


def parse_many(requests: list[dict]) -> list[dict]:
    """Several {"verb", "argv"} requests in one process (importing ms-swift once)."""
    return [parse(r["verb"], r["argv"]) for r in requests]


def main(argv: list[str]) -> int:
    # ms-swift logs to stdout on import; keep stdout for our JSON alone.
    with contextlib.redirect_stdout(io.StringIO()):
        if argv[:1] == ["catalog"]:
            result = catalog()
        elif argv[:1] == ["parse-many"]:
            result = parse_many(json.loads(sys.stdin.read()))
        elif argv[:1] == ["parse"] and len(argv) >= 2:
            rest = argv[2:]
            result = parse(argv[1], rest[1:] if rest[:1] == ["--"] else rest)
        else:
            print("usage: python -m swiftkit.child.introspect catalog | parse VERB -- ARGV...", file=sys.stderr)
            return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
