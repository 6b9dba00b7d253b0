"""Runs in a child process for `swiftkit plan`: every row's length as ms-swift will train on it.

argv[1] is a JSON spec: model (a dir with config.json and the tokenizer), model_type, template, system,
conversations (a JSONL file, one list of messages a line). The rows are encoded by ms-swift's own
template (the same system prompt, special tokens and rendering as training), without truncation; the
caller applies max_length. The last line on stdout is {"lengths": [...], "first_labels": [...]}, in the order of
the rows: a row's first label is the position of the first token it is trained on (its prompt before it), from
which ms-swift's `logits_to_keep` keeps the logits of a micro-batch (the plan's logits and loss).
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
    lengths, first_labels = [], []
    with open(spec["conversations"], encoding="utf-8") as f:
        for line in f:
            try:
                encoded = template.encode({"messages": json.loads(line)})
            except Exception as err:  # noqa: BLE001 - a row ms-swift cannot encode is one it drops
                print(f"row {len(lengths) + 1}: {err}", file=sys.stderr)
                lengths.append(None)
                first_labels.append(None)
                continue
            lengths.append(len(encoded["input_ids"]))
            labels = encoded.get("labels") or []
            first_labels.append(next((i for i, label in enumerate(labels) if label != -100), None))
    out.write(json.dumps({"lengths": lengths, "first_labels": first_labels}) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
