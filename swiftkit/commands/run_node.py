"""`swiftkit run` on a node other than node 0: train what node 0 announces, attempt by attempt.

Node 0 owns the run: its record, the OOM ladder's decisions, verification, export and the report
(commands/run.py). Here a node waits for node 0's launch.json (run/nodes.py), trains exactly that command
under the same supervision, writes its own swiftkit-node-R.json and log, and, after a failed attempt,
waits for node 0's next decision: another attempt (the same rung of the ladder on every node) or stop.
"""
from __future__ import annotations

from pathlib import Path

from swiftkit.checks.collect import Checked
from swiftkit.errors import EXIT_FAILURE, EXIT_OK
from swiftkit.recipe.models import Recipe
from swiftkit.run import nodes
from swiftkit.run.prepare import new_record
from swiftkit.run.progress import make_reporter
from swiftkit.run.training import Attempt, Session


class FollowerSession(Session):
    """Keeps an attempt's figures in memory for this node's record; never writes the run record (node 0's)."""

    def save(self) -> None:
        pass


def follow(checked: Checked, lock_fd: int | None, *, quiet: bool = False, events: bool = False) -> int:
    reporter = make_reporter(quiet=quiet, events=events)
    plan, recipe = checked.plan, checked.loaded.recipe
    launch = plan.launch
    record = new_record(checked, None)
    session = FollowerSession(checked, record, reporter, lock_fd)
    reporter.say(f"swiftkit: {launch.describe()}; node 0 decides, this node follows")
    code, after = EXIT_FAILURE, 0
    try:
        while True:
            order = nodes.await_primary(plan.output_dir, launch, record.recipe_hash or "", after_attempt=after,
                                        timeout=recipe.distributed.timeout, say=reporter.say)
            if order.get("status") != "train":
                reporter.say(f"swiftkit: node 0 stopped the run after attempt {after}")
                return code
            resume = Path(order["resume_from"]) if order.get("resume_from") else None
            attempt = Attempt(session, plan.with_recipe(Recipe.model_validate(order["recipe"]), resume_from=resume),
                              int(order["attempt"]))
            finished = attempt.start()
            if finished.returncode == 0 and finished.stalled_after is None:
                attempt.find_run_dir(finished)
                attempt.finish(finished, None)
                reporter.say(f"swiftkit: node {launch.node_rank} trained its share; node 0 verifies the run\n"
                             f"  node record: {attempt.node_record}")
                return EXIT_OK
            diagnosis = attempt.failed(finished)
            code = diagnosis.exit_code if diagnosis else EXIT_FAILURE
            reporter.say(f"swiftkit: node {launch.node_rank}, attempt {attempt.number}: "
                         f"{diagnosis.message if diagnosis else f'exit {finished.returncode}'}\n"
                         f"  full log: {attempt.log_path}\n  waiting for node 0 to retry or stop")
            after = attempt.number
    finally:
        reporter.close()
