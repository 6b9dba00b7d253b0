"""`swiftkit export TARGET`: merge the adapter into the base model, check it answers the same, keep a record.

swift export (supervised like training) writes into a staging dir; the merged model then answers
the probes (identity and general) and must agree with base + adapter, greedy, before it is
marked verified; the marker goes in and the dir is renamed into place (results/exports.py). The run
record gains one entry in `exports`.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

from pydantic import ValidationError

from swiftkit import paths
from swiftkit.errors import EXIT_FAILURE, EXIT_OK, Problem, UserError
from swiftkit.flags.catalog import Catalog, load_catalog
from swiftkit.logparse import EXIT_CODES, diagnose
from swiftkit.process import supervise
from swiftkit.recipe.models import ExportSection, VerifySection
from swiftkit.render import ExportOptions, ModelRef, export_options, render_export
from swiftkit.results import exports, targets
from swiftkit.results.checkpoints import CHECKPOINT_DIR
from swiftkit.results.record import read_record, write_record
from swiftkit.results.weightfiles import check_model_dir
from swiftkit.run.progress import Reporter, make_reporter
from swiftkit.verify import verification
from swiftkit.verify.ask import AskFailed, ask, row_key
from swiftkit.verify.retention import similarity

# Lines of swift export worth showing while it works (the rest goes to the log).
PHASES = ("Merge LoRA...", "Saving merged weights...", "Successfully merged LoRA", "Successfully quantized")
DISK_HINT = "free space where the export goes (it needs about {need}), or pass --output on another disk"


def export(target: str, *, output: str | None = None, dtype: str | None = None, max_shard_size: str | None = None,
           quant_bits: int | None = None, quant_method: str | None = None, quant_dataset: tuple[str, ...] = (),
           do_verify: bool = True, quiet: bool = False, model_type: str | None = None, template: str | None = None) -> int:
    t = targets.resolve(target, model_type=model_type, template=template)
    options = _options(t, dtype, max_shard_size, quant_bits, quant_method, quant_dataset)
    final = Path(output).expanduser().resolve() if output else _default_dir(t, options)
    preflight(t, options, final)
    reporter = make_reporter(quiet=quiet)
    try:
        code, info = export_checkpoint(t, options, final, load_catalog(), reporter, do_verify=do_verify)
        if info is not None:
            record_export(t, info, reporter)
        return code
    finally:
        reporter.close()


def _options(t: targets.Target, dtype, max_shard_size, quant_bits, quant_method, quant_dataset) -> ExportOptions:
    base = export_options(t.recipe) if t.recipe else ExportOptions()
    method = quant_method or (base.quant_method if base.quant_bits == quant_bits else None)
    return ExportOptions(dtype or base.dtype, max_shard_size or base.max_shard_size, quant_bits or base.quant_bits,
                         (method or "bnb") if (quant_bits or base.quant_bits) else None,
                         [os.path.abspath(d) if os.path.exists(d) else d for d in quant_dataset] or base.quant_dataset)


def _default_dir(t: targets.Target, options: ExportOptions) -> Path:
    return exports.default_dir(t.path, options.quant_bits)


def preflight(t: targets.Target, options: ExportOptions, final: Path) -> None:
    """Everything that can be known before swift export starts; every problem at once, nothing written."""
    problems: list[Problem] = []
    if t.kind != "adapter":
        what = {"export": "a merged export", "full": "a fully tuned checkpoint"}.get(t.kind, "a model dir")
        problems.append(Problem(f"{t.path} is a full model already ({what}): there is no adapter to merge",
                                fix="export a LoRA checkpoint (swiftkit checkpoints RECIPE lists them)"))
    problems += destination_problems(final) + _option_problems(options) + _output_problems(t, final) + _quant_problems(options)
    base = Path(t.base_model)
    if t.kind == "adapter" and t.base_model and not base.exists() and base.is_absolute():
        problems.append(Problem(f"the base model {base} (named in {t.path / 'args.json'}) is not there any more",
                                fix="put the base model back at that path"))
    need = bytes_needed(t, options)
    free = shutil.disk_usage(existing_parent(final)).free
    if need and free < need:
        problems.append(Problem(f"not enough disk space for the export in {final.parent}: about {_size(need)} "
                                f"needed, {_size(free)} free", fix=DISK_HINT.format(need=_size(need))))
    if problems:
        raise UserError(problems, headline="swiftkit export: nothing was exported")


def destination_problems(final: Path) -> list[Problem]:
    """An export is never written over another, nor beside what a cut-off one left."""
    problems = []
    if final.exists():
        state = "a complete export" if not exports.problems(final) else "not a complete export"
        problems.append(Problem(f"{final} already exists ({state}); swiftkit never overwrites an export",
                                fix="pass --output NEW_DIR, or delete it first"))
    for leftover in exports.leftovers(final):
        problems.append(Problem(f"{leftover} is what an earlier export to {final.name} left when it was cut off",
                                fix=f"delete it: rm -r {leftover}"))
    return problems


# The command line's spelling of each export option, for errors about the values given there.
_FLAGS = {"dtype": "--dtype", "max_shard_size": "--max-shard-size", "quant_bits": "--quant-bits",
          "quant_method": "--quant-method"}


def _option_problems(options: ExportOptions) -> list[Problem]:
    """The options checked as a recipe's `export:` section is, before the merge starts (a bad shard size would
    otherwise fail inside ms-swift after the merge)."""
    values = {name: getattr(options, name) for name in _FLAGS if getattr(options, name) is not None}
    try:
        ExportSection.model_validate(values)
    except ValidationError as exc:
        return [Problem(f"{_FLAGS.get(str(e['loc'][0]), e['loc'][0])} {values.get(e['loc'][0])!s}: "
                        + ("not a size" if e["loc"][0] == "max_shard_size" else e["msg"]),
                        fix="a number and a unit, such as 2GB or 500MB" if e["loc"][0] == "max_shard_size" else None)
                for e in exc.errors() if e["loc"]]  # rules across options: _quant_problems words them for the CLI
    return []


def _output_problems(t: targets.Target, final: Path) -> list[Problem]:
    """The export must not land inside what it is made from: ms-swift's checkpoint rotation deletes checkpoint
    dirs whole, and a later export of the checkpoint would find its own output inside it."""
    run_dir = t.path.parent
    inside = [d for d in [t.path, *run_dir.glob("checkpoint-*")] if d.is_dir() and CHECKPOINT_DIR.match(d.name)
              and (final == d.resolve() or d.resolve() in final.parents)]
    if not inside and final != run_dir.resolve():
        return []
    what = (f"inside {inside[0]}, the checkpoint being exported" if inside and inside[0] == t.path else
            f"inside {inside[0]}, a checkpoint of the run being exported" if inside else f"the run dir {run_dir}")
    return [Problem(f"--output {final} is {what}", fix=f"pass a dir outside it, e.g. {exports.default_dir(t.path, None)}")]


def _quant_problems(options: ExportOptions) -> list[Problem]:
    if not options.quant_bits:
        return []
    method = options.quant_method
    if method in ("gptq", "gptq_v2", "awq") and not options.quant_dataset:
        return [Problem(f"--quant-method {method} needs calibration data",
                        fix="pass --quant-dataset FILE (a few hundred rows like the training data), "
                            "or use --quant-method bnb, which needs none")]
    package = {"bnb": "bitsandbytes", "gptq": "optimum", "gptq_v2": "optimum", "awq": "awq"}[method]
    if importlib.util.find_spec(package) is None:
        return [Problem(f"--quant-method {method} needs the Python package {package}, which is not installed",
                        fix=f"pip install {'autoawq' if package == 'awq' else package}"
                            + (" gptqmodel" if package == "optimum" else ""))]
    if method in ("bnb", "awq", "gptq", "gptq_v2") and not _has_cuda():
        return [Problem(f"--quant-method {method} quantizes on a CUDA GPU and none is visible here",
                        fix="run the export on a GPU machine, or export without --quant-bits")]
    return []


def _has_cuda() -> bool:
    import torch  # only on the quantization path: importing torch costs seconds

    return torch.cuda.is_available()


def bytes_needed(t: targets.Target, options: ExportOptions) -> int:
    """About the base model's weights (same dtype), scaled for another dtype or a quantization."""
    base = Path(t.base_model)
    if not base.is_dir():
        return 0
    size = sum(f.stat().st_size for f in exports.weight_files(base))
    scale = 1.0
    trained = str(t.args.get("torch_dtype") or "")
    if options.dtype and trained:
        scale = (4 if options.dtype == "float32" else 2) / (4 if trained == "float32" else 2)
    if options.quant_bits:
        scale *= options.quant_bits / 16
    return int(size * scale)


def existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def export_checkpoint(t: targets.Target, options: ExportOptions, final: Path, catalog: Catalog, reporter: Reporter,
                      *, do_verify: bool = True) -> tuple[int, exports.ExportInfo | None]:
    """Merge, check, verify, mark, move into place (the caller records it). The export step of `swiftkit run` too."""
    staging = exports.staging_dir(final)
    work = t.path.parent / "exports" / final.name  # the log and the verification answers
    final.parent.mkdir(parents=True, exist_ok=True)
    ref = t.ref(options.dtype)
    inv = render_export(t.ref(), catalog, output_dir=staging, options=options, swift=paths.swift_command())
    reporter.say(f"swiftkit: exporting {t.path} -> {final}\n$ {inv.display()}")
    start = time.monotonic()
    finished = supervise(inv.argv, inv.env, work / "export.log", lambda line: _phase(reporter, line))
    merge_seconds = round(time.monotonic() - start, 2)
    if finished.returncode != 0:
        return _failed(finished, staging, final, t, options, reporter), None
    problems = check_model_dir(staging)
    if problems:
        shutil.rmtree(staging, ignore_errors=True)
        reporter.say(f"swiftkit: swift export exited 0 but the merged model is not whole: {'; '.join(problems)}\n"
                     f"  full log: {finished.log_path}")
        return EXIT_FAILURE, None
    size, digests = exports.describe(staging)
    info = exports.ExportInfo(str(final), str(t.path), t.base_model, size, digests, ref.dtype,
                              asdict(options) if options.quant_bits else None, seconds={"merge": merge_seconds})
    code = _verify(t, ref, staging, info, catalog, work, reporter) if do_verify else EXIT_OK
    exports.write_marker(staging, info)
    os.rename(staging, final)
    verdict = ("verified" if info.verified else "NOT verified") if do_verify else "not verified (--no-verify)"
    reporter.say(f"swiftkit: exported {final}\n  {_size(size)} in {len(digests)} weight file(s), merge "
                 f"{merge_seconds:.1f} s, {verdict}")
    return code, info


def _phase(reporter: Reporter, line: str) -> None:
    if any(p in line for p in PHASES):
        reporter.say(f"  {line.split('] ', 1)[-1].strip()}")


def _failed(finished, staging: Path, final: Path, t: targets.Target, options: ExportOptions,
            reporter: Reporter) -> int:
    shutil.rmtree(staging, ignore_errors=True)  # a cut-off merge never stays around looking like an export
    diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
    if diagnosis.kind == "disk_full":
        diagnosis = replace(diagnosis, hint=DISK_HINT.format(need=_size(bytes_needed(t, options) or 0)))
    reporter.say(f"swiftkit: export failed: {diagnosis.message}\n  evidence: {diagnosis.evidence.strip()[:300]}\n"
                 f"  try: {diagnosis.hint}\n  nothing was left at {final}\n  full log: {finished.log_path}")
    return diagnosis.exit_code


def default_min_agreement(dtype: str | None) -> float:
    """float32: merging is exact to rounding, so every greedy answer must match (measured: 212 of 212 on the CPU
    and on an H200, random and real weights). 16 bits: W + BA rounded once to bf16/fp16 is not W x + B(A x)
    computed unmerged; a near-tie between two tokens flips, and the answer goes its own way from there.
    Measured in bf16 (bench/results/real-smollm2-gpu, gpu-after-training): real SmolLM2-135M-Instruct tuned
    on the identity 86.3 % and, tuned on identity + 300 general rows, 83.0 %; Qwen2.5-7B's shape with random
    weights (flat logits, near-ties everywhere: the worst case) 77.8 %. A broken merge (a wrong base or a
    dropped adapter) answers as the base model does, which on the real model is none of the 212 answers
    (0 % of the general answers exact, no identity answer). 0.7 keeps a margin under every real export
    measured and far above a broken one."""
    return 1.0 if (dtype or "float32") == "float32" else 0.7


def _verify(t: targets.Target, ref: ModelRef, staging: Path, info: exports.ExportInfo, catalog: Catalog,
            work: Path, reporter: Reporter) -> int:
    settings = t.recipe.verify if t.recipe else VerifySection()
    identity_probes = t.data_dir / "identity.probes.jsonl" if t.data_dir else None
    probes = verification.load(settings.model_copy(update={"retention": True}), identity_probes, None).main_rows()
    merged = ModelRef(str(staging), None, ref.model_type, ref.template, ref.dtype, ref.system, ref.env)
    reporter.say(f"swiftkit: checking the merged model against base + adapter on {len(probes)} probes")
    start = time.monotonic()
    try:
        kw = {"max_new_tokens": settings.max_new_tokens, "batch_size": settings.batch_size}
        adapter = ask(ref, catalog, probes, work, name="adapter-answers", **kw).answers
        answers = ask(merged, catalog, probes, work, name="merged-answers", cache=True, **kw).answers  # GGUF's reference
    except AskFailed as failed:
        reporter.say(f"swiftkit: could not check the export: {failed}")
        return failed.diagnosis.exit_code if failed.diagnosis else EXIT_FAILURE
    keys = [row_key(r) for r in probes]
    same = [k for k in keys if k in adapter and answers.get(k) == adapter[k]]
    info.probes, info.agreement = len(probes), round(len(same) / len(probes), 4) if probes else None
    info.min_agreement = (t.recipe.export.min_agreement if t.recipe else None) or default_min_agreement(ref.dtype)
    info.similarity = round(sum(similarity(answers.get(k, ""), adapter.get(k, "")) for k in keys) / len(probes),
                            4) if probes else None
    info.disagreements = [{"query": r["query"], "adapter": adapter.get(k), "merged": answers.get(k)}
                          for r, k in zip(probes, keys) if k not in same][:5]
    info.verified = info.agreement is not None and info.agreement >= info.min_agreement
    info.seconds["verify"] = round(time.monotonic() - start, 2)
    reporter.say(f"  same greedy answer as base + adapter: {len(same)}/{len(probes)} ({info.agreement:.1%}; "
                 f"needed {info.min_agreement:.0%} in {ref.dtype}); mean chrF {info.similarity:.2f}")
    if info.verified:
        return EXIT_OK
    for d in info.disagreements[:3]:
        reporter.say(f"  differs: {d['query'][:50]!r}\n    adapter: {str(d['adapter'])[:70]!r}\n"
                     f"    merged:  {str(d['merged'])[:70]!r}")
    return EXIT_CODES["export_unverified"]


def record_export(t: targets.Target, info: exports.ExportInfo, reporter: Reporter) -> None:
    if t.record_path is None:
        return
    try:
        record = read_record(t.record_path)
    except UserError as exc:
        reporter.say(f"swiftkit: the run record could not be updated: {exc.format()}")
        return
    record.exports.append(info.to_dict())
    write_record(t.record_path, record)
