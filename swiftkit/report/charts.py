"""Charts for the run report: matplotlib figures written as inline SVG. Pure: data in, SVG text out.

Why matplotlib to SVG rather than a JavaScript chart library inlined in the page: it is already
installed (ms-swift depends on it), the page then needs no script at all (nothing to fail in a
browser's console, nothing that could fetch), a chart costs about 10 KB where the smallest
capable JS libraries cost 50-200 KB before any data, and SVG stays sharp when zoomed or printed.
Text is kept as SVG text (`svg.fonttype: none`) so it is small, searchable and set in the page's
font; every series line carries an id (`sk-...`) so a test, or a person with the inspector, can
find each curve and count its points. Path simplification is off so each logged step is a vertex.
"""
from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from typing import Sequence

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
GREY, RED, AMBER = "#6e7781", "#cf222e", "#9a6700"

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "swiftkit-report",  # the same data gives the same SVG (stable files, clean diffs)
    "path.simplify": False,
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titlelocation": "left",
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#8c959f",
    "axes.grid": True,
    "grid.color": "#d8dee4",
    "grid.linewidth": 0.6,
    "xtick.color": "#57606a",
    "ytick.color": "#57606a",
    "legend.fontsize": 8.5,
    "legend.frameon": False,
}


@dataclass
class Line:
    gid: str  # "sk-..." : the id of the <g> holding this series' path in the SVG
    label: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    dashed: bool = False
    markers: bool | None = None  # None: markers when there are few points
    alone: bool = False  # a mark, no line (where an attempt failed)


@dataclass
class Rule:
    """A reference line: horizontal (a memory limit) or vertical (where an attempt starts)."""

    gid: str
    label: str
    at: float
    vertical: bool = False
    color: str = GREY


@dataclass
class Bar:
    label: str
    value: float
    color: str = PALETTE[0]
    text: str = ""  # written at the end of the bar


@dataclass
class Chart:
    title: str
    xlabel: str = ""
    ylabel: str = ""
    lines: list[Line] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    log_y: bool = False
    y_from_zero: bool = False
    x_max: float | None = None  # the run's max_steps: a run that stopped early shows how far it got


def line_chart(chart: Chart, prefix: str) -> str:
    """The chart as an <svg> element; ids are prefixed with `prefix` so several charts share a page."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(5.0, 3.0))  # ~480 px: about life size in a desktop column and on a phone
        ax = fig.add_subplot()
        for line in chart.lines:
            xs, ys = zip(*line.points) if line.points else ((), ())
            few = len(xs) <= 40 if line.markers is None else line.markers
            if line.alone:
                ax.plot(xs, ys, color=line.color, linestyle="none", marker="X", markersize=9, label=line.label,
                        gid=line.gid, zorder=5)
                continue
            ax.plot(xs, ys, color=line.color, linestyle="--" if line.dashed else "-", linewidth=1.6,
                    marker="o" if few else None, markersize=3.2, label=line.label, gid=line.gid)
        for rule in chart.rules:
            draw = ax.axvline if rule.vertical else ax.axhline
            draw(rule.at, color=rule.color, linestyle=(0, (4, 3)), linewidth=1.1, label=rule.label, gid=rule.gid)
        if chart.log_y:
            ax.set_yscale("log")
        elif chart.y_from_zero:
            ax.set_ylim(bottom=0)
        ax.set_title(chart.title)
        ax.set_xlabel(chart.xlabel)
        ax.set_ylabel(chart.ylabel)
        ax.margins(x=0.02)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        if chart.x_max:
            ax.set_xlim(0, chart.x_max * 1.02)
        if len(chart.lines) + len(chart.rules) > 1:
            ax.legend(loc="best")
        return _svg(fig, prefix)


def bar_chart(title: str, bars: list[Bar], prefix: str, *, xlabel: str = "", limit: Rule | None = None,
              x_max: float | None = None) -> str:
    """Horizontal bars, first at the top, with their value written beside them."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({**_RC, "axes.grid.axis": "x"}):
        fig = Figure(figsize=(5.4, 0.9 + 0.3 * max(len(bars), 1)))
        ax = fig.add_subplot()
        ys = list(range(len(bars)))[::-1]
        ax.barh(ys, [b.value for b in bars], color=[b.color for b in bars], height=0.62)
        top = x_max or max([b.value for b in bars] + [limit.at if limit else 0.0, 1e-9])
        for y, b in zip(ys, bars):
            ax.text(b.value + top * 0.01, y, b.text, va="center", fontsize=8.5, color="#24292f")
        if limit is not None:
            ax.axvline(limit.at, color=limit.color, linestyle=(0, (4, 3)), linewidth=1.1, label=limit.label,
                       gid=limit.gid)
            ax.legend(loc="lower right")
        ax.set_yticks(ys, [b.label for b in bars])
        ax.set_xlim(0, top * 1.18)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        return _svg(fig, prefix)


_ID = re.compile(r'(\bid="|url\(#|href="#)([^")]+)')


def _svg(fig, prefix: str) -> str:
    """The figure as an <svg> element for an HTML page: no XML prolog, no doctype, no metadata, sized by
    the page (viewBox kept, width/height dropped), and matplotlib's own ids made unique per chart."""
    fig.tight_layout(pad=0.4)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r'<svg ([^>]*?)width="[^"]*" height="[^"]*" ', r'<svg \1', text, count=1)
    text = text.replace("<svg ", f'<svg role="img" class="plot" data-chart="{prefix}" ', 1)
    return _ID.sub(lambda m: m.group(1) + (m.group(2) if m.group(2).startswith("sk-") else f"{prefix}-{m.group(2)}"),
                   text)


def nice_log(values: Sequence[float]) -> bool:
    """A log axis where the values span more than ~1.5 decades (a loss that falls from 9 to 0.01)."""
    positive = [v for v in values if v > 0 and math.isfinite(v)]
    return len(positive) == len(values) and len(values) > 1 and max(positive) / min(positive) > 30
