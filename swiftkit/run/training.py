"""Training, supervised: a Session is the attempts of one run, each a `swift sft` child whose output
becomes events, progress and the run record; a CUDA OOM moves the run one rung down the OOM ladder
(run/fallback.py), resuming from the last complete checkpoint. Across several nodes, node 0's session
announces each attempt and reads every node's verdict (run/nodes.py).
"""
from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from swiftkit import paths
from swiftkit.checks.collect import Checked
from swiftkit.datasets import IDENTITY_TRAIN_FILE, inspect_dataset, token_counter
from swiftkit.errors import EXIT_FAILURE, EXIT_OK
from swiftkit.logparse import (BestCheckpoint, Diagnosis, Eval, LastCheckpoint, OutputDir, Progress, TrainSummary,
                               diagnose, parse_line, parse_logging_jsonl_line)
from swiftkit.process import Finished, supervise
from swiftkit.render import Plan, distributed, rank_stats_dir, render_sft
from swiftkit.results import step_profile
from swiftkit.results.checkpoints import Checkpoint, find_runs, run_dir_from_log
from swiftkit.results.record import RunRecord, now, redact_argv, redact_env, write_record
from swiftkit.run import nodes
from swiftkit.run.fallback import Change, Facts, next_recipe
from swiftkit.run.phases import PhaseClock
from swiftkit.run.progress import Reporter

RECORD_NAME = "swiftkit-run.json"
RANK_READ_EVERY_S = 10.0
NODE_WAIT_S = 120  # after a failed attempt, how long node 0 waits for the other nodes' records


class Session:
    """The attempts of one run: each a supervised `swift sft`; OOM -> the next rung of the ladder."""

    def __init__(self, checked: Checked, record: RunRecord, reporter: Reporter, lock_fd: int | None = None,
                 profile_steps: int | None = None):
        self.checked, self.record, self.reporter = checked, record, reporter
        self.profile_steps = profile_steps  # child/step_profile.py profiles that many steps after warm-up
        self.record_path: Path | None = None
        self.keep_fds = (lock_fd,) if lock_fd is not None else ()  # the training child holds the dir too
        self.record_failed = False
        self.first_attempt_at: float | None = None

    def train(self, plan: Plan) -> tuple[int, Checkpoint | None]:
        tried: list[int] = []
        changes: list[Change] = []
        while True:
            attempt = Attempt(self, plan, len(self.record.attempts) + 1)
            self.announce(plan, attempt.number)
            finished = attempt.start()
            if finished.returncode == 0 and finished.stalled_after is None:
                self.announce(plan, attempt.number + 1, status="done")
                return attempt.succeeded(finished)
            diagnosis = self.across_nodes(attempt, attempt.failed(finished))
            if diagnosis is not None and self.aborted_after_the_work(attempt, diagnosis):
                return attempt.succeeded(finished)
            change = None
            if diagnosis is not None and diagnosis.kind == "cuda_oom":
                change = next_recipe(plan.recipe, tried, self.ladder_facts())
            if change is None:
                self.announce(plan, attempt.number + 1, status="stop")
                return self.give_up(attempt, diagnosis, changes), None
            tried.append(change.index)
            changes.append(change)
            resume = attempt.last_checkpoint() or plan.resume_from
            self.record.attempts[-1]["next"] = {"step": change.step, "what": change.what}
            planned = self.record.extra.get("memory_plan")
            if planned and planned.get("fits") and len(changes) == 1:
                self.record.attempts[-1]["plan_was_wrong"] = (
                    f"planned {planned['peak_memory_gib']} GiB, within {planned['card']['limit_gib']} GiB usable")
            self.record.status = "retrying"  # what this attempt's run dir keeps; the next attempt has its own
            self.save()
            self.reporter.say(f"swiftkit: out of memory (attempt {attempt.number}); retrying with {change.what}"
                              + (f"; resuming from {resume}" if resume else ""))
            plan = plan.with_recipe(change.recipe, resume_from=resume)

    def aborted_after_the_work(self, attempt: "Attempt", diagnosis: Diagnosis) -> bool:
        """A process that aborts while shutting down (gloo's teardown, cpu-tiny-ddp2-teardown-abort.log) after
        training finished and its last checkpoint is complete has done the work: the run counts as trained."""
        if diagnosis.kind != "distributed" or not diagnosis.training_finished or attempt.plan.launch.multi_node:
            return False
        checkpoint = attempt.last_checkpoint()
        if checkpoint is None or not diagnosis.checkpoint or Path(diagnosis.checkpoint).name != checkpoint.name:
            return False
        self.record.attempts[-1]["aborted_at_exit"] = diagnosis.evidence
        self.reporter.say(f"swiftkit: training finished and {checkpoint} is complete; a training process then "
                          f"aborted while shutting down ({diagnosis.evidence[:80]}): ignored")
        return True

    def record_timings(self, started: float | None) -> None:
        """Where the whole job's time went: before training (checks, plan, data), each training child by
        phase (in its attempt), verification by swift infer phase, export; seconds."""
        if started is None or self.first_attempt_at is None:
            return
        r = self.record
        timings = {"before_training": round(self.first_attempt_at - started, 2),
                   "training": round(sum(a.get("wall_seconds") or 0 for a in r.attempts), 2)}
        replay = r.extra.get("replay")
        if isinstance(replay, list) and any(m.get("generated") for m in replay):
            timings["replay"] = round(sum(m.get("seconds") or 0 for m in replay), 2)  # part of before_training
        if r.verification and "seconds" in r.verification:
            timings["verification"] = r.verification["seconds"]
        if r.exports:
            timings["export"] = round(sum(sum((e.get("seconds") or {}).values()) for e in r.exports), 2)
        timings["total"] = round(time.monotonic() - started, 2)
        r.extra["timings"] = timings
        self.save()

    def announce(self, plan: Plan, number: int, status: str = "train") -> None:
        """Several nodes: tell the others what to train (run/nodes.py); they wait for it."""
        if plan.launch.multi_node:
            nodes.announce(plan.output_dir, plan.launch, self.record.recipe_hash or "", attempt=number,
                           recipe=plan.recipe.model_dump(mode="json"), status=status,
                           resume_from=str(plan.resume_from) if plan.resume_from else None)

    def across_nodes(self, attempt: "Attempt", diagnosis: Diagnosis | None) -> Diagnosis | None:
        """Several nodes: an OOM on any rank of any node is the run's diagnosis, and where this node saw only a
        peer vanish ("distributed") another node's own cause is; each node's verdict goes into the record."""
        launch = attempt.plan.launch
        if not launch.multi_node:
            return diagnosis
        places = [p for p in (attempt.run_dir, nodes.state_dir(attempt.plan.output_dir)) if p is not None]
        found = {rec["node_rank"]: rec for rec in nodes.wait_for_node_records(places, launch.nnodes, attempt.number,
                                                                             NODE_WAIT_S)}
        self.record.attempts[-1]["nodes"] = [{k: rec.get(k) for k in ("node_rank", "host", "returncode",
                                                                        "diagnosis", "ranks", "log")}
                                             for rec in found.values()]
        for rec in sorted(found.values(), key=lambda r: (r.get("diagnosis") or {}).get("kind") != "cuda_oom"):
            other = rec.get("diagnosis") or {}
            kind = other.get("kind")
            symptom = diagnosis is None or diagnosis.kind == "distributed"
            if rec["node_rank"] != launch.node_rank and (
                    kind == "cuda_oom" and (diagnosis is None or diagnosis.kind != "cuda_oom")
                    or kind not in (None, "distributed") and symptom):
                fields = {k: other[k] for k in Diagnosis.__dataclass_fields__ if k in other}
                fields["message"] = f"node {rec['node_rank']} ({rec.get('host')}): {other.get('message', '')}"
                combined = Diagnosis(**fields)
                self.record.attempts[-1]["local_diagnosis"] = self.record.attempts[-1].get("diagnosis")
                self.record.attempts[-1]["diagnosis"] = asdict(combined)
                return combined
        return diagnosis

    def ladder_facts(self) -> Facts:
        plan = self.checked.plan
        files = [rep.path for rep in self.checked.reports]
        identity = plan.data_dir / IDENTITY_TRAIN_FILE
        files += [identity] if identity.is_file() else []
        count = token_counter(Path(plan.model)) if plan.model_is_local else None

        def rows_over(max_length: int) -> int | None:
            if count is None or not files:
                return None
            return sum(inspect_dataset(f, max_length=max_length, count_tokens=count).too_long or 0 for f in files)

        total = sum(inspect_dataset(f).rows for f in files) if files else None
        return Facts(bitsandbytes=importlib.util.find_spec("bitsandbytes") is not None, total_rows=total,
                     rows_over=rows_over)

    def give_up(self, attempt: "Attempt", diagnosis: Diagnosis | None, changes: list[Change]) -> int:
        code = diagnosis.exit_code if diagnosis else EXIT_FAILURE
        r = self.record
        r.status = "interrupted" if attempt.finished and attempt.finished.interrupted_by else "failed"
        r.exit_code, r.finished_at = code, now()
        r.diagnosis = asdict(diagnosis) if diagnosis else None
        self.save()
        if diagnosis:
            hint = diagnosis.hint
            if diagnosis.kind == "cuda_oom":
                hint = ("a card with more memory, or more rungs in the recipe's on_oom.steps (each runs once; "
                        "list halve_micro_batch or shorten_max_length again to repeat it)")
            self.reporter.say(f"swiftkit: {diagnosis.message}\n  evidence: {diagnosis.evidence.strip()[:300]}")
            if diagnosis.kind == "cuda_oom":
                tried = "\n".join(f"  - {c.what}" for c in changes) or "  (nothing: on_oom allows no retry)"
                self.reporter.say(f"swiftkit: the OOM ladder is exhausted; tried, in order:\n{tried}")
            self.reporter.say(f"  try: {hint}")
        record = "not written (see above)" if self.record_failed else self.record_path
        self.reporter.say(f"  full log: {attempt.log_path}\n  run record: {record}")
        return code

    def save(self) -> None:
        """Write the record; where the disk is full (or the dir gone) say why on stderr, once, and go on:
        the run, its log and its checkpoints matter more than the record."""
        if self.record_path is None:
            self.record_path = self.checked.plan.output_dir / ".swiftkit" / RECORD_NAME
        try:
            write_record(self.record_path, self.record)
        except OSError as err:
            if not self.record_failed:
                self.record_failed = True
                self.reporter.say(f"swiftkit: the run record could not be written to {self.record_path}: "
                                  f"{err.strerror or err}")


class Attempt:
    """One supervised `swift sft`: parse its output into events, keep the record current."""

    def __init__(self, session: Session, plan: Plan, number: int):
        self.session, self.plan, self.number = session, plan, number
        self.reporter, self.record = session.reporter, session.record
        self.run_dir: Path | None = None
        self.log_path = plan.output_dir / ".swiftkit" / f"sft-{os.getpid()}-{number}.log"
        node = plan.launch.node_rank
        self.log_name = "swiftkit.log" if plan.launch.is_primary else f"swiftkit-node{node}.log"
        self.ranks_dir = rank_stats_dir(plan) if distributed(plan.recipe) else None
        self.ranks_read_at = 0.0
        self.clock, self.started_at = PhaseClock(), 0.0
        self.node_record: Path | None = None  # this node's swiftkit-node-R.json (several nodes)
        self.peak_memory: float | None = None
        self.last_progress: Progress | None = None
        self.finished: Finished | None = None

    def start(self) -> Finished:
        plan = self.plan
        inv = render_sft(plan, self.session.checked.catalog, swift=paths.swift_command())
        if self.session.profile_steps:
            inv = replace(inv, env={**inv.env, **step_profile.env(self.session.profile_steps)})
        self.record.command, self.record.env = redact_argv(inv.argv), redact_env(inv.env)
        self.record.status, self.record.log_path = "running", str(self.log_path)
        self.record.resolved_recipe = plan.recipe.model_dump(mode="json")
        self.record.attempts.append({"attempt": self.number, "started_at": now(), "micro_batch": plan.micro_batch,
                                     "gradient_accumulation": plan.grad_accum,
                                     "resume_from": str(plan.resume_from) if plan.resume_from else None,
                                     "recipe": plan.recipe.model_dump(mode="json"), "command": redact_argv(inv.argv)})
        self.reporter.say(f"$ {inv.display()}")
        if self.ranks_dir is not None:
            nodes.clear_rank_stats(self.ranks_dir)  # the previous attempt's figures are not this one's
        self.started_at = time.monotonic()
        if self.session.first_attempt_at is None:
            self.session.first_attempt_at = self.started_at
        self.finished = supervise(inv.argv, inv.env, self.log_path, self.on_line,
                                  stall_timeout=plan.recipe.output.stall_timeout, keep_fds=self.session.keep_fds)
        self.reporter.end_phase()
        return self.finished

    def on_line(self, line: str) -> None:
        self.clock.line(time.monotonic() - self.started_at, line)
        for ev in parse_line(line):
            if isinstance(ev, OutputDir) and self.run_dir is None:
                self.adopt_run_dir(Path(ev.path))
            elif isinstance(ev, Progress):
                ev = self.with_rank_memory(ev)
                self.last_progress = ev
                if ev.memory_gib is not None:
                    self.peak_memory = max(self.peak_memory or 0.0, ev.memory_gib)
            self.reporter.event(ev)

    def with_rank_memory(self, ev: Progress) -> Progress:
        """Several ranks: each one's peak so far, from the files they write (ms-swift logs rank 0's)."""
        if self.ranks_dir is None or time.monotonic() - self.ranks_read_at < RANK_READ_EVERY_S:
            return ev
        self.ranks_read_at = time.monotonic()
        stats = nodes.read_rank_stats(self.ranks_dir)
        memory = tuple(s.get("peak_memory_gib", s.get("peak_rss_gib")) for s in stats)
        return replace(ev, rank_memory_gib=memory) if memory and None not in memory else ev

    def adopt_run_dir(self, run_dir: Path) -> None:
        """The run dir is known: move the log and the record into it (the open log follows the rename)."""
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        target = run_dir / self.log_name
        try:
            os.replace(self.log_path, target)
            self.log_path = target
        except OSError:
            pass
        self.record.run_dir, self.record.log_path = str(run_dir), str(self.log_path)
        self.record.attempts[-1]["run_dir"] = str(run_dir)
        if self.plan.launch.is_primary:
            self.session.record_path = run_dir / RECORD_NAME
        self.session.save()

    def finish(self, finished: Finished, diagnosis: Diagnosis | None) -> None:
        self.record.attempts[-1].update(
            finished_at=now(), returncode=finished.returncode, wall_seconds=round(finished.wall_seconds, 2),
            peak_memory_gib=self.peak_memory, diagnosis=asdict(diagnosis) if diagnosis else None,
            last_step=self.last_progress.step if self.last_progress else None, log=str(self.log_path),
            phases=self.clock.durations(finished.wall_seconds))
        self.record.returncode = finished.returncode
        if self.ranks_dir is not None:
            self.record.attempts[-1]["ranks"] = nodes.read_rank_stats(self.ranks_dir)
        if self.plan.launch.multi_node:
            where = self.run_dir or nodes.state_dir(self.plan.output_dir)
            keys = ("attempt", "started_at", "finished_at", "returncode", "wall_seconds", "peak_memory_gib",
                    "diagnosis", "last_step", "log", "ranks", "run_dir")
            self.node_record = nodes.write_node_record(where, self.plan.launch, {
                **{k: self.record.attempts[-1].get(k) for k in keys}, "gpus": self.record.host.get("gpus", [])})

    def find_run_dir(self, finished: Finished) -> None:
        if self.run_dir is None:  # it died before saying where: the newest non-empty vN-* dir, if any
            found = run_dir_from_log(finished.tail, self.plan.output_dir)
            if found is not None:
                self.adopt_run_dir(found)

    def last_checkpoint(self) -> Path | None:
        run = next((r for r in find_runs(self.plan.output_dir) if self.run_dir and r.path == self.run_dir), None)
        checkpoint = run.last_complete() if run else None
        return Path(checkpoint.path) if checkpoint else None

    def failed(self, finished: Finished) -> Diagnosis | None:
        self.find_run_dir(finished)
        diagnosis = diagnose(finished.tail, finished.returncode, interrupted_by=finished.interrupted_by,
                             stalled_after=finished.stalled_after)
        self.finish(finished, diagnosis)
        self.session.save()
        return diagnosis

    def succeeded(self, finished: Finished) -> tuple[int, Checkpoint | None]:
        """Exit code 0: the run's last complete checkpoint and the real numbers of logging.jsonl."""
        self.find_run_dir(finished)
        self.finish(finished, None)
        run = next((r for r in find_runs(self.plan.output_dir) if r.path == self.run_dir), None)
        checkpoint = run.last_complete() if run else None
        self.record.summary = self.summary()
        if checkpoint is not None and checkpoint.step:  # the last logged step is not the last step
            self.record.summary["global_step"] = max(self.record.summary.get("global_step") or 0, checkpoint.step)
        self.record.finished_at = now()
        if checkpoint is None:
            self.record.status, self.record.exit_code = "failed", EXIT_FAILURE
            self.session.save()
            self.reporter.say(f"swiftkit: swift sft exited 0 but left no complete checkpoint in {self.run_dir}\n"
                              f"  full log: {self.log_path}")
            return EXIT_FAILURE, None
        best = run.best() if run else None
        self.record.checkpoint = str(checkpoint.path)
        self.record.best_checkpoint = str(best.path) if best else None
        self.record.status, self.record.exit_code = "succeeded", EXIT_OK
        s = self.record.summary
        planned = self.record.extra.get("memory_plan")
        if planned and s.get("peak_memory_gib") is not None:
            planned["measured_peak_gib"] = s["peak_memory_gib"]  # the plan and what ms-swift measured, side by side
        profile = step_profile.read(self.run_dir) if self.session.profile_steps else None
        if profile is not None:
            self.record.extra["step_profile"] = step_profile.headline(profile)
        self.session.save()
        memory = "n/a on CPU" if s.get("peak_memory_gib") is None else f"{s['peak_memory_gib']:.2f} GiB"
        if planned and s.get("peak_memory_gib") is not None:
            memory += f" (planned {planned['peak_memory_gib']:.2f} GiB)"
        self.reporter.say(f"swiftkit: trained: {checkpoint.path}\n  steps {s.get('global_step')}, final loss "
                          f"{_num(s.get('final_loss'))}, train runtime {_num(s.get('train_runtime'))} s, "
                          f"peak GPU memory {memory}")
        if profile is not None:
            self.reporter.say("\n".join(step_profile.lines(profile)))
        elif self.session.profile_steps:
            self.reporter.say(f"swiftkit: no step profile was written (fewer than {self.session.profile_steps} steps "
                              "after warm-up?); see the log")
        ranks = nodes.rank_memory_line(self.record.attempts[-1].get("ranks") or [])
        if ranks:
            self.reporter.say(f"  peak memory per rank of this node: {ranks}")
        return EXIT_OK, checkpoint

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
                elif isinstance(ev, Eval) and ev.loss is not None:
                    out.setdefault("eval_loss_start", {"step": ev.step, "loss": ev.loss})
                    out["eval_loss_end"] = {"step": ev.step, "loss": ev.loss}
                elif isinstance(ev, TrainSummary):
                    out.update(train_runtime=ev.train_runtime, train_loss=ev.train_loss,
                               train_samples_per_second=ev.train_samples_per_second)
                elif isinstance(ev, (LastCheckpoint, BestCheckpoint)):
                    out[type(ev).__name__] = ev.path
        return out


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"
