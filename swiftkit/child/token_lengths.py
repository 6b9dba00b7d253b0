"""Runs in a child process for `swiftkit plan`: every row's length as ms-swift will train on it.

argv[1] is a JSON spec: model (a dir with config.json and the tokenizer), model_type, template, system,
conversations (a JSONL file, one list of messages a line). The rows are encoded by ms-swift's own
template (the same system prompt, special tokens and rendering as training), without truncation; the
caller applies max_length. The last line on stdout is {"lengths": [...]}, in the order of the rows.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> int:
    spec = json.loads(sys.argv[1])
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # ms-swift's and transformers' prints go to stderr
    sys.stdout = sys.stderr
    from swift.model import get_processor
    from swift.template import get_template

    processor = get_processor(spec["model"], model_type=spec.get("model_type"), download_model=False)
    template = get_template(processor, default_system=spec.get("system"), max_length=None,
                            template_type=spec.get("template"))
    template.set_mode("train")
    lengths = []
    with open(spec["conversations"], encoding="utf-8") as f:
        for line in f:
            try:
                lengths.append(len(template.encode({"messages": json.loads(line)})["input_ids"]))
            except Exception as err:  # noqa: BLE001 - a row ms-swift cannot encode is one it drops
                print(f"row {len(lengths) + 1}: {err}", file=sys.stderr)
                lengths.append(None)
    out.write(json.dumps({"lengths": lengths}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
