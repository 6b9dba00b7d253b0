"""Child process for the corpus test: what ms-swift's own `swift sft` parser makes of argument lists.

Reads a JSON list of argv lists on stdin; prints {"defaults": {dest: value}, "parsed": [{"values":
{dest: value}, "remaining": [...]}, ...]}. Built by swiftkit.child.introspect's parser (HfArgumentParser
over swift.arguments.SftArguments); the dataclass is never constructed, so nothing is loaded.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys


def _plain(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(getattr(value, "value", value))  # enums (lr_scheduler_type, ...)


def main() -> int:
    requests = json.loads(sys.stdin.read())
    with contextlib.redirect_stdout(io.StringIO()):
        from swiftkit.child.introspect import _parser

        parser = _parser("sft")
        parser.allow_abbrev = False
        defaults = {k: _plain(v) for k, v in vars(parser.parse_known_args([])[0]).items()}
        parsed = []
        for argv in requests:
            namespace, remaining = parser.parse_known_args(argv)
            parsed.append({"values": {k: _plain(v) for k, v in vars(namespace).items()}, "remaining": remaining})
    sys.stdout.write(json.dumps({"defaults": defaults, "parsed": parsed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
