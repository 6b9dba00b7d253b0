"""HTML pieces of the run report: escaping, numbers, tables, cards, and the page with its style sheet.

Every value that came from a run (answers, paths, recipe text) goes through `esc`: a model's answer
is data, never markup. The style sheet is the whole design: system fonts, one column that reflows
on a phone (wide tables become stacked cards below 640 px), and print rules.
"""
from __future__ import annotations

import html
import math
from typing import Any, Iterable, Sequence


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def num(value: Any, fmt: str = ".4g") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–" if value in (None, "") else esc(value)
    return format(value, fmt)


def seconds(value: Any) -> str:
    """'47.5 s', '3m 05s', '1h 02m'."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def ratio(hits: Any, total: Any) -> str:
    if not isinstance(total, int) or not total or not isinstance(hits, int):
        return "–"
    return f"{hits}/{total} ({hits / total:.0%})"


def gib(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) else f"{value:.2f} GiB"


def size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "–"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, cls: str = "", row_attrs: Sequence[str] = (),
          numeric: Sequence[int] = (), nowrap: Sequence[int] = ()) -> str:
    """A table whose cells are HTML already; `numeric` columns align right. Each cell carries its header
    as data-label, so the phone layout can show it beside the value."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        attrs = row_attrs[i] if i < len(row_attrs) else ""
        cells = "".join(f'<td data-label="{esc(h)}"{_cls(j, numeric, nowrap)}>{c}</td>'
                        for j, (h, c) in enumerate(zip(headers, row)))
        body.append(f"<tr{(' ' + attrs) if attrs else ''}>{cells}</tr>")
    return (f'<div class="scroll"><table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _cls(j: int, numeric: Sequence[int], nowrap: Sequence[int]) -> str:
    return ' class="num"' if j in numeric else ' class="nw"' if j in nowrap else ""


def pairs(items: Iterable[tuple[str, Any]], cls: str = "kv") -> str:
    """A two-column table of label and value (values are HTML already)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in items)
    return f'<div class="scroll"><table class="{cls}"><tbody>{rows}</tbody></table></div>'


def card(label: str, value: str, sub: str = "", tone: str = "") -> str:
    return (f'<div class="card {tone}"><div class="v">{value}</div><div class="l">{esc(label)}</div>'
            + (f'<div class="s">{sub}</div>' if sub else "") + "</div>")


def badge(text: str, tone: str) -> str:
    return f'<span class="badge {tone}">{esc(text)}</span>'


def section(ident: str, title: str, body: str) -> str:
    return f'<section id="{ident}"><h2>{esc(title)}</h2>{body}</section>' if body else ""


def figure(svg: str, caption: str = "", name: str = "") -> str:
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="chart" data-figure="{esc(name)}">{svg}{cap}</figure>'


def note(text: str) -> str:
    return f'<p class="muted">{text}</p>'


def page(title: str, body: str, nav: Sequence[tuple[str, str]] = ()) -> str:
    links = "".join(f'<a href="#{ident}">{esc(label)}</a>' for ident, label in nav)
    nav_html = f'<nav aria-label="sections">{links}</nav>' if links else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="color-scheme" content="light">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{nav_html}{body}</main></body></html>\n")


CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;
--accent:#0969da;--font:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,
"PingFang SC","Hiragino Sans GB","Microsoft YaHei","WenQuanYi Micro Hei","Noto Sans CJK SC",sans-serif}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.5 var(--font);color:var(--fg);background:#fff}
main{max-width:1100px;margin:0 auto;padding:20px 20px 56px}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85rem;padding-bottom:10px;border-bottom:1px solid var(--line)}
nav a{color:var(--accent);text-decoration:none}
nav a:hover{text-decoration:underline}
header{margin:18px 0 8px}
h1{font-size:1.55rem;line-height:1.25;margin:0 0 6px;overflow-wrap:anywhere}
h2{font-size:1.18rem;margin:0 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:1rem;margin:18px 0 6px}
section{margin-top:34px}
p{margin:6px 0}
.muted{color:var(--muted);font-size:.9rem}
.badge{display:inline-block;padding:1px 10px;border-radius:999px;font-size:.78rem;font-weight:600;
vertical-align:middle;color:#fff;background:var(--muted)}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.warn{background:var(--warn)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(155px,1fr));gap:10px;margin:14px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:9px 12px;background:var(--soft)}
.card .v{font-size:1.3rem;font-weight:650;font-variant-numeric:tabular-nums;line-height:1.3}
.card .l{color:var(--muted);font-size:.8rem}.card .s{font-size:.78rem;color:var(--muted)}
.card.ok .v{color:var(--ok)}.card.bad .v{color:var(--bad)}.card.warn .v{color:var(--warn)}
.alert{border-left:4px solid var(--bad);background:#ffebe9;padding:10px 16px;border-radius:6px;margin:12px 0}
.alert.warn{border-color:var(--warn);background:#fff8c5}.alert.ok{border-color:var(--ok);background:#dafbe1}
.alert p{margin:4px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,460px),1fr));gap:14px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:8px;padding:6px;background:#fff;break-inside:avoid}
figure.chart svg{display:block;width:100%;height:auto}
figure.chart svg text{font-family:var(--font)!important}
figcaption{font-size:.8rem;color:var(--muted);padding:2px 6px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.87rem;margin:6px 0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
thead th{background:var(--soft);font-weight:600;white-space:nowrap}
table.compare{width:auto;min-width:min(100%,640px)}
table.kv th{width:30%;font-weight:600;color:var(--muted);background:none}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.nw{white-space:nowrap}
table.probes td:first-child code{white-space:nowrap}
table.probes .b{color:var(--muted,#57606a)}mark{background:#fff1a8;color:inherit;padding:0 1px;border-radius:2px}
pre.columns{column-width:24em;column-gap:32px;column-rule:1px solid var(--line)}
tr.group th{background:#eef1f4;font-size:.85rem}
.pass{color:var(--ok);font-weight:600}.fail{color:var(--bad);font-weight:600}.best{background:#dafbe1;font-weight:600}
.tag{display:inline-block;font-size:.72rem;padding:0 6px;border-radius:4px;background:#ddf4ff;color:#0550ae;
margin-left:4px}
.tag.warn{background:#fff8c5;color:var(--warn)}.tag.bad{background:#ffebe9;color:var(--bad)}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:6px;vertical-align:-1px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.82rem}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:10px 12px;margin:6px 0;
white-space:pre-wrap;overflow-wrap:anywhere}
@media (max-width:640px){
body{font-size:14px}main{padding:12px 12px 40px}h1{font-size:1.3rem}
table.kv th{width:50%}
table.stack thead{display:none}
table.stack tr{display:block;border-bottom:1px solid var(--line);padding:4px 0}
table.stack td{display:block;border:0;padding:2px 4px}
table.stack td[data-label]::before{content:attr(data-label) ": ";color:var(--muted);font-size:.8rem}
table.stack td.num{text-align:left}
table.stack tr.group th{display:block}
}
@media print{
body{font-size:11pt}main{max-width:none;padding:0}nav{display:none}
section{margin-top:18px}h2{break-after:avoid}figure.chart,tr,.card,.alert{break-inside:avoid}
.charts{grid-template-columns:1fr 1fr}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""
