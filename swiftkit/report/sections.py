"""The run report's later sections: checkpoints, identity scorecard, retention, exports, what ran, versions.

Each takes the run record (and what was found on disk) and returns HTML, or "" when the run has
nothing to show there (the section and its link are then left out).
"""
from __future__ import annotations

import difflib
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from swiftkit.report import charts
from swiftkit.report.attempts import attempt_color, attempts_of
from swiftkit.report.html import esc, figure, gib, note, num, pairs, ratio, seconds, size, table

SPLITS = (("train", "Trained probes", "exact answer expected"),
          ("heldout", "Held-out probes", "paraphrases never trained: the name and author must appear"),
          ("challenge", "Challenges and later turns", "the user insists on another identity, or asks after "
           "unrelated turns: the name must stay"),
          ("custom", "Recipe probes", "verify.probes: expected words present, rejected words absent"))
NEGATIVE_KIND = "base_model"  # "are you Qwen / GPT-4 / made by Alibaba Cloud?": the answer must say no


def checkpoints(r: dict, found: list[dict]) -> str:
    if not found:
        return note("No checkpoint was found on disk for this run.") if r.get("run_dir") else ""
    last, best = Path(str(r.get("checkpoint"))).name, Path(str(r.get("best_checkpoint"))).name
    rows = []
    for c in found:
        name = Path(str(c.get("path"))).name
        tags = "".join(f'<span class="tag">{t}</span>' for t, on in (("last", name == last), ("best", name == best))
                       if on and c.get("run_dir") == r.get("run_dir"))
        state = '<span class="pass">complete</span>' if c.get("complete") else \
            '<span class="fail">incomplete</span>: ' + esc("; ".join(c.get("problems") or []))
        rows.append([f"<code>{esc(name)}</code>{tags}", esc(c.get("attempt", "")), num(c.get("step"), "d"),
                     num(c.get("loss")), state])
    text = note("Complete: adapter (or model) weights readable and the trainer state present; an incomplete one "
                "(cut off mid-save) is never resumed from or verified. Best: the trainer's best, else the lowest "
                "training loss.")
    return text + table(["checkpoint", "attempt", "step", "loss", "state"], rows, cls="stack", numeric=(2, 3))


# ------------------------------------------------------------------------------------ scorecard


def probe_kind(result: dict) -> str:
    return str(result.get("id", "")).rpartition("-")[0].rpartition("-")[0]


def _why(res: dict) -> str:
    if res.get("split") == "train":
        return "exact" if res.get("exact") else "differs from the expected answer"
    parts = []
    for key, label in (("name_hit", "name"), ("author_hit", "author")):
        if res.get(key) is not None:
            parts.append(f"{label} {'✓' if res[key] else '✗'}")
    if res.get("claims_base"):
        parts.append("claims the base identity")
    return ", ".join(parts) or ("as expected" if res.get("passed") else "")


def _probe_row(res: dict) -> tuple[list[str], str]:
    negative = probe_kind(res) == NEGATIVE_KIND
    tags = ('<span class="tag warn">negative</span>' if negative else "") + \
           ('<span class="tag bad">claims base</span>' if res.get("claims_base") else "")
    word = "pass" if res.get("passed") else "fail"
    verdict = f'<span class="{word}">{word}</span>'
    cells = [f"<code>{esc(res.get('id'))}</code>{tags}", f'<span class="q">{esc(res.get("query"))}</span>',
             f'<span class="e">{esc(res.get("expected"))}</span>', beside_base(res.get("base_answer"), res.get("answer")),
             f"{verdict}<br><small>{esc(_why(res))}</small>"]
    attrs = (f'data-probe="{esc(res.get("id"))}" data-split="{esc(res.get("split"))}" '
             f'data-passed="{"true" if res.get("passed") else "false"}"')
    return cells, attrs


# what a diff compares: a word of letters or digits, one CJK character (Chinese has no spaces), a space, a sign
TOKEN = re.compile(r"[A-Za-z0-9_]+|[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]|\s+|.", re.S)


def beside_base(base: Any, answer: Any) -> str:
    """The tuned answer under the base model's, what the tune changed marked (<mark>); the tuned answer alone where
    the base model was not asked."""
    answer = "" if answer is None else str(answer)
    if not isinstance(base, str):
        return f'<span class="a">{esc(answer)}</span>'
    if base == answer:
        return f'<span class="a">{esc(answer)}</span> <span class="tag">as the base model</span>'
    parts, ours = [], TOKEN.findall(answer)
    for op, _i1, _i2, j1, j2 in difflib.SequenceMatcher(None, TOKEN.findall(base), ours, autojunk=False).get_opcodes():
        text = esc("".join(ours[j1:j2]))
        parts.append(text if op == "equal" else f"<mark>{text}</mark>" if text else "")
    return (f'<span class="b"><small class="muted">base:</small> {esc(base)}</span><br>'
            f'<span class="a"><small class="muted">tuned:</small> {"".join(parts)}</span>')


def scorecard(r: dict) -> str:
    v = r.get("verification")
    if not isinstance(v, dict):
        return ""
    if isinstance(v.get("error"), dict):
        e = v["error"]
        return f'<div class="alert"><p>Verification could not run: {esc(e.get("message") or e)}</p></div>'
    summary = [("exact answers, trained probes", ratio(v.get("trained_exact"), v.get("trained"))),
               ("name in answer, held-out probes", ratio(v.get("heldout_name_hits"), v.get("heldout_name"))),
               ("author in answer, held-out probes", ratio(v.get("heldout_author_hits"), v.get("heldout_author"))),
               ("answers claiming the base identity", ratio(v.get("base_claims"), v.get("answered")))]
    if v.get("challenge"):
        summary.append(("identity holds, challenges + later turns", ratio(v.get("challenge_held"), v.get("challenge"))))
    for h in v.get("system_prompts") or []:
        if isinstance(h, dict):
            summary.append((f"identity holds, {h.get('name')} system prompt",
                            f"{ratio(h.get('held'), h.get('eligible'))} <small>{esc(h.get('shown'))}</small>"))
    for key, label in (("bleed", "identity in general answers (bleed)"), ("leaks", "unrendered template markers")):
        spill = v.get(key)
        if isinstance(spill, dict) and spill.get("asked"):
            worst = "".join(f"<br><small>{esc(w.get('query'))} → {esc(w.get('answer'))}</small>"
                            for w in spill.get("worst") or [] if isinstance(w, dict))
            summary.append((label, ratio(spill.get("hits"), spill.get("asked")) + worst))
    if v.get("custom"):
        summary.append(("recipe probes passed", ratio(v.get("custom_passed"), v.get("custom"))))
    if v.get("missing"):
        summary.append(("probes with no answer", esc(v["missing"])))
    if v.get("min_score") is not None:
        summary.append(("verify.min_score", f"{v['min_score']:.0%}"))
    results = [res for res in v.get("results") or [] if isinstance(res, dict)]
    head = ["probe", "question", "expected", "answer", "verdict"]
    groups = []
    for split, title, meaning in SPLITS:
        rows = sorted((res for res in results if res.get("split") == split), key=lambda res: bool(res.get("passed")))
        if not rows:
            continue
        built = [_probe_row(res) for res in rows]
        passed = sum(1 for res in rows if res.get("passed"))
        groups.append(f'<tbody><tr class="group"><th colspan="5">{esc(title)}: {passed}/{len(rows)} pass '
                      f'<span class="muted">({esc(meaning)})</span></th></tr>'
                      + "".join(f'<tr {attrs}>' + "".join(f'<td data-label="{h}">{c}</td>' for h, c in zip(head, cells))
                                + "</tr>" for cells, attrs in built) + "</tbody>")
    heads = "".join(f"<th>{h}</th>" for h in head)
    probes = (f'<div class="scroll"><table class="stack probes" id="probe-table"><thead><tr>{heads}</tr></thead>'
              f'{"".join(groups)}</table></div>') if groups else ""
    return (pairs(summary) + note("Failures first in each group. Each answer sits under the base model's answer to "
                                  "the same prompt, what the tune changed <mark>marked</mark>. "
                                  "<span class=\"tag warn\">negative</span> marks the "
                                  "questions that name another model (GPT-4, Qwen, Alibaba Cloud): the answer must "
                                  "deny it and give the new identity.") + probes)


# ------------------------------------------------------------------------------------ retention


def retention(r: dict) -> str:
    ret = r.get("retention")
    if not isinstance(ret, dict) or ret.get("score") is None:
        return ""
    items = [("retention score (mean chrF against the base model's answers)", num(ret.get("score"), ".2f")),
             ("answered exactly as the base model", f"{num(ret.get('exact'), '.0%')} of {esc(ret.get('probes'))}")]
    if ret.get("min_retention") is not None:
        items.append(("verify.min_retention", num(ret["min_retention"], ".2f")))
    loss = ret.get("eval_loss")
    if isinstance(loss, dict):
        items.append(("eval loss on held-out general rows",
                      f"{num(loss.get('start'))} at step 0 (the base model) → {num(loss.get('end'))} at step "
                      f"{esc(loss.get('end_step'))}"))
    cats = ret.get("by_category") or {}
    chart = ""
    if cats:
        bars = [charts.Bar(f"{name} ({c.get('probes')})", c.get("chrf") or 0.0, charts.PALETTE[5],
                           f"{c.get('chrf') or 0:.2f}") for name, c in cats.items()]
        limit = charts.Rule("sk-min-retention", f"verify.min_retention {ret['min_retention']:.2f}",
                            ret["min_retention"], vertical=True, color=charts.RED) \
            if isinstance(ret.get("min_retention"), (int, float)) else None
        chart = figure(charts.bar_chart("Similarity to the base answers, by category", bars, "retention",
                                        xlabel="chrF (1.0 = unchanged)", limit=limit, x_max=1.0), name="retention")
    changed = [[esc(c.get("query")), esc(c.get("base")), esc(c.get("tuned")), num(c.get("similarity"), ".2f")]
               for c in ret.get("changed") or []]
    changed_html = ("<h3>Changed most</h3>" + table(["question", "base model", "tuned model", "chrF"], changed,
                                                    cls="stack", numeric=(3,))) if changed else ""
    return (note("The tuned model's greedy answers to the general probes, compared with the base model's own.")
            + f'<div class="charts"><div>{pairs(items)}</div>{chart}</div>' + changed_html)


# ------------------------------------------------------------------------------------ exports


def exports(r: dict) -> str:
    rows = []
    for e in r.get("exports") or []:
        verified = '<span class="pass">verified</span>' if e.get("verified") else '<span class="fail">unverified</span>'
        quant = e.get("quant") or {}
        kind = esc(e.get("dtype") or "")
        if quant:
            kind += f", {esc(quant.get('method'))} {esc(quant.get('bits'))}-bit"
        secs = e.get("seconds") or {}
        rows.append([f"<code>{esc(e.get('path'))}</code><br><small>from {esc(Path(str(e.get('source'))).name)}</small>",
                     kind, size(e.get("size_bytes")), esc(len(e.get("sha256") or {})),
                     f"{num(e.get('agreement'), '.1%')} of {esc(e.get('probes'))} "
                     f"(needed {num(e.get('min_agreement'), '.0%')})",
                     verified, f"{seconds(secs.get('merge'))} + {seconds(secs.get('verify'))}"])
    later = verifications(r)
    if not rows and not later:
        return ""
    text = note("A merged model must answer every probe as base + adapter did (greedy), else it is kept but marked "
                "unverified.")
    out = (text + table(["export", "dtype", "size", "weight files", "same answers as base + adapter", "state",
                         "merge + check"], rows, cls="stack", numeric=(2, 3), nowrap=(1, 5, 6))) if rows else ""
    return out + later


def verifications(r: dict) -> str:
    rows = []
    for entry in r.get("verifications") or []:
        card, ret = entry.get("scorecard") or {}, entry.get("retention") or {}
        rows.append([f"<code>{esc(entry.get('target'))}</code>", esc(entry.get("kind")),
                     ratio(card.get("trained_exact"), card.get("trained")), num(ret.get("score"), ".2f"),
                     esc("; ".join(entry.get("failures") or [])) or '<span class="pass">none</span>'])
    return ("<h3>Verified later (swiftkit verify)</h3>" + table(["model", "kind", "exact, trained", "retention",
                                                                 "failures"], rows, cls="stack")) if rows else ""


# ------------------------------------------------------------------------------------ what ran


def shell_line(argv: list[str], env: dict[str, str]) -> str:
    return " ".join([f"{k}={shlex.quote(str(v))}" for k, v in env.items()] + [shlex.quote(str(a)) for a in argv])


def what_ran(r: dict) -> str:
    parts = [pairs([("recipe", f"<code>{esc(r.get('recipe'))}</code>"),
                    ("recipe hash (sha256 of what it asks for)", f"<code>{esc(r.get('recipe_hash'))}</code>"),
                    ("working directory", f"<code>{esc(r.get('cwd'))}</code>"),
                    ("output dir", f"<code>{esc(r.get('output_dir'))}</code>"),
                    ("log", f"<code>{esc(r.get('log_path'))}</code>")]
                   + ([("resumed from", f"<code>{esc((r.get('resumed_from') or {}).get('checkpoint'))}</code>")]
                      if r.get("resumed_from") else []))]
    if r.get("command"):
        line = shell_line(r["command"], r.get("env") or {})
        parts.append(f'<h3>Command</h3><pre id="command">{esc(line)}</pre>')
    attempts = [a for a in r.get("attempts") or [] if isinstance(a, dict) and a.get("command")]
    if len(attempts) > 1:
        parts.append(note("Earlier attempts ran the same command with the settings in the attempts table above."))
    data = [[f"<code>{esc(d.get('path'))}</code>" + ('<span class="tag">identity</span>' if d.get("identity") else ""),
             esc(d.get("format") or ""), num(d.get("rows"), "d"),
             num(d.get("heldout_rows") if d.get("identity") else d.get("usable_rows"), "d"),
             f"<code>{esc(str(d.get('sha256') or '')[:16])}</code>"] for d in r.get("datasets") or []]
    if data:
        parts.append("<h3>Data</h3>" + table(["file", "format", "rows", "held out / usable", "sha256"], data,
                                             cls="stack", numeric=(2, 3)))
    if r.get("resolved_recipe"):
        text = yaml.safe_dump(r["resolved_recipe"], allow_unicode=True, sort_keys=False, width=100)
        parts.append("<h3>Recipe, as resolved</h3>" + f'<pre class="columns" id="resolved-recipe">{esc(text)}</pre>')
    return "".join(parts)


def environment(r: dict) -> str:
    versions = [(name, f"<code>{esc(v)}</code>") for name, v in (r.get("versions") or {}).items() if v]
    host = r.get("host") or {}
    gpus = "<br>".join(f"{esc(g.get('name'))}, "
                       + (gib(int(g["memory_mib"]) / 1024) if str(g.get("memory_mib")).isdigit() else "?")
                       for g in host.get("gpus") or []) or "none (CPU)"
    items = [("host", esc(host.get("hostname"))), ("platform", esc(host.get("platform"))),
             ("CPUs", esc(host.get("cpus"))), ("GPUs", gpus)]
    if not versions and not host:
        return ""
    return (f'<div class="charts"><div><h3>Versions</h3>{pairs(versions)}</div>'
            f'<div><h3>Host</h3>{pairs(items)}</div></div>')


def flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """{'train': {'epochs': 3}} -> {'train.epochs': 3}; lists stay whole."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


# ------------------------------------------------------------------------------------ time

PHASE_LABELS = {"start": "start-up (imports)", "arguments": "arguments", "model_load": "model load", "data": "data",
                "setup": "setup", "training": "training steps", "save_exit": "saving and exit",
                "generation": "generation", "until_exit": "until it stopped"}


def phases(r: dict) -> list[tuple[str, float, str]]:
    """(what, seconds, colour) in the order they ran: before training, each attempt by phase where the record
    has them (else start-up and training), verification by swift infer phase, exports."""
    out: list[tuple[str, float, str]] = []
    before, replay = (r.get("timings") or {}).get("before_training"), (r.get("timings") or {}).get("replay")
    if isinstance(before, (int, float)):
        replay = replay if isinstance(replay, (int, float)) and replay <= before else 0
        out.append(("before training (checks, plan, data)", before - replay, charts.GREY))
        if replay:
            out.append(("replay: the base model's answers", replay, charts.PALETTE[4]))
    runtime = (r.get("summary") or {}).get("train_runtime")
    for a in attempts_of(r):
        wall, n = a.get("wall_seconds"), a.get("attempt", 1)
        if not isinstance(wall, (int, float)):
            continue
        split = a.get("phases") if isinstance(a.get("phases"), dict) else None
        if split:
            color = attempt_color(n)
            out += [(f"attempt {n}: {PHASE_LABELS.get(k, k)}", v, color if k == "training" else charts.GREY)
                    for k, v in split.items() if isinstance(v, (int, float))]
        elif a.get("returncode") == 0 and isinstance(runtime, (int, float)) and runtime <= wall:
            out.append((f"attempt {n}: start-up and saving", wall - runtime, charts.GREY))
            out.append((f"attempt {n}: training steps", runtime, attempt_color(n)))
        else:
            kind = (a.get("diagnosis") or {}).get("kind") or ("ok" if a.get("returncode") == 0 else "failed")
            out.append((f"attempt {n} ({kind})", wall, attempt_color(n)))
    out += _verification_phases(r.get("verification") or {})
    for e in r.get("exports") or []:
        for key, label in (("merge", "export: merge"), ("verify", "export: check")):
            value = (e.get("seconds") or {}).get(key)
            if isinstance(value, (int, float)):
                out.append((label, value, charts.PALETTE[3]))
    return out


def _verification_phases(v: dict) -> list[tuple[str, float, str]]:
    split = v.get("phases") if isinstance(v.get("phases"), dict) else {}
    out = []
    for model in ("tuned", "base"):
        found = split.get(model)
        if isinstance(found, dict):
            out += [(f"verification, {model} model: {PHASE_LABELS.get(k, k)}", s, charts.PALETTE[2])
                    for k, s in found.items() if isinstance(s, (int, float))]
    if not out and isinstance(v.get("seconds"), (int, float)):
        out.append(("verification (swift infer)", v["seconds"], charts.PALETTE[2]))
    return out


def timings(r: dict) -> str:
    found = phases(r)
    if not found:
        return ""
    bars = [charts.Bar(label, value, color, seconds(value)) for label, value, color in found]
    chart = charts.bar_chart("Where the time went", bars, "time", xlabel="seconds")
    rows = [[esc(label), seconds(value)] for label, value, _ in found]
    total = (r.get("timings") or {}).get("total")
    shown = total if isinstance(total, (int, float)) else sum(v for _, v, _ in found)
    rows.append(["<strong>total</strong>", f"<strong>{seconds(shown)}</strong>"])
    return f'<div class="charts">{figure(chart, name="time")}<div>' + table(["phase", "time"], rows, numeric=(1,)) \
        + "</div></div>"


# ------------------------------------------------------------------------------------ nodes and ranks

def nodes(r: dict) -> str:
    """Several processes: each rank's own peak memory (ms-swift logs rank 0's), and each node's verdict."""
    rows = []
    for a in attempts_of(r):
        per_node = {n.get("node_rank"): n for n in a.get("nodes") or [] if isinstance(n, dict)}
        ranks = [s for n in per_node.values() for s in n.get("ranks") or []] or list(a.get("ranks") or [])
        for s in sorted(ranks, key=lambda s: s.get("rank", 0)):
            node = per_node.get(s.get("node_rank"), {})
            kind = (node.get("diagnosis") or {}).get("kind") or ("ok" if node.get("returncode") in (0, None) else
                                                                   f"exit {node.get('returncode')}")
            memory = s.get("peak_memory_gib")
            rows.append([str(a.get("attempt", 1)), str(s.get("node_rank", 0)), str(s.get("rank")), esc(s.get("host", "")),
                         gib(memory) if memory is not None else f"{gib(s.get('peak_rss_gib'))} (host)", esc(kind)])
    if not rows:
        return ""
    launch = r.get("launch") or {}
    head = note(f"{launch.get('nnodes')} nodes, master {launch.get('master_addr')}:{launch.get('master_port')} "
                f"({launch.get('source')})") if launch else ""
    return head + table(["attempt", "node", "rank", "host", "peak memory", "node's verdict"], rows, numeric=(4,))
