"""`swiftkit run`: recipe -> checks -> data -> supervised swift sft -> checkpoint -> verification.

This is the one place that chains the steps; reading it reads the whole job.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from .. import paths
from ..checkpoints import Checkpoint, find_runs, last_complete, run_dir_from_log
from ..checks import Checked, check
from ..datasets import IdentityFiles
from ..errors import EXIT_FAILURE, EXIT_OK
from ..host import host_info
from ..logparse import (BestCheckpoint, Diagnosis, LastCheckpoint, OutputDir, Progress, TrainSummary, diagnose,
                        parse_line, parse_logging_jsonl_line)
from ..prepare import prepare_data
from ..process import Finished, supervise
from ..progress import Reporter, make_reporter
from ..record import RunRecord, now, redact_argv, redact_env, versions, write_record
from ..render import render_infer, render_sft
from .. import verify as verification

RECORD_NAME = "swiftkit-run.json"


def run(recipe: str, *, overrides: list[str] | None = None, quiet: bool = False, events: bool = False,
        do_verify: bool = True) -> int:
    checked = check(recipe, overrides=overrides)
    reporter = make_reporter(quiet=quiet, events=events)
    try:
        identity = prepare_data(checked)
        record = new_record(checked, identity)
        reporter.say(f"swiftkit: training {checked.loaded.path} (ms-swift {checked.catalog.version})")
        train = Training(checked, record, reporter)
        finished = train.start()
        if finished.returncode != 0:
            return train.failed(finished)
        checkpoint = train.succeeded(finished)
        if checkpoint is None:
            return EXIT_FAILURE
        if do_verify and checked.loaded.recipe.verify.enabled:
            return verify_step(checked, record, train.record_path, checkpoint, identity, reporter)
        return EXIT_OK
    finally:
        reporter.close()


def new_record(checked: Checked, identity: IdentityFiles | None) -> RunRecord:
    r = checked.loaded.recipe
    data = [{"path": str(rep.path), "sha256": rep.sha256, "rows": rep.rows, "usable_rows": rep.usable_rows,
             "format": rep.format, "too_long": rep.too_long} for rep in checked.reports]
    if identity is not None:
        data.append({"path": str(identity.train_path), "sha256": identity.sha256, "rows": identity.train_rows,
                     "identity": True, "heldout_rows": identity.heldout_rows})
    return RunRecord(recipe=str(checked.loaded.path.resolve()), recipe_hash=r.digest(),
                     resolved_recipe=r.model_dump(mode="json"), cwd=os.getcwd(),
                     output_dir=str(checked.plan.output_dir), versions=versions(), host=host_info(), datasets=data,
                     started_at=now())


class Training:
    """One supervised `swift sft`: parse its output into events, keep the record current."""

    def __init__(self, checked: Checked, record: RunRecord, reporter: Reporter):
        self.checked, self.record, self.reporter = checked, record, reporter
        self.run_dir: Path | None = None
        self.log_path = checked.plan.output_dir / ".swiftkit" / f"sft-{os.getpid()}.log"
        self.record_path: Path | None = None
        self.peak_memory: float | None = None
        self.last_progress: Progress | None = None

    def start(self) -> Finished:
        plan = self.checked.plan
        inv = render_sft(plan, self.checked.catalog, swift=paths.swift_command())
        self.record.command, self.record.env = redact_argv(inv.argv), redact_env(inv.env)
        self.record.status, self.record.log_path = "running", str(self.log_path)
        self.record.attempts.append({"attempt": 1, "started_at": now(), "micro_batch": plan.micro_batch,
                                     "gradient_accumulation": plan.grad_accum})
        self.reporter.say(f"$ {inv.display()}")
        return supervise(inv.argv, inv.env, self.log_path, self.on_line)

    def on_line(self, line: str) -> None:
        for ev in parse_line(line):
            if isinstance(ev, OutputDir) and self.run_dir is None:
                self.adopt_run_dir(Path(ev.path))
            elif isinstance(ev, Progress):
                self.last_progress = ev
                if ev.memory_gib is not None:
                    self.peak_memory = max(self.peak_memory or 0.0, ev.memory_gib)
            self.reporter.event(ev)

    def adopt_run_dir(self, run_dir: Path) -> None:
        """The run dir is known: move the log and the record into it (the open log follows the rename)."""
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir / "swiftkit.log"
        try:
            os.replace(self.log_path, target)
            self.log_path = target
        except OSError:
            pass
        self.record.run_dir, self.record.log_path = str(run_dir), str(self.log_path)
        self.record_path = run_dir / RECORD_NAME
        self.save()

    def save(self) -> None:
        if self.record_path is None:
            self.record_path = self.checked.plan.output_dir / ".swiftkit" / f"{RECORD_NAME}.{os.getpid()}"
        write_record(self.record_path, self.record)

    def finish_attempt(self, finished: Finished, diagnosis: Diagnosis | None) -> None:
        attempt = self.record.attempts[-1]
        attempt.update(finished_at=now(), returncode=finished.returncode, wall_seconds=round(finished.wall_seconds, 2),
                       peak_memory_gib=self.peak_memory, diagnosis=asdict(diagnosis) if diagnosis else None,
                       last_step=self.last_progress.step if self.last_progress else None)
        self.record.returncode = finished.returncode

    def failed(self, finished: Finished) -> int:
        if self.run_dir is None:  # it died before saying where: the newest non-empty vN-* dir, if any
            found = run_dir_from_log(finished.tail, self.checked.plan.output_dir)
            if found is not None:
                self.adopt_run_dir(found)
        diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
        self.finish_attempt(finished, diagnosis)
        code = diagnosis.exit_code if diagnosis else EXIT_FAILURE
        self.record.status = "interrupted" if finished.interrupted_by else "failed"
        self.record.exit_code, self.record.finished_at = code, now()
        self.record.diagnosis = asdict(diagnosis) if diagnosis else None
        self.save()
        if diagnosis:
            self.reporter.say(f"swiftkit: {diagnosis.message}\n  evidence: {diagnosis.evidence.strip()[:300]}\n"
                              f"  try: {diagnosis.hint}")
        self.reporter.say(f"  full log: {self.log_path}\n  run record: {self.record_path}")
        return code

    def succeeded(self, finished: Finished) -> Checkpoint | None:
        """Exit code 0: find the run's last complete checkpoint and the real numbers of logging.jsonl."""
        self.finish_attempt(finished, None)
        if self.run_dir is None:
            self.run_dir = run_dir_from_log(finished.tail, self.checked.plan.output_dir)
            if self.run_dir is not None:
                self.adopt_run_dir(self.run_dir)
        run = next((r for r in find_runs(self.checked.plan.output_dir) if r.path == self.run_dir), None)
        checkpoint = last_complete(run) if run else None
        self.record.summary = self.summary()
        self.record.finished_at = now()
        if checkpoint is None:
            self.record.status, self.record.exit_code = "failed", EXIT_FAILURE
            self.save()
            self.reporter.say(f"swiftkit: swift sft exited 0 but left no complete checkpoint in {self.run_dir}\n"
                              f"  full log: {self.log_path}")
            return None
        self.record.checkpoint = str(checkpoint.path)
        best = run.best() if run else None
        self.record.best_checkpoint = str(best.path) if best else None
        self.record.status, self.record.exit_code = "succeeded", EXIT_OK
        self.save()
        s = self.record.summary
        memory = "n/a on CPU" if s.get("peak_memory_gib") is None else f"{s['peak_memory_gib']:.2f} GiB"
        self.reporter.say(f"swiftkit: trained: {checkpoint.path}\n  steps {s.get('global_step')}, final loss "
                          f"{_num(s.get('final_loss'))}, train runtime {_num(s.get('train_runtime'))} s, "
                          f"peak GPU memory {memory}")
        return checkpoint

    def summary(self) -> dict:
        out: dict = {"peak_memory_gib": self.peak_memory}
        path = (self.run_dir / "logging.jsonl") if self.run_dir else None
        if path is None or not path.is_file():
            return out
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            for ev in parse_logging_jsonl_line(line):
                if isinstance(ev, Progress):
                    out["final_loss"] = ev.loss if ev.loss is not None else out.get("final_loss")
                    out["global_step"] = ev.step
                    if ev.memory_gib is not None:
                        out["peak_memory_gib"] = max(out.get("peak_memory_gib") or 0.0, ev.memory_gib)
                elif isinstance(ev, TrainSummary):
                    out.update(train_runtime=ev.train_runtime, train_loss=ev.train_loss,
                               train_samples_per_second=ev.train_samples_per_second)
                elif isinstance(ev, (LastCheckpoint, BestCheckpoint)):
                    out[type(ev).__name__] = ev.path
        return out


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def verify_step(checked: Checked, record: RunRecord, record_path: Path | None, checkpoint: Checkpoint,
                identity: IdentityFiles | None, reporter: Reporter) -> int:
    """Ask the trained model the probes through swift infer, score, and judge against verify.min_score."""
    r = checked.loaded.recipe
    rows = verification.probe_rows(identity.probes_path if identity else None, r.verify.probes)
    if not rows:
        reporter.say("swiftkit: nothing to verify (no identity dataset, no verify.probes)")
        return EXIT_OK
    folder = Path(checkpoint.path).parent / "verify"
    dataset = verification.write_infer_dataset(rows, folder / "probes.jsonl")
    result = folder / "answers.jsonl"
    result.unlink(missing_ok=True)  # swift infer appends to an existing result file
    inv = render_infer(checked.plan, checked.catalog, checkpoint=Path(checkpoint.path), val_dataset=dataset,
                       result_path=result, swift=paths.swift_command())
    reporter.say(f"swiftkit: verifying with {len(rows)} probes")
    finished = supervise(inv.argv, inv.env, folder / "infer.log", lambda _line: None)
    if finished.returncode != 0:
        diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by)
        record.verification = {"error": asdict(diagnosis) if diagnosis else f"swift infer exited {finished.returncode}"}
        _save(record, record_path)
        reporter.say(f"swiftkit: verification failed: swift infer exited {finished.returncode}\n"
                     f"  full log: {finished.log_path}")
        return diagnosis.exit_code if diagnosis else EXIT_FAILURE
    ident = r.identity
    card = verification.score(rows, verification.read_answers(result),
                              ident.name.model_dump() if ident else {}, ident.author.model_dump() if ident else {})
    record.verification = {**card.to_dict(), "min_score": r.verify.min_score, "answers": str(result)}
    reporter.say(verification.format_table(card))
    code = EXIT_OK
    if r.verify.min_score is not None and (card.score or 0.0) < r.verify.min_score:
        reporter.say(f"swiftkit: verification score {card.score or 0:.0%} is below verify.min_score "
                     f"{r.verify.min_score:.0%}: the identity did not take")
        record.status, record.exit_code, code = "failed", EXIT_FAILURE, EXIT_FAILURE
    _save(record, record_path)
    return code


def _save(record: RunRecord, path: Path | None) -> None:
    if path is not None:
        write_record(path, record)
