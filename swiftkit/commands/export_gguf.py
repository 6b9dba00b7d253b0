"""`swiftkit export TARGET --format gguf`: the verified merged model as GGUF files that llama.cpp answers with.

The source is a verified merged export (TARGET itself, or checkpoint-N-merged beside a checkpoint, merged on
the way when it is not there yet). Each type asked for (gguf/outtypes.py) is written by llama.cpp's own
converter (gguf/write.py) into a staging dir, carrying the chat template training used with the recipe's
system prompt as its default (gguf/chat_template.py); then llama.cpp itself (xllamacpp) answers the identity
and general probes greedily with the template stored in the file, and its answers must equal the merged
model's in at least the share measured for the type. An Ollama Modelfile goes beside each file. The marker
(sha256 of every GGUF, agreement per type, the template) goes in last and the dir is renamed into place:
never overwritten, never left half-written, a disagreeing file kept but marked unverified (exit 12).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from swiftkit.errors import EXIT_FAILURE, EXIT_OK, Problem, UserError
from swiftkit.flags.catalog import Catalog, load_catalog
from swiftkit.gguf import chat_template, modelfile, outtypes, write
from swiftkit.gguf.header import read_header
from swiftkit.logparse import EXIT_CODES
from swiftkit.recipe.models import VerifySection
from swiftkit.render import ExportOptions, export_options
from swiftkit.results import exports, targets
from swiftkit.results.fingerprint import file_sha256
from swiftkit.run.progress import Reporter, make_reporter
from swiftkit.serve.policy import slug
from swiftkit.verify import verification
from swiftkit.verify.ask import AskFailed, ask, row_key
from swiftkit.verify.ask_gguf import GGUFAskFailed, ask_gguf
from swiftkit.verify.retention import similarity


def export_gguf(target: str, *, quants: tuple[str, ...] = (), output: str | None = None, do_verify: bool = True,
                min_agreement: float | None = None, quiet: bool = False, model_type: str | None = None,
                template: str | None = None) -> int:
    from swiftkit.commands import export as merging

    t = targets.resolve(target, model_type=model_type, template=template)
    types = outtypes.chosen(quants or (t.recipe.export.gguf_quant if t.recipe else ()))
    merged, merge_first = source_of(t)
    final = Path(output).expanduser().resolve() if output else default_dir(merged)
    options = export_options(t.recipe) if t.recipe else ExportOptions()
    preflight(t, types, merged, merge_first, final, do_verify, options)
    reporter = make_reporter(quiet=quiet)
    try:
        catalog = load_catalog()
        if merge_first:
            code, info = merging.export_checkpoint(t, options, merged, catalog, reporter)
            if info is not None:
                merging.record_export(t, info, reporter)
            if code != EXIT_OK:
                reporter.say(f"swiftkit: no GGUF written: the merged model {merged} is not verified")
                return code
        source = targets.resolve(str(merged), model_type=model_type, template=template)
        code, info = gguf_step(source, types, final, catalog, reporter, do_verify=do_verify,
                               min_agreement=min_agreement)
        if info is not None:
            merging.record_export(source, info, reporter)
        return code
    finally:
        reporter.close()


def format_of(target: str, fmt: str | None, **model) -> str:
    """--format, else the recipe's export.format (TARGET a recipe, or a run of one), else safetensors."""
    if fmt:
        return fmt
    t = targets.resolve(target, **model)
    return t.recipe.export.format if t.recipe else "safetensors"


def check_options(gguf: bool, safetensors_only: dict, gguf_only: dict) -> None:
    given = [flag for flag, value in (safetensors_only if gguf else gguf_only).items() if value not in (None, ())]
    if given:
        raise UserError.one(f"{', '.join(given)}: only for {'safetensors' if gguf else 'GGUF'} exports",
                            fix="leave them out" + ("" if gguf else ", or add --format gguf"))


def source_of(t: targets.Target) -> tuple[Path, bool]:
    """The merged model to convert, and whether it must be merged first."""
    if t.kind == "adapter":
        merged = exports.default_dir(t.path)
        return merged, not merged.exists()
    return t.path, False


def default_dir(merged: Path) -> Path:
    return merged.with_name(merged.name.removesuffix("-merged") + "-gguf")


def preflight(t: targets.Target, types: list[str], merged: Path, merge_first: bool, final: Path, do_verify: bool,
              options: ExportOptions) -> None:
    """Everything that can be known before anything is written; every problem at once."""
    from swiftkit.commands import export as merging

    problems = outtypes.problems(types) + write.converter_problems()
    info = exports.read_marker(merged) if merged.is_dir() else None
    if info is not None and info.format == "gguf":
        problems.append(Problem(f"{merged} is a GGUF export already", fix="pass the checkpoint or the merged export"))
    elif merge_first:
        try:
            merging.preflight(t, options, merged)
        except UserError as exc:
            problems += exc.problems
    elif info is not None:
        broken = exports.problems(merged)
        if broken:
            problems.append(Problem(f"{merged} is not a complete export: {'; '.join(broken)}",
                                    fix="delete it and export again"))
        elif not info.verified:
            problems.append(Problem(f"{merged} is marked NOT verified: it answered unlike base + adapter, and a GGUF of "
                                    "it would carry that", fix=f"delete it and export the checkpoint again ({info.source})"))
    elif t.kind == "adapter":
        problems.append(Problem(f"{merged} is there but is not a merged export swiftkit made",
                                fix="delete it, or pass a merged export as TARGET"))
    if not merge_first and (merged / "config.json").is_file():
        problems += write.architecture_problems(merged)
        problems += modelfile.problems(t.ref().system)
    problems += merging.destination_problems(final)
    if do_verify and not write.llamacpp_installed():
        problems.append(Problem("checking the GGUF needs llama.cpp's Python binding (xllamacpp), which is not installed",
                                fix="pip install xllamacpp, or pass --no-verify to write it unchecked"))
    need = _bytes_needed(t, merged, types) + (merging.bytes_needed(t, options) if merge_first else 0)
    where = merging.existing_parent(final)
    free = shutil.disk_usage(where).free
    if need and free < need:
        problems.append(Problem(f"not enough disk space for the GGUF export in {where}: about {need / 2**30:.1f} GiB "
                                f"needed, {free / 2**30:.1f} GiB free",
                                fix="free space there, pass --output on another disk, or write fewer or smaller types"))
    if problems:
        raise UserError(problems, headline="swiftkit export: nothing was exported")



def _bytes_needed(t: targets.Target, merged: Path, types: list[str]) -> int:
    """Parameters from the weights' bytes (of the merged model, else of the base, same shape) at each type's width."""
    model = merged if merged.is_dir() else Path(t.base_model)
    if not model.is_dir():
        return 0
    size = sum(f.stat().st_size for f in exports.weight_files(model))
    try:
        dtype = json.loads((model / "config.json").read_text(encoding="utf-8")).get("torch_dtype") or "float32"
    except (OSError, ValueError):
        dtype = "float32"
    parameters = size // (4 if dtype == "float32" else 2)
    return sum(outtypes.bytes_needed(parameters, q) for q in types if q in outtypes.WRITTEN)


def model_template(model_dir: Path) -> str | None:
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    try:
        found = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8")).get("chat_template")
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) else None


def gguf_step(source: targets.Target, types: list[str], final: Path, catalog: Catalog, reporter: Reporter, *,
              do_verify: bool = True, min_agreement: float | None = None) -> tuple[int, exports.ExportInfo | None]:
    """Write, check, verify, mark and move into place the GGUF files of the merged model `source` (the caller
    records the result). The GGUF step of `swiftkit run` too."""
    ref = source.ref()
    choice = chat_template.choose(model_template(source.path), ref.template, ref.system,
                                  catalog.default_system(ref.template))
    stem = slug(source.recipe.identity.name.en) if source.recipe and source.recipe.identity else slug(source.path.name)
    staging, work = exports.staging_dir(final), source.path.parent / "exports" / final.name
    staging.mkdir(parents=True)
    reporter.say(f"swiftkit: writing GGUF ({', '.join(types)}) of {source.path} -> {final}\n"
                 f"  chat template: {choice.source}; default system prompt {choice.system!r}")
    for note in choice.notes:
        reporter.say(f"  note: {note}")
    settings, probes = probes_of(source)
    info = exports.ExportInfo(str(final), str(source.path), source.base_model, 0, {}, ref.dtype, format="gguf",
                              chat_template={"source": choice.source, "system": choice.system, "notes": choice.notes,
                                             "stops": list(choice.stops)})
    try:
        reference = _reference(ref, catalog, probes, work, settings, reporter) if do_verify else None
        for q in types:
            info.gguf[q] = entry = _write_one(source.path, q, staging / f"{stem}-{q}.gguf", choice, work, reporter)
            info.sha256[entry["file"]] = entry["sha256"]
            if reference is not None:
                _check(entry, staging / entry["file"], probes, ref.system, reference, work, settings, reporter,
                       outtypes.min_agreement(q, min_agreement))
            name = modelfile.name_for(entry["file"], len(types) > 1)
            (staging / name).write_text(modelfile.render(entry["file"], name, chatml=ref.template in chat_template.CHATML,
                                                         system=choice.system, stops=choice.stops or _eos(source.path)),
                                        encoding="utf-8")
            entry["modelfile"] = name
    except (write.WriteFailed, GGUFAskFailed, AskFailed) as failed:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written stays
        if getattr(failed, "interrupted", False):
            raise KeyboardInterrupt from None
        reporter.say(f"swiftkit: GGUF export failed: {failed}\n  nothing was left at {final}")
        return (failed.diagnosis.exit_code if isinstance(failed, AskFailed) and failed.diagnosis else EXIT_FAILURE), None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    info.size_bytes = sum(e["size_bytes"] for e in info.gguf.values())
    if reference is not None:
        info.probes = len(probes)
        info.verified = all(e["verified"] for e in info.gguf.values())
        info.agreement = min(e["agreement"] for e in info.gguf.values())
        info.similarity = min(e["similarity"] for e in info.gguf.values())
        info.disagreements = next((e["disagreements"] for e in info.gguf.values() if not e["verified"]), [])
    exports.write_marker(staging, info)
    os.rename(staging, final)
    verdict = ("verified in llama.cpp" if info.verified else "NOT verified") if do_verify else "not verified (--no-verify)"
    lines = [f"  {e['file']}: {e['size_bytes'] / 2**20:.1f} MiB" + (f", {e['agreement']:.0%} same answers" if do_verify else "")
             for e in info.gguf.values()]
    first = next(iter(info.gguf.values()))["modelfile"]
    reporter.say(f"swiftkit: exported GGUF {final} ({verdict})\n" + "\n".join(lines) +
                 f"\n  ollama: cd {final} && ollama create {stem} -f {first} && ollama run {stem}")
    return (EXIT_OK if info.verified or not do_verify else EXIT_CODES["export_unverified"]), info


def probes_of(source: targets.Target) -> tuple[VerifySection, list[dict]]:
    """The verify settings and the probes a GGUF of the merged model `source` is checked with (identity and
    general, as verification asks them); `swiftkit serve` of the GGUF asks the same ones."""
    settings = source.recipe.verify if source.recipe else VerifySection()
    probes = verification.load(settings.model_copy(update={"retention": True}),
                               source.data_dir / "identity.probes.jsonl" if source.data_dir else None, None).main_rows()
    return settings, probes


def reference(source: targets.Target, probes: list[dict], settings: VerifySection, work: Path,
              reporter: Reporter) -> dict[str, str]:
    """The merged model's greedy answers to `probes`: cached under its fingerprint when the GGUF export asked
    it, else asked now (files in `work`)."""
    return _reference(source.ref(), load_catalog(), probes, work, settings, reporter)


def _reference(ref, catalog, probes, work, settings, reporter) -> dict[str, str]:
    reporter.say(f"swiftkit: the merged model answers {len(probes)} probes (the reference for llama.cpp)")
    asked = ask(ref, catalog, probes, work, name="merged-answers", max_new_tokens=settings.max_new_tokens,
                batch_size=settings.batch_size, cache=True)
    return asked.answers


def _write_one(model_dir: Path, q: str, path: Path, choice, work: Path, reporter: Reporter) -> dict:
    start = time.monotonic()
    facts = write.write(model_dir, q, path, choice.text, work / f"convert-{q}.log")
    seconds = round(time.monotonic() - start, 2)
    stored = read_header(path).metadata.get("tokenizer.chat_template")
    if choice.text is not None and stored != choice.text:
        raise write.WriteFailed(f"{path.name} does not carry the chat template swiftkit chose", work / f"convert-{q}.log")
    size = path.stat().st_size
    reporter.say(f"  {path.name}: {size / 2**20:.1f} MiB in {seconds:.1f} s (pre-tokenizer {facts.get('pre_tokenizer')})")
    return {"file": path.name, "type": q, "size_bytes": size, "sha256": file_sha256(path), "seconds": {"convert": seconds},
            "pre_tokenizer": facts.get("pre_tokenizer"), "pre_tokenizer_by": facts.get("pre_tokenizer_by")}


def _check(entry: dict, path: Path, probes: list[dict], system, reference: dict[str, str], work: Path, settings,
           reporter: Reporter, needed: float) -> None:
    got = ask_gguf(path, probes, system, work, name=f"llamacpp-{entry['type']}-answers",
                   max_new_tokens=settings.max_new_tokens,
                   parallel=max(4, min(8, (os.cpu_count() or 2) // 2)))
    keys = [row_key(r) for r in probes]
    same = [k for k in keys if k in reference and got.answers.get(k, "").strip() == reference[k].strip()]
    agreement = round(len(same) / len(keys), 4) if keys else 0.0
    entry.update(agreement=agreement, min_agreement=needed, verified=agreement >= needed,
                 similarity=round(sum(similarity(got.answers.get(k, ""), reference.get(k, "")) for k in keys)
                                  / len(keys), 4) if keys else None,
                 cut_off=sum(1 for k in keys if got.finish.get(k) == "length"), tokens_per_second=got.tokens_per_second,
                 disagreements=[{"query": r["query"], "merged": reference.get(k), "gguf": got.answers.get(k)}
                                for r, k in zip(probes, keys) if k not in same][:5])
    entry["seconds"].update(load=got.load_seconds, answer=got.seconds)
    reporter.say(f"  llama.cpp, {entry['type']}: same greedy answer as the merged model {len(same)}/{len(keys)} "
                 f"({agreement:.1%}; needed {needed:.0%}); mean chrF {entry['similarity']:.2f}; "
                 f"{got.tokens_per_second or 0:.1f} tokens/s")
    if not entry["verified"]:
        for d in entry["disagreements"][:3]:
            reporter.say(f"  differs: {d['query'][:50]!r}\n    merged: {str(d['merged'])[:70]!r}\n"
                         f"    gguf:   {str(d['gguf'])[:70]!r}")


def _eos(model_dir: Path) -> tuple[str, ...]:
    try:
        eos = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8")).get("eos_token")
    except (OSError, ValueError):
        return ()
    eos = eos.get("content") if isinstance(eos, dict) else eos
    return (eos,) if isinstance(eos, str) and eos else ()
