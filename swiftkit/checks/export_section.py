"""The recipe's `export:` section checked before training: what would refuse the export after hours of it.

A merge of a full fine-tune, an export dir that exists already, GGUF types the converter cannot write, the
converter or llama.cpp's binding missing: each is said at validate time, located at its key, instead of after
training and verification.
"""
from __future__ import annotations

from swiftkit.errors import Problem
from swiftkit.gguf import outtypes, write
from swiftkit.recipe.models import LoadedRecipe


def export_problems(loaded: LoadedRecipe) -> list[Problem]:
    r, p = loaded.recipe, loaded.problem
    e, out = r.export, []
    merging = e.merge or e.format == "gguf"
    if merging and r.lora.tuner == "full":
        key = ("export", "merge") if e.merge else ("export", "format")
        out.append(p("export: a full fine-tune has no adapter to merge", key, "remove export.merge and export.format: "
                     "the checkpoint is the model (swiftkit export CHECKPOINT --format gguf converts it)"))
    if merging and loaded.paths.export_dir and loaded.paths.export_dir.exists():
        out.append(p(f"export.dir {loaded.paths.export_dir} already exists; swiftkit never overwrites an export",
                     ("export", "dir"), "choose another dir, or delete it"))
    if e.format != "gguf":
        return out
    for i, name in enumerate(e.gguf_quant):
        out += [p(problem.message.removeprefix("--quant "), ("export", "gguf_quant", i),
                  problem.fix) for problem in outtypes.problems([name])]
    out += [p(problem.message, ("export", "format"), problem.fix) for problem in write.converter_problems()]
    if r.verify.enabled and not write.llamacpp_installed():
        out.append(p("export.format gguf is checked in llama.cpp, and its Python binding (xllamacpp) is not installed",
                     ("export", "format"), "pip install xllamacpp"))
    return out

