"""The run report: one self-contained HTML page that says what a run did. Pure: data in, HTML out.

Input (`RunInput`, read from disk by commands/report.py): the run record (swiftkit-run.json, with
the scorecard's answers in it), the logging.jsonl of each attempt, and the checkpoints as found
on disk. Output: one HTML string with its styles and charts inline, no script and no reference to
anything outside the file, so it opens from disk on a laptop or a phone and prints.

What it shows, top to bottom: how the run ended (with the diagnosis and its fix when it failed),
the key figures, loss / learning rate / gradient norm against step (eval loss where there is one,
each attempt of the OOM ladder in its own colour and marked where it starts), GPU memory per step
against the card and the limits the recipe set, where the time went, the checkpoints, the identity
scorecard probe by probe, retention, exports with their verification, and what exactly ran.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from swiftkit.logparse import Eval, Progress, TrainSummary, parse_logging_jsonl_line
from swiftkit.report import charts
from swiftkit.report.attempts import attempt_color, attempts_of
from swiftkit.report.html import badge, card, esc, figure, gib, note, num, page, seconds, section, table

REPORT_NAME = "report.html"
STATUS_TONES = {"succeeded": "ok", "failed": "bad", "interrupted": "warn", "unverified": "warn",
                "retrying": "warn", "running": "", "created": ""}
# What `swiftkit run` says when the OOM ladder has run out of rungs (commands/run.py, Session.give_up): the
# diagnosis' own hint (halve the micro-batch) is what the ladder already did.
LADDER_EXHAUSTED = ("A card with more memory, or more rungs in the recipe's on_oom.steps (each runs once; list "
                    "halve_micro_batch or shorten_max_length again to repeat it).")
METRICS = ("loss", "learning_rate", "grad_norm", "memory_gib", "token_acc", "eval_loss")


@dataclass
class RunInput:
    record: dict[str, Any]
    logs: dict[int, str] = field(default_factory=dict)  # attempt number -> its logging.jsonl
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # as found on disk, each with its attempt
    record_path: str = ""
    generated_at: str = ""
    unreadable: list[str] = field(default_factory=list)  # record fields of the wrong shape, read as unset


@dataclass
class Curves:
    """What one attempt logged, metric -> [(step, value)]; `summary` is the trainer's closing line."""

    attempt: int
    values: dict[str, list[tuple[float, float]]]
    summary: TrainSummary | None = None
    max_steps: int | None = None

    def get(self, metric: str) -> list[tuple[float, float]]:
        return self.values.get(metric, [])


def parse_curves(attempt: int, text: str) -> Curves:
    values: dict[str, list[tuple[float, float]]] = {m: [] for m in METRICS}
    summary, max_steps = None, None
    for line in text.splitlines():
        for ev in parse_logging_jsonl_line(line):
            if isinstance(ev, Progress) and ev.step is not None:
                max_steps = ev.max_steps or max_steps
                for metric in METRICS[:-1]:
                    value = getattr(ev, metric)
                    if value is not None:
                        values[metric].append((ev.step, value))
            elif isinstance(ev, Eval) and ev.step is not None and ev.loss is not None:
                values["eval_loss"].append((ev.step, ev.loss))
            elif isinstance(ev, TrainSummary):
                summary = ev
    return Curves(attempt, values, summary, max_steps)


def all_curves(inp: RunInput) -> list[Curves]:
    return [parse_curves(a.get("attempt", i + 1), inp.logs.get(a.get("attempt", i + 1), ""))
            for i, a in enumerate(attempts_of(inp.record))]


def recipe_name(record: dict) -> str:
    recipe = record.get("resolved_recipe") or {}
    return recipe.get("name") or (Path(record["recipe"]).stem if record.get("recipe") else "run")


def run_label(record: dict) -> str:
    run_dir = record.get("run_dir")
    return f"{recipe_name(record)} · {Path(run_dir).name}" if run_dir else recipe_name(record)


# ------------------------------------------------------------------------------------ the page


def render_report(inp: RunInput) -> str:
    from swiftkit.report import sections as more
    from swiftkit.report.checkpoint_scores import checkpoint_scores
    from swiftkit.report.replay import replay

    r, curves = inp.record, all_curves(inp)
    parts = [
        ("outcome", "Outcome", outcome(r, curves)),
        ("replay", "Replay rows", replay(r)),
        ("training", "Training", training(r, curves)),
        ("memory", "GPU memory", memory(r, curves)),
        ("nodes", "Nodes and ranks", more.nodes(r)),
        ("time", "Time", more.timings(r)),
        ("checkpoints", "Checkpoints", more.checkpoints(r, inp.checkpoints)),
        ("checkpoint-scores", "Checkpoints scored", checkpoint_scores(r)),
        ("scorecard", "Identity scorecard", more.scorecard(r)),
        ("retention", "Retention", more.retention(r)),
        ("exports", "Exports", more.exports(r)),
        ("ran", "What ran", more.what_ran(r)),
        ("environment", "Versions and host", more.environment(r)),
    ]
    body = header(inp) + "".join(section(ident, title, html) for ident, title, html in parts)
    return page(f"{run_label(r)}: {r.get('status', '')}", body, [(i, t) for i, t, h in parts if h])


def header(inp: RunInput) -> str:
    r = inp.record
    status = str(r.get("status") or "unknown")
    lines = [f"<code>{esc(r.get('run_dir') or Path(inp.record_path).parent)}</code>",
             f"started {esc(when(r.get('started_at')))}" + (f", report written {esc(when(inp.generated_at))}"
                                                            if inp.generated_at else "")]
    unread = note("Not shown, the run record holds them in the wrong shape: " + esc("; ".join(inp.unreadable))) \
        if inp.unreadable else ""
    return (f'<header><h1>{esc(recipe_name(r))} {badge(status, STATUS_TONES.get(status, ""))}</h1>'
            f'<p class="muted">{" · ".join(lines)}</p>{unread}</header>')


def when(stamp: Any) -> str:
    try:
        return datetime.fromisoformat(str(stamp)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return str(stamp or "–")


def outcome(r: dict, curves: list[Curves]) -> str:
    return verdict(r) + key_figures(r, curves)


def verdict(r: dict) -> str:
    status, d = r.get("status"), r.get("diagnosis") or {}
    code = r.get("exit_code")
    if status in ("failed", "interrupted"):
        what = "was interrupted" if status == "interrupted" else "failed"
        body = [f"<p><strong>The run {what}</strong> (exit code {esc(code)}). {esc(d.get('message', ''))}</p>"]
        if d.get("evidence"):
            body.append(f"<p>Evidence from the log:</p><pre>{esc(d['evidence'])}</pre>")
        tried = [a["next"]["what"] for a in r.get("attempts") or [] if isinstance(a.get("next"), dict)]
        if d.get("kind") == "cuda_oom":
            body.append("<p>The OOM ladder is exhausted; tried, in order:</p><ul>"
                        + "".join(f"<li>{esc(t)}</li>" for t in tried) + "</ul>" if tried else
                        "<p>The recipe's <code>on_oom</code> allowed no retry.</p>")
        hint = LADDER_EXHAUSTED if d.get("kind") == "cuda_oom" else d.get("hint")
        if hint:
            body.append(f"<p><strong>Try:</strong> {esc(hint)}</p>")
        if d.get("checkpoint"):
            body.append(f"<p>Last checkpoint the log names: <code>{esc(d['checkpoint'])}</code></p>")
        body.append(f"<p>Full log: <code>{esc(r.get('log_path'))}</code></p>")
        tone = "alert warn" if status == "interrupted" else "alert"
        return f'<div class="{tone}" id="diagnosis">{"".join(body)}</div>'
    problems = verification_problems(r)
    if status == "unverified" or problems or code == 12:
        items = "".join(f"<li>{esc(p)}</li>" for p in problems) or "<li>see the sections below</li>"
        return f'<div class="alert warn" id="diagnosis"><p><strong>Trained, but not verified</strong> (exit code ' \
               f'{esc(code)}):</p><ul>{items}</ul></div>'
    if status == "succeeded":
        return f'<div class="alert ok"><p><strong>The run succeeded.</strong> Final checkpoint: ' \
               f'<code>{esc(r.get("checkpoint"))}</code></p></div>'
    return note(f"The record says <strong>{esc(status)}</strong>: the run is still going, or stopped before it "
                "could write how it ended.")


def verification_problems(r: dict) -> list[str]:
    """The thresholds a run missed, from the record's own numbers (what `swiftkit run` said at the end)."""
    out = []
    v, ret = r.get("verification") or {}, r.get("retention") or {}
    if isinstance(v.get("error"), dict):
        out.append(f"verification could not run: {v['error'].get('message') or v['error']}")
    if isinstance(v.get("min_score"), (int, float)) and isinstance(v.get("score"), (int, float)) \
            and v["score"] < v["min_score"]:
        out.append(f"exact answers on trained probes {v['score']:.0%} < verify.min_score {v['min_score']:.0%}: "
                   "the identity did not take")
    for failure in v.get("failures") or []:  # what verification itself said (system prompts, bleed, leaks)
        if isinstance(failure, str) and "verify.min_score" not in failure and "verify.min_retention" not in failure:
            out.append(failure)
    if isinstance(ret.get("min_retention"), (int, float)) and ret.get("score", 1) < ret["min_retention"]:
        out.append(f"retention {ret['score']:.2f} < verify.min_retention {ret['min_retention']:.2f}: the tune "
                   "changed the model's general answers")
    for e in r.get("exports") or []:
        if not e.get("verified"):
            out.append(f"export {Path(str(e.get('path'))).name} answers unlike base + adapter "
                       f"(agreement {num(e.get('agreement'), '.1%')}, needed {num(e.get('min_agreement'), '.0%')})")
    return out


def figures(r: dict, curves: list[Curves]) -> dict[str, Any]:
    """The record's summary; for a run that stopped early (no summary), the last values it logged."""
    s = dict(r.get("summary") or {})
    losses = [p for c in curves for p in c.get("loss")]
    memory = [v for c in curves for _, v in c.get("memory_gib")]
    if losses and s.get("global_step") is None:
        s["global_step"] = int(losses[-1][0])
    if losses and s.get("final_loss") is None:
        s["final_loss"], s["loss_is_last_logged"] = losses[-1][1], True
    if memory and s.get("peak_memory_gib") is None:
        s["peak_memory_gib"] = max(memory)
    return s


def key_figures(r: dict, curves: list[Curves]) -> str:
    """The numbers a person looks for first."""
    s, v, ret = figures(r, curves), r.get("verification") or {}, r.get("retention") or {}
    steps, of, peak, attempts = s.get("global_step"), x_max(curves), s.get("peak_memory_gib"), len(attempts_of(r))
    cards = [card("steps", num(steps, "d") if isinstance(steps, int) else "–",
                  ", ".join(x for x in (f"of {of}" if of and of != steps else "",
                                        f"{attempts} attempts" if attempts > 1 else "") if x)),
             card("last logged loss" if s.get("loss_is_last_logged") else "final loss", num(s.get("final_loss")),
                  f"mean {num(s.get('train_loss'))}" if s.get("train_loss") is not None else ""),
             card("train runtime", seconds(s.get("train_runtime"))),
             card("peak GPU memory", gib(peak) if peak is not None else "n/a",
                  "" if peak is not None else "no CUDA memory logged")]
    if v.get("trained"):
        low = v.get("min_score") is not None and (v.get("score") or 0) < v["min_score"]
        tone = "" if v.get("min_score") is None else "bad" if low else "ok"
        cards.append(card("exact, trained probes", f"{v['trained_exact']}/{v['trained']}",
                          f"min {v['min_score']:.0%}" if v.get("min_score") is not None else "", tone))
    if v.get("heldout_name"):
        cards.append(card("name, held-out probes", f"{v['heldout_name_hits']}/{v['heldout_name']}"))
    if v.get("answered"):
        cards.append(card("claims base identity", f"{v['base_claims']}/{v['answered']}", "",
                          "bad" if v["base_claims"] else "ok"))
    if ret.get("score") is not None:
        low = ret.get("min_retention") is not None and ret["score"] < ret["min_retention"]
        cards.append(card("retention", f"{ret['score']:.2f}", f"of 1.00 (unchanged), {ret.get('probes')} probes",
                          "bad" if low else ""))
    for e in r.get("exports") or []:
        cards.append(card("export", "verified" if e.get("verified") else "unverified",
                          f"agreement {num(e.get('agreement'), '.1%')}", "ok" if e.get("verified") else "bad"))
    return f'<div class="cards">{"".join(cards)}</div>'


# ------------------------------------------------------------------------------------ curves


def _lines(curves: list[Curves], metric: str, label: str) -> list[charts.Line]:
    many = len(curves) > 1
    return [charts.Line(f"sk-{metric.replace('_', '')}-a{c.attempt}",
                        f"{label}, attempt {c.attempt}" if many else label, c.get(metric), attempt_color(c.attempt))
            for c in curves if c.get(metric)]


def attempt_rules(r: dict, curves: list[Curves]) -> list[charts.Rule]:
    """A dashed line where each later attempt starts (its resume step, else its first logged step)."""
    rules, attempts = [], attempts_of(r)
    for a, c in zip(attempts[1:], curves[1:]):
        first = c.get("loss")[0][0] if c.get("loss") else None
        resume = a.get("resume_from")
        start = _step_in(resume) if resume else (0 if first is None else max(first - 1, 0))
        if start is not None:
            rules.append(charts.Rule(f"sk-attempt-{c.attempt}", f"attempt {c.attempt} starts", start, vertical=True,
                                     color=attempt_color(c.attempt)))
    return rules


def failure_marks(r: dict, curves: list[Curves]) -> list[charts.Line]:
    """An X on the last logged loss of each attempt that failed, labelled with why."""
    marks = []
    for a, c in zip(attempts_of(r), curves):
        if a.get("returncode") not in (0, None) and c.get("loss"):
            why = (a.get("diagnosis") or {}).get("kind") or f"exit {a.get('returncode')}"
            label = f"attempt {c.attempt} " + ("interrupted" if why == "interrupted" else f"failed: {why}")
            marks.append(charts.Line(f"sk-end-a{c.attempt}", label, c.get("loss")[-1:], charts.RED, alone=True))
    return marks


def x_max(curves: list[Curves]) -> int | None:
    return max((c.max_steps for c in curves if c.max_steps), default=None)


def _step_in(path: str) -> int | None:
    tail = Path(str(path)).name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else None


def training(r: dict, curves: list[Curves]) -> str:
    if not any(c.get("loss") for c in curves):
        return note("No training step was logged (no logging.jsonl with losses was found for any attempt): the run "
                    "stopped before its first logged step.") + attempts_table(r)
    loss = _lines(curves, "loss", "loss")
    evals = [charts.Line(f"sk-evalloss-a{c.attempt}", f"eval loss, attempt {c.attempt}" if len(curves) > 1 else
                         "eval loss", c.get("eval_loss"), charts.PALETTE[4], dashed=True, markers=True)
             for c in curves if c.get("eval_loss")]
    rules = attempt_rules(r, curves)
    ends = failure_marks(r, curves)
    values = [v for line in loss + evals for _, v in line.points]
    figs = [figure(charts.line_chart(charts.Chart("Loss" + (" (log scale)" if charts.nice_log(values) else ""),
                                                  "step", "loss", loss + evals + ends, rules,
                                                  log_y=charts.nice_log(values),
                                                  x_max=x_max(curves)),
                                     "loss"), name="loss")]
    for metric, title, ylabel in (("learning_rate", "Learning rate", "lr"), ("grad_norm", "Gradient norm", "norm"),
                                  ("token_acc", "Token accuracy", "share of tokens")):
        lines = _lines(curves, metric, ylabel)
        if lines:
            chart = charts.Chart(title, "step", ylabel, lines, rules, y_from_zero=metric != "grad_norm",
                                 x_max=x_max(curves))
            figs.append(figure(charts.line_chart(chart, metric), name=metric))
    return f'<div class="charts">{"".join(figs)}</div>' + attempts_table(r)


def attempts_table(r: dict) -> str:
    attempts = [a for a in r.get("attempts") or [] if isinstance(a, dict)]
    if len(attempts) < 2 and not any(a.get("returncode") not in (0, None) for a in attempts):
        return ""
    rows = []
    for a in attempts:
        d = a.get("diagnosis") or {}
        ended = "exit 0" if a.get("returncode") == 0 else f"{d.get('kind') or 'failed'} (exit {a.get('returncode')})"
        nxt = (a.get("next") or {}).get("what", "")
        rows.append([f'<span class="swatch" style="background:{attempt_color(a.get("attempt", 1))}"></span>'
                     f'{esc(a.get("attempt"))}', f'{esc(a.get("micro_batch"))} x {esc(a.get("gradient_accumulation"))}',
                     esc(Path(a["resume_from"]).name) if a.get("resume_from") else "start",
                     num(a.get("last_step"), "d") if isinstance(a.get("last_step"), int) else "–",
                     gib(a.get("peak_memory_gib")),
                     seconds(a.get("wall_seconds")), f'<span class="{"pass" if a.get("returncode") == 0 else "fail"}">'
                     f'{esc(ended)}</span>' + (f"<br>next: {esc(nxt)}" if nxt else "")])
    return "<h3>Attempts</h3>" + table(["#", "micro-batch x accum.", "from", "last step", "peak memory", "wall time",
                                        "ended"], rows, cls="stack", numeric=(3, 4, 5), nowrap=(0, 1, 2))


def memory_limits(r: dict) -> list[charts.Rule]:
    """The card (from the host), the allocator cap, the card size the recipe was written for and the
    memory plan's peak."""
    rules, gpu = [], (r.get("resolved_recipe") or {}).get("gpu") or {}
    cards = [g for g in (r.get("host") or {}).get("gpus") or [] if str(g.get("memory_mib", "")).isdigit()]
    if cards:
        g = cards[0]
        rules.append(charts.Rule("sk-card", f"{g.get('name', 'GPU')}: {int(g['memory_mib']) / 1024:.1f} GiB",
                                 int(g["memory_mib"]) / 1024, color="#24292f"))
    if isinstance(gpu.get("emulate_memory_gb"), (int, float)):
        rules.append(charts.Rule("sk-cap", f"allocator cap {gpu['emulate_memory_gb']:g} GiB",
                                 gpu["emulate_memory_gb"], color=charts.RED))
    if isinstance(gpu.get("memory_gb"), (int, float)):
        rules.append(charts.Rule("sk-budget", f"recipe written for {gpu['memory_gb']:g} GB",
                                 gpu["memory_gb"], color=charts.AMBER))
    planned = (r.get("memory_plan") or {}).get("peak_memory_gib")
    if isinstance(planned, (int, float)):
        rules.append(charts.Rule("sk-plan", f"planned peak {planned:.1f} GiB", planned, color="#8250df"))
    return rules


def memory(r: dict, curves: list[Curves]) -> str:
    lines = _lines(curves, "memory_gib", "memory")
    if not lines:
        return note("No GPU memory was logged: this run trained on the CPU"
                    + (" (or stopped before its first logged step)." if (r.get("host") or {}).get("gpus") else "."))
    rules = memory_limits(r)
    peak = max(v for line in lines for _, v in line.points)
    chart = charts.line_chart(charts.Chart("GPU memory per step", "step", "GiB", lines, rules, y_from_zero=True,
                                           x_max=x_max(curves)), "memory")
    limits = "; ".join(f"{rule.label}" for rule in rules)
    caption = f"peak {peak:.2f} GiB" + (f"; {esc(limits)}" if limits else "")
    return f'<div class="charts">{figure(chart, caption, "memory")}</div>'


