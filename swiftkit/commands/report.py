"""`swiftkit report TARGET [TARGET ...]`: the run report (report.html in the run dir), or, for several
targets, a comparison page. TARGET is a recipe, an output dir, a run dir or a run record.

This module reads the disk (record, each attempt's logging.jsonl, checkpoints); report/page.py,
report/sections.py and report/compare.py turn that into HTML without touching it.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from swiftkit.errors import EXIT_OK, UserError
from swiftkit.report.attempts import attempts_of
from swiftkit.report.page import REPORT_NAME, RunInput, render_report
from swiftkit.results.checkpoints import CHECKPOINT_DIR, RUN_DIR, find_runs
from swiftkit.results.record import now, read_record

RECORD_NAME = "swiftkit-run.json"
COMPARISON_NAME = "swiftkit-comparison.html"


def report(targets: list[str], *, output: str | None = None, say: Callable[[str], None] = print) -> int:
    records = [find_record(t) for t in targets]
    for record in records:
        for field in _unreadable(record):
            say(f"swiftkit: {record}: {field}: not shown in the report")
    if len(records) == 1:
        path = write_report(records[0], Path(output) if output else None)
    else:
        from swiftkit.report.compare import render_comparison

        path = Path(output) if output else Path.cwd() / COMPARISON_NAME
        _write(path, render_comparison([load_input(r) for r in records]))
    say(str(path))
    return EXIT_OK


def write_report(record_path: Path, output: Path | None = None) -> Path:
    """Render the report of one run; by default report.html beside its record (the run dir)."""
    path = output or record_path.parent / REPORT_NAME
    _write(path, render_report(load_input(record_path)))
    return path


def after_run(record_path: Path | None, say: Callable[[str], None]) -> Path | None:
    """The report at the end of `swiftkit run`, whatever the outcome. Never raises: a report that cannot be
    written must not change how the run ended or hide why it failed."""
    if record_path is None or not Path(record_path).is_file():
        return None
    try:
        path = write_report(Path(record_path))
    except Exception as exc:  # noqa: BLE001 - the run's own outcome matters more than its report
        say(f"swiftkit: the run report could not be written: {exc}")
        return None
    say(f"swiftkit: report: {path}")
    return path


def _write(path: Path, text: str) -> None:
    """Atomically: a browser that has the old report open never reads half of the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------ finding the run


def find_record(target: str) -> Path:
    """TARGET -> its run record: a recipe's (or an output dir's) newest run, a run dir's own, or the file."""
    path = Path(target).expanduser()
    if path.suffix in (".yaml", ".yml"):
        return _newest(_recipe_output(path), target)
    if path.is_file() and path.name == RECORD_NAME:
        return path.resolve()
    if not path.is_dir():
        raise UserError.one(f"no such recipe, output dir or run dir: {target}",
                            fix="pass a recipe, the output dir it trains into, or one vN-... run dir in it")
    path = path.resolve()
    if (path / RECORD_NAME).is_file():
        return path / RECORD_NAME
    if CHECKPOINT_DIR.match(path.name) and (path.parent / RECORD_NAME).is_file():
        return path.parent / RECORD_NAME
    return _newest(path, target)


def _recipe_output(path: Path) -> Path:
    from swiftkit.recipe.models import load_recipe

    if not path.is_file():
        raise UserError.one(f"recipe not found: {path}",
                            fix="check the path (`swiftkit presets` lists the bundled ones)")
    loaded = load_recipe(path)
    return loaded.paths.output_dir


def _newest(output_dir: Path, target: str) -> Path:
    """The record of the run started last (ties: the higher vN, i.e. the ladder's later attempt). A run that
    failed before ms-swift named its run dir keeps its record in OUTPUT/.swiftkit."""
    candidates = [(d / RECORD_NAME, int(m.group(1))) for d in _dirs(output_dir) if (m := RUN_DIR.match(d.name))]
    candidates.append((output_dir / ".swiftkit" / RECORD_NAME, -1))
    found = [(_started(p), version, p) for p, version in candidates if p.is_file()]
    if not found:
        raise UserError.one(f"no swiftkit run record under {output_dir}",
                            fix=f"run it first (swiftkit run RECIPE), or pass a run dir that holds {RECORD_NAME}"
                            if target.endswith((".yaml", ".yml")) else f"pass a run dir that holds {RECORD_NAME}")
    return max(found)[2]


def _dirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


def _unreadable(record_path: Path) -> list[str]:
    try:
        return read_record(record_path).unreadable
    except UserError:
        return []


def _started(record_path: Path) -> str:
    try:
        return str(read_record(record_path).started_at or "")
    except UserError:
        return ""


# ------------------------------------------------------------------------------------ reading a run


def load_input(record_path: Path) -> RunInput:
    read = read_record(record_path)
    record = read.to_dict()
    here = record_path.parent
    logs: dict[int, str] = {}
    found: list[dict] = []
    for i, attempt in enumerate(attempts_of(record)):
        number = attempt.get("attempt", i + 1)
        run_dir = _located(attempt.get("run_dir"), here)
        if run_dir is None:
            continue
        try:
            logs[number] = (run_dir / "logging.jsonl").read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
        found += [_checkpoint(c, number, attempt.get("run_dir")) for run in find_runs(run_dir)
                  if run.path == run_dir for c in run.checkpoints]
    return RunInput(record, logs, found, str(record_path), now(), read.unreadable)


def _located(recorded: str | None, record_dir: Path) -> Path | None:
    """A run dir named in the record, found where it was, or beside this record if the output dir moved."""
    if not recorded:
        return record_dir if RUN_DIR.match(record_dir.name) else None
    for candidate in (Path(recorded), record_dir.parent / Path(recorded).name):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def _checkpoint(c, attempt: int, run_dir: str | None) -> dict:
    return {"path": str(c.path), "step": c.step, "loss": c.loss, "complete": c.complete, "problems": c.problems,
            "kind": c.kind, "attempt": attempt, "run_dir": run_dir}
