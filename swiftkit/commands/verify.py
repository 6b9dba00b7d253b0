"""`swiftkit verify TARGET`: the whole verification (identity + retention) of a checkpoint or an export, no training."""
from __future__ import annotations

from pathlib import Path

from swiftkit.errors import EXIT_FAILURE, EXIT_OK, UserError
from swiftkit.flags.catalog import load_catalog
from swiftkit.recipe.models import VerifySection
from swiftkit.results import targets
from swiftkit.results.record import read_record, write_record
from swiftkit.run.progress import make_reporter
from swiftkit.verify import verification
from swiftkit.verify.ask import AskFailed


def verify(target: str, *, general_probes: str | None = None, retention: bool = True, min_score: float | None = None,
           min_retention: float | None = None, quiet: bool = False, model_type: str | None = None,
           template: str | None = None) -> int:
    t = targets.resolve(target, model_type=model_type, template=template)
    settings = (t.recipe.verify if t.recipe else VerifySection()).model_copy(update={"retention": retention})
    if min_score is not None:
        settings = settings.model_copy(update={"min_score": min_score})
    if min_retention is not None:
        settings = settings.model_copy(update={"min_retention": min_retention})
    identity_probes = t.data_dir / "identity.probes.jsonl" if t.data_dir else None
    general = Path(general_probes).resolve() if general_probes else t.general_probes
    catalog = load_catalog()
    ref = t.ref()
    template = catalog.template_of(ref.model_type, ref.template)
    probes = verification.load(settings, identity_probes, general, identity=t.recipe.identity if t.recipe else None,
                               train_system=ref.system, template=template,
                               default_system=catalog.default_system(template))
    if not probes.rows():
        raise UserError.one(f"nothing to verify {t.path} with: no identity probes (no run record beside it) "
                            "and retention is off", fix="drop --no-retention, or verify a checkpoint of a swiftkit run")
    reporter = make_reporter(quiet=quiet)
    # answers beside the model, never inside it: an export's files are what its marker vouches for
    folder = t.path.parent / f"{t.path.name}.verify" if t.kind in ("export", "model") else t.path.parent / "verify" / t.path.name
    try:
        v = verification.verify_model(ref, t.base_ref(), catalog, probes, folder, settings=settings,
                                      identity=t.recipe.identity if t.recipe else None, say=reporter.say)
    except AskFailed as failed:
        reporter.say(f"swiftkit: verification failed: {failed}")
        return failed.diagnosis.exit_code if failed.diagnosis else EXIT_FAILURE
    finally:
        reporter.close()
    _record(t, v)
    for failure in v.failures:
        reporter.say(f"swiftkit: {failure}")
    return EXIT_FAILURE if v.failures else EXIT_OK


def _record(t: targets.Target, v: verification.Verified) -> None:
    """A checkpoint's verification lands in its run record, under `verifications` (the run's own stays as it was)."""
    if t.record_path is None:
        return
    record = read_record(t.record_path)
    entry = {"target": str(t.path), "kind": t.kind, "answers": str(v.answers_path), "seconds": v.seconds,
             "scorecard": v.card.to_dict() if v.card else None, "retention": v.retention.to_dict() if v.retention
             else None, **v.extra(), "failures": v.failures}
    record.extra.setdefault("verifications", []).append(entry)
    write_record(t.record_path, record)
