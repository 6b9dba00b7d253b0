"""The comparison page: several runs side by side, for "which of my runs was better, and why".

One loss chart with a curve per run (and GPU memory where any run logged it), the results in one
table with the best value of each row marked, and the settings that differ between the runs: the
resolved recipes key by key, the micro-batch the OOM ladder ended on, the versions and the GPU.
Pure, like report/page.py.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from swiftkit.report import charts
from swiftkit.report.html import badge, esc, figure, gib, note, num, page, seconds, section, table
from swiftkit.report.page import Curves, RunInput, STATUS_TONES, all_curves, figures, recipe_name, when
from swiftkit.report.sections import flat

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def run_color(i: int) -> str:
    return charts.PALETTE[i % len(charts.PALETTE)]


def joined(curves: list[Curves], metric: str) -> list[tuple[float, float]]:
    """A run's points over all its attempts, by step; a step logged twice (after a resume) keeps the later value."""
    points: dict[float, float] = {}
    for c in curves:
        points.update(dict(c.get(metric)))
    return sorted(points.items())


# Results, one row each: (label, value from a record, format, better: "low" | "high" | None).
def _s(key: str) -> Callable[[dict], Any]:
    return lambda r: (r.get("summary") or {}).get(key)


def _v(key: str) -> Callable[[dict], Any]:
    return lambda r: (r.get("verification") or {}).get(key)


def _share(hits: str, total: str) -> Callable[[dict], Any]:
    def get(r: dict) -> float | None:
        v = r.get("verification") or {}
        if isinstance(v.get(total), int) and v[total] and isinstance(v.get(hits), int):
            return v[hits] / v[total]
        return None
    return get


def _eval_end(r: dict) -> Any:
    return ((r.get("summary") or {}).get("eval_loss_end") or {}).get("loss")


def _export_agreement(r: dict) -> Any:
    found = [e.get("agreement") for e in r.get("exports") or [] if isinstance(e.get("agreement"), (int, float))]
    return max(found) if found else None


RESULTS: tuple[tuple[str, Callable[[dict], Any], Callable[[Any], str], str | None], ...] = (
    ("steps", _s("global_step"), lambda x: num(x, "d") if isinstance(x, int) else num(x), None),
    ("final loss", _s("final_loss"), num, "low"),
    ("mean train loss", _s("train_loss"), num, "low"),
    ("eval loss at the end", _eval_end, num, "low"),
    ("train runtime", _s("train_runtime"), seconds, "low"),
    ("peak GPU memory", _s("peak_memory_gib"), gib, "low"),
    ("exact answers, trained probes", _v("score"), lambda x: num(x, ".0%"), "high"),
    ("name in answer, held-out", _share("heldout_name_hits", "heldout_name"), lambda x: num(x, ".0%"), "high"),
    ("author in answer, held-out", _share("heldout_author_hits", "heldout_author"), lambda x: num(x, ".0%"), "high"),
    ("answers claiming the base identity", _share("base_claims", "answered"), lambda x: num(x, ".0%"), "low"),
    ("retention", lambda r: (r.get("retention") or {}).get("score"), lambda x: num(x, ".2f"), "high"),
    ("export agreement", _export_agreement, lambda x: num(x, ".1%"), "high"),
)


TIE = 0.01  # values within 1 % of the best are as good: a loss of 1.6272 against 1.6270 decides nothing


def _best(values: list[Any], better: str | None) -> set[int]:
    known = [(v, i) for i, v in enumerate(values) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if better is None or len(known) < 2:
        return set()
    target = (min if better == "low" else max)(v for v, _ in known)
    best = {i for v, i in known if abs(v - target) <= TIE * max(abs(target), 1e-12)}
    return best if len(best) < len(known) else set()


def results(records: list[dict]) -> tuple[str, list[str]]:
    """The results table, and one sentence per row that has a winner."""
    rows, said = [], []
    statuses = [badge(str(r.get("status")), STATUS_TONES.get(str(r.get("status")), "")) for r in records]
    rows.append(["status"] + statuses)
    attrs = ['data-metric="status"']
    for label, get, fmt, better in RESULTS:
        values = [get(r) for r in records]
        if all(v is None for v in values):
            continue
        best = _best(values, better)
        rows.append([esc(label)] + [(f'<span class="best">{fmt(v)}</span>' if i in best else fmt(v))
                                    for i, v in enumerate(values)])
        attrs.append(f'data-metric="{esc(label)}"')
        if best:
            said.append(f"{esc(label)}: <strong>{', '.join(LETTERS[i] for i in sorted(best))}</strong> "
                        f"({', '.join(fmt(values[i]) for i in sorted(best))}, "
                        f"{'lower' if better == 'low' else 'higher'} is better)")
    head = ["result"] + [LETTERS[i] for i in range(len(records))]
    return table(head, rows, cls="compare", row_attrs=attrs, numeric=tuple(range(1, len(records) + 1))), said


def _setting_values(r: dict) -> dict[str, Any]:
    values = {f"recipe: {k}": v for k, v in flat(r.get("resolved_recipe") or {}).items()}
    attempts = r.get("attempts") or []
    if attempts:
        last = attempts[-1]
        ran = f"{last.get('micro_batch')} x {last.get('gradient_accumulation')}"
        values["ran with micro-batch x accumulation"] = ran
        values["attempts"] = len(attempts)
    for name, version in (r.get("versions") or {}).items():
        values[f"version: {name}"] = version
    gpus = (r.get("host") or {}).get("gpus") or []
    values["GPU"] = ", ".join(str(g.get("name")) for g in gpus) or "none (CPU)"
    return values


def differences(records: list[dict]) -> list[tuple[str, list[Any]]]:
    each = [_setting_values(r) for r in records]
    keys = list(dict.fromkeys(k for values in each for k in values))
    return [(k, [values.get(k) for values in each]) for k in keys
            if len({json.dumps(values.get(k), sort_keys=True, default=str) for values in each}) > 1]


def _shown(value: Any) -> str:
    if value is None:
        return '<span class="muted">–</span>'
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"<code>{esc(text)}</code>"


def endings(records: list[dict]) -> str:
    """How each run ended, when they did not all end alike."""
    said = []
    for i, r in enumerate(records):
        d = r.get("diagnosis") or {}
        why = f" ({d['kind']}, exit {r.get('exit_code')})" if d.get("kind") else ""
        said.append(f"<strong>{LETTERS[i]}</strong> {esc(r.get('status'))}{esc(why)}")
    return f"how they ended: {'; '.join(said)}" if len({r.get("status") for r in records}) > 1 else ""


def render_comparison(runs: list[RunInput]) -> str:
    curves = [all_curves(run) for run in runs]
    # a run that stopped early is compared on the last values it logged
    records = [{**run.record, "summary": figures(run.record, c)} for run, c in zip(runs, curves)]
    legend = table(["run", "recipe", "run dir", "status", "started"], [
        [f'<span class="swatch" style="background:{run_color(i)}"></span><strong>{LETTERS[i]}</strong>',
         esc(recipe_name(r)), f"<code>{esc(r.get('run_dir') or Path(run.record_path).parent)}</code>",
         badge(str(r.get("status")), STATUS_TONES.get(str(r.get("status")), "")), esc(when(r.get("started_at")))]
        for i, (run, r) in enumerate(zip(runs, records))], cls="stack")
    figs = []
    for metric, title, ylabel in (("loss", "Loss", "loss"), ("memory_gib", "GPU memory per step", "GiB")):
        lines = [charts.Line(f"sk-cmp-{metric.replace('_', '')}-{LETTERS[i]}", f"{LETTERS[i]}: {recipe_name(r)}",
                             joined(c, metric), run_color(i)) for i, (r, c) in enumerate(zip(records, curves))
                 if joined(c, metric)]
        evals = [charts.Line(f"sk-cmp-evalloss-{LETTERS[i]}", f"{LETTERS[i]}: eval loss", joined(c, "eval_loss"),
                             run_color(i), dashed=True, markers=True)
                 for i, c in enumerate(curves) if metric == "loss" and joined(c, "eval_loss")]
        if lines:
            values = [v for line in lines + evals for _, v in line.points]
            log = metric == "loss" and charts.nice_log(values)
            chart = charts.Chart(title + (" (log scale)" if log else ""), "step", ylabel, lines + evals, log_y=log,
                                 y_from_zero=metric != "loss")
            figs.append(figure(charts.line_chart(chart, f"cmp-{metric}"), name=metric))
    table_html, said = results(records)
    said = ([endings(records)] if endings(records) else []) + said
    diff = differences(records)
    diff_html = table(["setting"] + [LETTERS[i] for i in range(len(records))],
                      [[esc(k)] + [_shown(v) for v in values] for k, values in diff], cls="compare settings",
                      nowrap=(0,)) \
        if diff else note("The runs used the same settings.")
    summary = ("<ul>" + "".join(f"<li>{s}</li>" for s in said) + "</ul>") if said else \
        note("No result separates the runs.")
    why = note(f"{len(diff)} setting(s) differ: " + ", ".join(esc(k) for k, _ in diff[:8])
               + (" …" if len(diff) > 8 else "")) if diff else ""
    parts = [("runs", "Runs", legend),
             ("verdict", "Which was better", summary + why),
             ("curves", "Curves", f'<div class="charts">{"".join(figs)}</div>' if figs else
              note("No run logged a training step.")),
             ("results", "Results", table_html),
             ("settings", "Settings that differ", diff_html)]
    body = f"<header><h1>Comparison of {len(runs)} runs</h1></header>" + "".join(
        section(ident, title, html) for ident, title, html in parts)
    return page(f"swiftkit: comparison of {len(runs)} runs", body, [(i, t) for i, t, _ in parts])
