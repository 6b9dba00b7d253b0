"""`swiftkit run`: recipe -> checks -> data -> supervised swift sft (OOM ladder, resume) ->
checkpoint -> verification.

This is the one place that chains the steps; reading it reads the whole job.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from swiftkit import paths
from swiftkit.checks.collect import Checked, check
from swiftkit.datasets import IdentityFiles
from swiftkit.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Problem, UserError, printable
from swiftkit.launch.node import LaunchOptions, resolve_launch
from swiftkit.plan.sizing import Sizing, plan_for_run, with_choices
from swiftkit.recipe.models import Recipe
from swiftkit.render import Plan, export_options, model_ref
from swiftkit.results import checkpoints, exports, step_profile, targets
from swiftkit.results.checkpoints import Checkpoint
from swiftkit.results.record import RunRecord
from swiftkit.run import lock as runlock, nodes
from swiftkit.run.prepare import convert_model, new_record, prepare_data
from swiftkit.run.progress import Reporter, make_reporter
from swiftkit.run.resume import find_resumable
from swiftkit.run.training import Session
from swiftkit.verify import per_checkpoint, verification
from swiftkit.verify.ask import AskFailed, Prewarmed


def run(recipe: str, *, overrides: list[str] | None = None, quiet: bool = False, events: bool = False,
        do_verify: bool = True, launch_options: LaunchOptions | None = None, profile_steps: int | None = None) -> int:
    started = time.monotonic()
    launch = resolve_launch(launch_options, os.environ)  # which node this is: options, Slurm, or one node
    checked = check(recipe, overrides=overrides, launch=launch)
    missing = paths.swift_command_problem(checked.catalog.version)
    if missing is not None:
        raise UserError([missing], headline=f"{recipe}: ms-swift cannot be started; nothing was run")
    checked = convert_model(checked, print_err if not quiet else lambda text: None)
    planned = plan_for_run(checked)  # may refuse (exit 2) a run that cannot fit, before anything is written
    short = step_profile.too_few_steps(profile_steps, planned.steps if planned else None) if profile_steps else None
    if short is not None:
        fewer = max(1, ((planned.steps or 0) - step_profile.WARMUP) // 2)
        raise UserError([Problem(short, fix=f"--profile-steps {fewer}, or train longer (train.epochs)")],
                        headline=f"{recipe}: too short to profile; nothing was run")
    lock_name = runlock.LOCK_NAME if launch.is_primary else f"node{launch.node_rank}.lock"
    with runlock.hold(checked.plan.output_dir, checked.loaded.path, lock_name) as lock_fd:  # or refuse
        if not launch.is_primary:
            from swiftkit.commands.run_node import follow

            return follow(checked, lock_fd, quiet=quiet, events=events)
        return _run(checked, planned, lock_fd, quiet=quiet, events=events, do_verify=do_verify, started=started,
                    profile_steps=profile_steps)


PROFILE_ANSWERS = "SWIFTKIT_PROFILE_ANSWERS"


def print_err(text: str) -> None:
    print(printable(text), file=sys.stderr, flush=True)


def _run(checked: Checked, planned: Sizing | None, lock_fd: int | None, *, quiet: bool, events: bool,
         do_verify: bool, started: float | None = None, profile_steps: int | None = None) -> int:
    reporter = make_reporter(quiet=quiet, events=events)
    session: Session | None = None
    prewarmed: Prewarmed | None = None
    try:
        identity = prepare_data(checked)
        record = new_record(checked, identity)
        plan = resume_plan(checked, record, reporter, planned)
        if plan.launch.multi_node:
            nodes.clear(plan.output_dir)  # an earlier run's word to the other nodes is not this run's
            record.extra["launch"] = plan.launch.to_json()
            reporter.say(f"swiftkit: {plan.launch.describe()}; node 0 owns the run record, verification and export")
        if planned is not None:
            record.extra["memory_plan"] = planned.to_json()
            reporter.say(f"swiftkit: {planned.line()}" + (f"\n  auto: {planned.choice}" if planned.choice else ""))
        reporter.say(f"swiftkit: training {checked.loaded.path} (ms-swift {checked.catalog.version})")
        session = Session(checked, record, reporter, lock_fd, profile_steps=profile_steps)
        code = replay_step(checked, session)
        if code != EXIT_OK:
            return code
        if profile_steps:  # this run's answer worker profiles its first engine call (child/answer_worker.py)
            os.environ[PROFILE_ANSWERS] = "1"
        prewarmed = prewarm(checked, plan) if do_verify else None
        code, checkpoint = session.train(plan)
        if checkpoint is None:
            return code
        if do_verify and checked.loaded.recipe.verify.enabled:
            code, checkpoint = verify_step(checked, session, checkpoint, identity, prewarmed)
            call = step_profile.read_call(Path(checkpoint.path).parent / "verify") if profile_steps else None
            if call is not None:
                reporter.say("\n".join(step_profile.call_lines(call)))
            if code != EXIT_OK:
                return code
        if checked.loaded.recipe.export.merge or checked.loaded.recipe.export.format == "gguf":
            return export_step(checked, session, checkpoint)
        return EXIT_OK
    finally:
        if profile_steps:
            os.environ.pop(PROFILE_ANSWERS, None)  # the next run in this process (tests run many) is not profiled
        if prewarmed is not None:
            prewarmed.close()  # used or not, it ends with the run
        if session is not None:
            session.record_timings(started)
            # every run gets its report, a failed or interrupted one too; after_run never raises
            from swiftkit.commands.report import after_run

            after_run(session.record_path, reporter.say)
        reporter.close()


def replay_step(checked: Checked, session: Session) -> int:
    """Replay entries: the base model answers their prompts (or the cache does), and the rows go into the run's
    data before the first attempt. A generation that fails or is stopped keeps the parts it finished."""
    entries = [i for i, d in enumerate(checked.loaded.recipe.datasets) if d.replay]
    if not entries:
        return EXIT_OK
    from swiftkit.replay.generate import cache_for, generate, summary

    record, say, made = session.record, session.reporter.say, []
    for i in entries:
        try:
            made.append(generate(checked, i, checked.plan.output_dir / ".swiftkit", say))
        except AskFailed as failed:
            code = failed.diagnosis.exit_code if failed.diagnosis else EXIT_FAILURE
            stopped = bool(failed.diagnosis and failed.diagnosis.kind == "interrupted")
            record.status, record.exit_code = ("interrupted" if stopped else "failed"), code
            record.extra["replay"] = {"error": failed.to_dict(), "entry": i, "cache": str(cache_for(checked, i))}
            session.save()
            say(f"swiftkit: replay: the base model did not answer its prompts: {failed}\n  the parts answered "
                "before are cached: the next run asks only for the rest; nothing was trained")
            return code
    for m in made:
        if m.kept == 0:  # ms-swift would fail on an empty file minutes later, with StopIteration
            record.status, record.exit_code = "failed", EXIT_FAILURE
            record.extra["replay"] = [x.to_dict() for x in made]
            session.save()
            say(f"swiftkit: replay: every answer of the base model was dropped ({summary(m.to_dict() | {'share': None})}"
                f"); nothing was trained\n  the answers: {m.cache}\n  fix: a model that answers these prompts, a larger "
                "replay.max_new_tokens (if they were cut off), or another prompt file")
            return EXIT_FAILURE
    other_rows = [d.get("usable_rows", d.get("rows")) for d in record.datasets]
    hub = [d.samples for d in checked.loaded.recipe.datasets if d.hub]
    total = None if None in hub or None in other_rows else sum(other_rows) + sum(hub) + sum(m.kept for m in made)
    record.extra["replay"] = [{**m.to_dict(), "share": round(m.kept / total, 3) if total else None} for m in made]
    record.datasets += [{"path": m.path, "rows": m.kept, "replay": True} for m in made]
    for m in record.extra["replay"]:
        say(f"swiftkit: {summary(m)}")
    session.save()
    return EXIT_OK


def resume_plan(checked: Checked, record: RunRecord, reporter: Reporter, planned: Sizing | None = None) -> Plan:
    """output.resume auto: continue this recipe's unfinished run from its last complete checkpoint."""
    plan, r = checked.plan, checked.loaded.recipe
    if r.output.resume != "auto":
        return plan
    found = find_resumable(plan.output_dir, record.recipe_hash or "")
    if found is None:
        return plan
    recipe = Recipe.model_validate(found.recipe) if found.recipe else r
    record.extra["resumed_from"] = {"record": str(found.record_path), "checkpoint": str(found.checkpoint.path),
                                    "step": found.checkpoint.step}
    reporter.say(f"swiftkit: resuming the unfinished run from {found.checkpoint.path} (step {found.checkpoint.step})")
    if planned is not None:  # the same choices as the run being continued made from the same plan
        recipe = with_choices(recipe, planned)
    return plan.with_recipe(recipe, resume_from=Path(found.checkpoint.path))


def prewarm(checked: Checked, plan: Plan) -> Prewarmed | None:
    """verify.prewarm: the engine that will verify starts importing ms-swift now, while training runs."""
    v, r = checked.loaded.recipe.verify, checked.loaded.recipe
    wanted = v.prewarm if isinstance(v.prewarm, bool) else r.gpu.count > 0
    if not (wanted and v.enabled and r.lora.tuner != "full"):
        return None
    return Prewarmed(model_ref(plan, None).env, plan.output_dir / ".swiftkit" / f"answers-prewarm-{os.getpid()}.log",
                     plan.model if plan.model_is_local and v.retention else None)


def verify_step(checked: Checked, session: Session, checkpoint: Checkpoint, identity: IdentityFiles | None,
                prewarmed: Prewarmed | None = None) -> tuple[int, Checkpoint]:
    """Ask the trained model the identity and general probes; judge against verify.min_score / min_retention.
    verify.checkpoints all|best scores every kept checkpoint; the checkpoint returned is the one to export (the
    chosen one under best)."""
    r, record, reporter = checked.loaded.recipe, session.record, session.reporter
    template = checked.catalog.template_of(checked.plan.model_type, checked.plan.template)
    probes = verification.load(r.verify, identity.probes_path if identity else None, checked.general_probes,
                               identity=r.identity, train_system=r.train.system, template=template,
                               default_system=checked.catalog.default_system(template))
    if not probes.rows():
        reporter.say("swiftkit: nothing to verify (no identity dataset, no verify.probes, retention off)")
        return EXIT_OK, checkpoint
    plan, folder = checked.plan, Path(checkpoint.path).parent / "verify"
    kept = checkpoints.kept(checkpoint) if r.verify.checkpoints != "last" else [checkpoint]
    try:
        v, scored = per_checkpoint.verify_kept(
            [(model_ref(plan, Path(c.path)), Path(c.path).name, c.step, c.loss) for c in kept], model_ref(plan, None),
            checked.catalog, probes, folder=folder, folder_for_one=folder, mode=r.verify.checkpoints,
            settings=r.verify, identity=r.identity, say=reporter.say, prewarmed=prewarmed)
        if scored is not None and r.verify.checkpoints == "best":
            checkpoint = next(c for c in kept if Path(c.path).name == scored.chosen.checkpoint)
    except AskFailed as failed:
        record.verification = {"error": failed.to_dict()}
        session.save()
        reporter.say(f"swiftkit: verification failed: {failed}")
        return (failed.diagnosis.exit_code if failed.diagnosis else EXIT_FAILURE), checkpoint
    record.verification = {**(v.card.to_dict() if v.card else {}), "min_score": r.verify.min_score,
                           **v.extra(), "failures": v.failures, "answers": str(v.answers_path),
                           "seconds": v.seconds, "phases": v.phases, "checkpoint": str(checkpoint.path)}
    if scored is not None:  # the checkpoint judged (the last, or the one chosen) is `checkpoint`
        record.extra["checkpoint_scores"] = scored.to_dict(r.verify.checkpoints)
    record.retention = {**v.retention.to_dict(), "min_retention": r.verify.min_retention,
                        "eval_loss": held_out_loss(record.summary)} if v.retention else None
    if record.retention and record.retention["eval_loss"]:
        e = record.retention["eval_loss"]
        reporter.say(f"  {'eval loss on held-out general rows':40} {e['start']:.4g} at step 0 -> {e['end']:.4g} "
                     f"at step {e['end_step']}")
    code = EXIT_OK
    for failure in v.failures:
        reporter.say(f"swiftkit: {failure}")
        # trained but unverified: not "failed", so `run` again starts fresh instead of resuming
        record.status, record.exit_code, code = "unverified", EXIT_FAILURE, EXIT_FAILURE
    session.save()
    return code, checkpoint


def held_out_loss(summary: dict) -> dict | None:
    """Eval loss on the held-out general rows at step 0 (the base model) and at the end, when there was one."""
    start, end = summary.get("eval_loss_start"), summary.get("eval_loss_end")
    if not start or not end or start.get("step") != 0:
        return None
    return {"start": start["loss"], "end": end["loss"], "end_step": end["step"]}


def export_step(checked: Checked, session: Session, checkpoint: Checkpoint) -> int:
    """export.merge: the adapter merged into the base, verified against base + adapter, recorded."""
    from swiftkit.commands import export as exporting

    loaded, reporter = checked.loaded, session.reporter
    target = targets.resolve(str(checkpoint.path))
    options = export_options(loaded.recipe, loaded.resolve)
    e = loaded.recipe.export
    final = loaded.paths.export_dir if e.dir else exports.default_dir(Path(checkpoint.path), options.quant_bits)
    try:
        exporting.preflight(target, options, final)
    except UserError as exc:
        reporter.say(f"swiftkit: trained and verified, but not exported:\n{exc.format()}")
        return EXIT_USAGE
    code, info = exporting.export_checkpoint(target, options, final, checked.catalog, reporter)
    if info is not None:
        session.record.exports.append(info.to_dict())
    if code == EXIT_OK and e.format == "gguf":
        code = gguf_step(checked, session, final)
    session.record.exit_code = code  # trained and verified; the export's verdict decides the exit
    session.save()
    return code


def gguf_step(checked: Checked, session: Session, merged: Path) -> int:
    """export.format gguf: the verified merged model as GGUF files, checked in llama.cpp, recorded."""
    from swiftkit.commands import export_gguf
    from swiftkit.gguf.outtypes import chosen

    source, types = targets.resolve(str(merged)), chosen(checked.loaded.recipe.export.gguf_quant)
    final = export_gguf.default_dir(merged)
    try:
        export_gguf.preflight(source, types, merged, False, final, True, export_options(checked.loaded.recipe))
    except UserError as exc:
        session.reporter.say(f"swiftkit: trained, verified and merged, but no GGUF written:\n{exc.format()}")
        return EXIT_USAGE
    code, info = export_gguf.gguf_step(source, types, final, checked.catalog, session.reporter)
    if info is not None:
        session.record.exports.append(info.to_dict())
    return code
