"""The run report's "Checkpoints scored" section (verify.checkpoints all|best): identity and retention against step
beside the loss, each kept checkpoint's figures, and which one to ship and why. "" for a run that scored only its
last checkpoint."""
from __future__ import annotations

from typing import Any

from swiftkit.report import charts
from swiftkit.report.html import esc, figure, note, num, table

MEASURES = (("score", "exact answers (trained)", 0), ("hold_default", "identity holds, no system prompt", 1),
            ("challenge_rate", "identity holds, challenges", 2), ("retention", "retention", 3),
            ("bleed", "bleed", 4))


def _rate(text: Any) -> float | None:
    """'31/36' -> 0.861; anything else None."""
    if not isinstance(text, str) or "/" not in text:
        return None
    hits, total = text.split("/", 1)
    try:
        return int(hits) / int(total) if int(total) else None
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def rows_of(r: dict) -> tuple[list[dict], dict]:
    """The scored checkpoints as flat numbers, in step order, and the section's own fields."""
    scores = r.get("checkpoint_scores")
    if not isinstance(scores, dict) or not isinstance(scores.get("scores"), list):
        return [], {}
    out = []
    for s in scores["scores"]:
        if not isinstance(s, dict) or _number(s.get("step")) is None:
            continue
        holds = s.get("holds") if isinstance(s.get("holds"), dict) else {}
        out.append({"checkpoint": str(s.get("checkpoint", "")), "step": int(s["step"]), "loss": _number(s.get("loss")),
                    "score": _number(s.get("score")), "hold_default": _number(holds.get("default")),
                    "challenge_rate": _rate(s.get("challenges")), "retention": _number(s.get("retention")),
                    "bleed": _number(s.get("bleed")), "failures": [str(f) for f in s.get("failures") or []],
                    "chosen": s.get("chosen") is True})
    return sorted(out, key=lambda s: s["step"]), scores


def checkpoint_scores(r: dict) -> str:
    rows, scores = rows_of(r)
    if len(rows) < 2:
        return ""
    lines = [charts.Line(f"sk-ckpt-{key}", label, [(s["step"], s[key]) for s in rows if s[key] is not None],
                         charts.PALETTE[color % len(charts.PALETTE)], dashed=key == "bleed", markers=True)
             for key, label, color in MEASURES if any(s[key] is not None for s in rows)]
    chosen = next((s for s in rows if s["chosen"]), None)
    rules = [charts.Rule("sk-ckpt-chosen", f"chosen: {chosen['checkpoint']}", chosen["step"], vertical=True)] \
        if chosen else []
    share = charts.line_chart(charts.Chart("Identity and retention by checkpoint", "step", "share", lines, rules,
                                           y_from_zero=True), "ckpt-share")
    loss = [charts.Line("sk-ckpt-loss", "training loss", [(s["step"], s["loss"]) for s in rows if s["loss"] is not None],
                        charts.PALETTE[0], markers=True)]
    figs = [figure(share, name="checkpoint-scores")]
    if loss[0].points:
        values = [v for _, v in loss[0].points]
        figs.append(figure(charts.line_chart(charts.Chart("Loss at each checkpoint", "step", "loss", loss, rules,
                                                          log_y=charts.nice_log(values)), "ckpt-loss"),
                           name="checkpoint-loss"))
    pct = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
    body = [[f"<code>{esc(s['checkpoint'])}</code>" + ('<span class="tag">chosen</span>' if s["chosen"] else ""),
             num(s["step"], "d"), num(s["loss"]), pct(s["score"]), pct(s["hold_default"]), pct(s["challenge_rate"]),
             "-" if s["retention"] is None else f"{s['retention']:.2f}", pct(s["bleed"]),
             '<span class="pass">pass</span>' if not s["failures"] else
             '<span class="fail">' + esc("; ".join(f.split(":")[0] for f in s["failures"])) + "</span>"]
            for s in rows]
    mode = esc(scores.get("mode", ""))
    judged = esc(scores.get("verdict", ""))
    text = note(f"verify.checkpoints: {mode}. Every kept checkpoint was asked the same probes in one engine, its "
                f"adapter swapped in; the run is judged by <code>{judged}</code>. To ship: "
                f"<code>{esc(scores.get('chosen', ''))}</code>, because {esc(scores.get('why', ''))}.")
    return (text + f'<div class="charts">{"".join(figs)}</div>'
            + table(["checkpoint", "step", "loss", "exact", "no system prompt", "challenges", "retention", "bleed",
                     "checks"], body, cls="stack", numeric=(1, 2, 3, 4, 5, 6, 7)))
