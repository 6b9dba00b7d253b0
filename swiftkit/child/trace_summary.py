"""The pure half of the step profile (step_profile.py): a chrome trace of torch.profiler, or cProfile's
statistics, -> where the time of the profiled steps went. No torch here: the parent's tests read it too."""
from __future__ import annotations

import os
import re

ADDRESS = re.compile(r" at 0x[0-9a-f]+")
PREFIX = "swiftkit."
SYNC_CALLS = ("Synchronize",)  # cudaStreamSynchronize, cudaDeviceSynchronize, cudaEventSynchronize
KERNEL_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}
TOP = 25


def _complete(events: list) -> list:
    return [e for e in events if e.get("ph") == "X" and "dur" in e and "ts" in e]


def _union(intervals: list) -> float:
    total, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _innermost(points: list, labels: list) -> list:
    """For each time in `points` (sorted), the index of the innermost label interval holding it, or None.
    Labels nest (record_function ranges of one step); the latest-starting one that still holds the time wins."""
    order = sorted(range(len(labels)), key=lambda i: (labels[i][0], -labels[i][1]))
    out, stack, j = [], [], 0
    for t in points:
        while j < len(order) and labels[order[j]][0] <= t:
            stack.append(order[j])
            j += 1
        while stack and labels[stack[-1]][1] < t:
            stack.pop()
        holder = next((i for i in reversed(stack) if labels[i][0] <= t <= labels[i][1]), None)
        out.append(holder)
    return out


def _self_times(events: list) -> dict:
    """Self time (µs) and calls by name, of events nested by time on each thread (Python functions, ops)."""
    by_thread: dict = {}
    for e in events:
        by_thread.setdefault((e.get("pid"), e.get("tid")), []).append(e)
    totals: dict = {}
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list = []  # [end, name, child time]
        for e in evs:
            while stack and stack[-1][0] <= e["ts"]:
                end, name, child, dur = stack.pop()
                _add(totals, name, dur - child)
            if stack:
                stack[-1][2] += e["dur"]
            stack.append([e["ts"] + e["dur"], e["name"], 0.0, e["dur"]])
        while stack:
            end, name, child, dur = stack.pop()
            _add(totals, name, dur - child)
    return totals


def _add(totals: dict, name: str, self_us: float) -> None:
    name = ADDRESS.sub("", name)  # "<built-in method ... of X object at 0x7f...>": one name for every object
    calls, total = totals.get(name, (0, 0.0))
    totals[name] = (calls + 1, total + max(self_us, 0.0))


def summarize(trace: dict, steps: int) -> dict:
    """The anatomy of the profiled steps from a chrome trace of torch.profiler: per step, wall time, GPU busy
    time (the union of kernel and copy time), kernel launches and synchronisations; per label, its wall time,
    its own time (less the labels inside it), the GPU time and launches of what it started itself; the Python
    functions and operators that cost the most CPU time of their own. Times in milliseconds per step."""
    events = _complete(trace.get("traceEvents", []))
    # record_function ranges are user_annotation events on the CPU; the profiler also copies them onto the GPU's
    # timeline (gpu_user_annotation), which are not the step's wall time
    ranges = [e for e in events if e.get("cat") == "user_annotation" and e["name"].startswith(PREFIX)]
    window = [e for e in ranges if e["name"] == PREFIX + "steps"]
    if not window:
        raise ValueError("the trace holds no swiftkit.steps range")
    w0, w1 = window[0]["ts"], window[0]["ts"] + window[0]["dur"]
    inside = [e for e in events if w0 <= e["ts"] <= w1]
    labels = [e for e in ranges if w0 <= e["ts"] <= w1 and e["name"] not in (PREFIX + "steps", PREFIX + "step")]
    kernels = [e for e in inside if e.get("cat") in KERNEL_CATS]
    runtime = [e for e in inside if e.get("cat") in ("cuda_runtime", "cuda_driver")]
    per = 1000.0 * steps  # µs in all -> ms a step

    spans = [(e["ts"], min(e["ts"] + e["dur"], w1)) for e in labels]  # one still open at the end: up to it
    names = [e["name"][len(PREFIX):] for e in labels]
    table: dict = {}

    def row(name: str) -> dict:
        return table.setdefault(name, {"calls": 0, "wall_ms": 0.0, "self_ms": 0.0, "gpu_ms": 0.0,
                                       "launches": 0, "syncs": 0, "sync_ms": 0.0})

    # a label's own time: its time less the labels directly inside it
    parent = [_parent_of(i, spans) for i in range(len(spans))]
    child_time = [0.0] * len(spans)
    for i, (start, stop) in enumerate(spans):
        if parent[i] is not None:
            child_time[parent[i]] += stop - start
    for i, name in enumerate(names):
        r = row(name)
        r["calls"] += 1
        r["wall_ms"] += (spans[i][1] - spans[i][0]) / per
        r["self_ms"] += (spans[i][1] - spans[i][0] - child_time[i]) / per
    top_level = _union([spans[i] for i in range(len(spans)) if parent[i] is None])
    loop = row("loop")
    loop["self_ms"] = loop["wall_ms"] = (w1 - w0 - top_level) / per

    by_corr = {e.get("args", {}).get("correlation"): e for e in kernels}
    runtime.sort(key=lambda e: e["ts"])
    holders = _innermost([e["ts"] for e in runtime], spans)
    launches = syncs = 0
    sync_ms = 0.0
    for e, holder in zip(runtime, holders):
        r = row(names[holder] if holder is not None else "loop")
        kernel = by_corr.get(e.get("args", {}).get("correlation"))
        is_sync = any(s in e["name"] for s in SYNC_CALLS) or (
            kernel is not None and "DtoH" in kernel.get("name", "") and "Async" not in e["name"])
        if kernel is not None:
            r["gpu_ms"] += kernel["dur"] / per
            if kernel.get("cat") == "kernel":
                r["launches"] += 1
                launches += 1
        if is_sync or (kernel is not None and "DtoH" in kernel.get("name", "")):
            r["syncs"] += 1
            r["sync_ms"] += e["dur"] / per
            syncs += 1
            sync_ms += e["dur"] / per
    gpu_busy = _union([(k["ts"], k["ts"] + k["dur"]) for k in kernels])
    ops = [e for e in inside if e.get("cat") == "cpu_op"]
    step_walls = [e["dur"] / 1000.0 for e in ranges if w0 <= e["ts"] <= w1 and e["name"] == PREFIX + "step"]
    for r in table.values():
        for key in ("wall_ms", "self_ms", "gpu_ms", "sync_ms"):
            r[key] = round(r[key], 3)
    return {
        "steps": steps,
        "wall_ms": round((w1 - w0) / per, 3),
        "step_walls_ms": [round(s, 3) for s in step_walls],
        "gpu_busy_ms": round(gpu_busy / per, 3),
        "gpu_busy_fraction": round(gpu_busy / (w1 - w0), 4) if w1 > w0 else 0.0,
        "kernel_launches": round(launches / steps, 1),
        "syncs": round(syncs / steps, 1),
        "sync_ms": round(sync_ms, 3),
        "runtime_ms": round(sum(e["dur"] for e in runtime) / per, 3),
        "labels": dict(sorted(table.items(), key=lambda kv: -kv[1]["self_ms"])),
        "ops": _top(_self_times(ops), per),
    }


def _parent_of(i: int, spans: list):
    """The innermost other label holding label i (labels nest)."""
    start, stop = spans[i]
    best = None
    for j, (s, e) in enumerate(spans):
        holds = s <= start and stop <= e and ((s, e) != (start, stop) or j < i)
        if j != i and holds and (best is None or (s, -e) >= (spans[best][0], -spans[best][1])):
            best = j
    return best


def _top(totals: dict, per: float) -> list:
    ranked = sorted(totals.items(), key=lambda kv: -kv[1][1])[:TOP]
    return [{"name": name, "calls": round(calls * 1000.0 / per, 1), "self_ms": round(us / per, 3)}
            for name, (calls, us) in ranked]


def python_top(stats, steps: int, seconds: float) -> dict:
    """cProfile's functions of the training thread by time of their own, per step."""
    import pstats

    table = pstats.Stats(stats).stats  # (file, line, name) -> (calls, primitive calls, own, cumulative, callers)
    ranked = sorted(table.items(), key=lambda kv: -kv[1][2])[:TOP]
    rows = []
    for (file, line, name), (calls, _prim, own, cumulative, _callers) in ranked:
        where = name if file == "~" else f"{_short(file)}:{line}({name})"
        rows.append({"name": ADDRESS.sub("", where), "calls": round(calls / steps, 1),
                     "self_ms": round(own * 1000 / steps, 3), "cumulative_ms": round(cumulative * 1000 / steps, 3)})
    return {"steps": steps, "wall_ms": round(seconds * 1000 / steps, 3), "functions": rows}


def _short(path: str) -> str:
    """site-packages/transformers/trainer.py -> transformers/trainer.py."""
    marker = "site-packages" + os.sep
    return path.split(marker, 1)[1] if marker in path else path
