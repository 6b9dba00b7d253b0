"""`swiftkit verify TARGET`: the whole verification (identity + retention) of a checkpoint or an export, no training."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from swiftkit.errors import EXIT_FAILURE, EXIT_OK, UserError
from swiftkit.flags.catalog import load_catalog
from swiftkit.recipe.models import VerifySection
from swiftkit.results import targets
from swiftkit.results.checkpoints import CHECKPOINT_DIR, inspect_checkpoint, kept
from swiftkit.results.record import read_record, write_record
from swiftkit.run.progress import make_reporter
from swiftkit.verify import per_checkpoint, verification
from swiftkit.verify.ask import AskFailed


def verify(target: str, *, general_probes: str | None = None, retention: bool = True, min_score: float | None = None,
           min_retention: float | None = None, quiet: bool = False, model_type: str | None = None,
           template: str | None = None, checkpoints: str | None = None) -> int:
    t = targets.resolve(target, model_type=model_type, template=template)
    mode = checkpoints or (t.recipe.verify.checkpoints if t.recipe and not CHECKPOINT_DIR.match(Path(target).name)
                           else "last")
    if mode != "last" and t.kind != "adapter":
        raise UserError.one(f"--checkpoints {mode}: {t.path} is {KINDS.get(t.kind, t.kind)}, not a checkpoint of a "
                            "LoRA run whose adapters can be swapped", fix="verify it alone (drop --checkpoints), or "
                            "give a LoRA run's output dir or one of its checkpoints")
    settings = (t.recipe.verify if t.recipe else VerifySection()).model_copy(update={"retention": retention})
    if min_score is not None:
        settings = settings.model_copy(update={"min_score": min_score})
    if min_retention is not None:
        settings = settings.model_copy(update={"min_retention": min_retention})
    identity = t.recipe.identity if t.recipe else None
    identity_probes = t.data_dir / "identity.probes.jsonl" if t.data_dir else None
    general = Path(general_probes).resolve() if general_probes else t.general_probes
    catalog = load_catalog()
    ref = t.ref()
    template = catalog.template_of(ref.model_type, ref.template)
    probes = verification.load(settings, identity_probes, general, identity=identity,
                               train_system=ref.system, template=template,
                               default_system=catalog.default_system(template))
    if not probes.rows():
        raise UserError.one(f"nothing to verify {t.path} with: no identity probes (no run record beside it) "
                            "and retention is off", fix="drop --no-retention, or verify a checkpoint of a swiftkit run")
    reporter = make_reporter(quiet=quiet)
    # answers beside the model, never inside it: an export's files are what its marker vouches for
    folder = t.path.parent / f"{t.path.name}.verify" if t.kind in ("export", "model") else t.path.parent / "verify" / t.path.name
    found = kept(inspect_checkpoint(t.path)) if mode != "last" else []
    tuned = [(replace(ref, adapter=c.path), c.path.name, c.step, c.loss) for c in found] or [(ref, t.path.name, 0, None)]
    try:
        v, scored = per_checkpoint.verify_kept(tuned, t.base_ref(), catalog, probes,
                                               folder=t.path.parent / "verify" / "checkpoints", folder_for_one=folder,
                                               mode=mode, settings=settings, identity=identity, say=reporter.say)
    except AskFailed as failed:
        reporter.say(f"swiftkit: verification failed: {failed}")
        return failed.diagnosis.exit_code if failed.diagnosis else EXIT_FAILURE
    finally:
        reporter.close()
    _record(t, v, scored.to_dict(mode) if scored else None)
    for failure in v.failures:
        reporter.say(f"swiftkit: {failure}")
    return EXIT_FAILURE if v.failures else EXIT_OK


KINDS = {"export": "a merged export", "model": "a model dir", "full": "a full fine-tune's checkpoint"}


def _record(t: targets.Target, v: verification.Verified, scores: dict | None = None) -> None:
    """A checkpoint's verification lands in its run record, under `verifications` (the run's own stays as it was)."""
    if t.record_path is None:
        return
    record = read_record(t.record_path)
    entry = {"target": str(t.path), "kind": t.kind, "answers": str(v.answers_path), "seconds": v.seconds,
             "scorecard": v.card.to_dict() if v.card else None, "retention": v.retention.to_dict() if v.retention
             else None, **v.extra(), "failures": v.failures, **({"checkpoint_scores": scores} if scores else {})}
    record.extra.setdefault("verifications", []).append(entry)
    write_record(t.record_path, record)
