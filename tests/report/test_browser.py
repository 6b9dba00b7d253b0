"""The report as a person opens it: from disk, in a real headless Chromium (Debian's package, driven over
the DevTools protocol on a pipe). For the demo run, a run that failed (a CUDA OOM injected into the real
ms-swift child, the OOM ladder exhausted) and a comparison of the two: no console error, no request but
the file itself, every chart drawn with one point per logged step, the scorecard rows as in the record,
nothing wider than a phone. Screenshots are kept in bench/results/report/ for a person to look at.

Why Debian's chromium and the raw protocol, not Playwright: Playwright's browser download cannot happen
here (no network beyond the package registries) and its Python package is a 40 MB driver for what is a
dozen protocol calls; the pipe (--remote-debugging-pipe) needs no port and no client library.
"""
from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import FAULT, ROOT, run_cli

from swiftkit.commands.report import report

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
SHOTS = ROOT / "bench" / "results" / "report"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--mute-audio",
    # anything that still tried the network would go to a closed port and fail, and show up below
    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
]


class Chromium:
    """Headless Chromium over the DevTools protocol on fds 3 (commands in) and 4 (answers out), NUL-separated."""

    def __init__(self, executable: str):
        self.profile = tempfile.mkdtemp(prefix="swiftkit-chromium-")
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()

        def as_fds_3_and_4() -> None:  # copy both first: either may already sit on 3 or 4
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        argv = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
                "about:blank"]
        self.proc = subprocess.Popen(argv, preexec_fn=as_fds_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.events, self.session = b"", 0, [], None
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 browser=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: dict | None = None, *, browser: bool = False, timeout: float = 60) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            message["sessionId"] = self.session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for m in self._read(deadline):
                if m.get("id") == self._id:
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
                self.events.append(m)

    def _read(self, deadline: float) -> list[dict]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited: " + self.proc.stderr.read().decode(errors="replace")[-2000:])
            self._buf += chunk
        *whole, self._buf = self._buf.split(b"\0")
        return [json.loads(w) for w in whole]

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.extend(self._read(deadline))

    def open(self, path: Path, *, width: int = 1100, height: int = 900, mobile: bool = False) -> None:
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": mobile})
        self.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str):
        out = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        assert "exceptionDetails" not in out, out
        return out["result"].get("value")

    def screenshot(self, path: Path, *, height: int | None = None) -> None:
        """The page from the top, `height` CSS px of it (the whole page when None)."""
        full = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": full["width"], "height": min(height or full["height"], full["height"]),
                "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True, timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope="session")  # session: set up before the demo run, so a missing Chromium skips at once
def browser():
    exe = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's: apt-get install chromium)")
    try:
        b = Chromium(exe)
    except (OSError, RuntimeError, TimeoutError) as exc:
        pytest.skip(f"Chromium could not be started: {exc}")
    yield b
    b.close()


# What the page shows, read in the browser: every series (vertices of its line, marks), the probe rows,
# the sections, and how wide it is.
SEEN = """(() => {
  const series = {};
  for (const g of document.querySelectorAll('g[id^="sk-"]')) {
    const line = g.querySelector(':scope > path');
    series[g.id] = {vertices: line ? (line.getAttribute('d').match(/[ML]/g) || []).length : 0,
                    marks: g.querySelectorAll('use').length};
  }
  const charts = [...document.querySelectorAll('figure.chart svg')].map(s => s.getBoundingClientRect().width);
  const probes = [...document.querySelectorAll('#probe-table tr[data-probe]')].map(tr => ({
    id: tr.dataset.probe, split: tr.dataset.split, cells: [...tr.cells].map(td => td.textContent)}));
  return {series, charts, probes, title: document.title,
          status: (document.querySelector('h1 .badge') || {}).textContent,
          sections: [...document.querySelectorAll('section')].map(s => s.id),
          text: document.body.innerText, width: document.documentElement.scrollWidth};
})()"""


def look(b: Chromium, page: Path, shot: str, *, height: int | None = 1700) -> dict:
    """Open the page as a person would, on a laptop and on a phone; what it showed, and what it did."""
    b.open(page)
    seen = b.js(SEEN)
    b.screenshot(SHOTS / f"{shot}.png", height=height)
    events = list(b.events)
    b.open(page, width=390, height=844, mobile=True)
    seen["phone_width"] = b.js("document.documentElement.scrollWidth")
    b.screenshot(SHOTS / f"{shot}-phone.png", height=844)
    events += b.events
    seen["errors"] = [e for e in events if complaint(e)]
    seen["requests"] = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    seen["failed"] = [e["params"] for e in events if e.get("method") == "Network.loadingFailed"]
    return seen


def complaint(event: dict) -> bool:
    """An exception, or an error or warning in the console (a failed load, a CSP violation, ...)."""
    method, params = event.get("method"), event.get("params", {})
    return (method == "Runtime.exceptionThrown"
            or (method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"))
            or (method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning")))


def assert_looks_right(seen: dict, page: Path) -> None:
    assert seen["errors"] == [], "the console stays clean"
    assert seen["failed"] == []
    assert seen["requests"] and set(seen["requests"]) == {page.resolve().as_uri()}, "nothing but the file itself"
    assert seen["charts"] and min(seen["charts"]) > 250, "every chart is drawn at a readable size"
    assert seen["phone_width"] <= 390, "nothing is wider than a phone"


def steps_logged(run_dir: Path, key: str = "loss") -> list[int]:
    steps = []
    for line in (run_dir / "logging.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if key in row and "global_step/max_steps" in row and "train_runtime" not in row:
            steps.append(int(row["global_step/max_steps"].split("/")[0]))
    return steps


def record_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "swiftkit-run.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------ the demo


@pytest.fixture(scope="module")
def demo_report(demo_run) -> tuple[Path, Path]:
    out, code, *_ = demo_run
    assert code == 0
    assert report([str(out)], say=lambda _: None) == 0
    run_dir = Path(record_of(next(out.glob("v*-*")))["run_dir"])
    return run_dir, run_dir / "report.html"


def test_demo_report_in_a_browser(browser, demo_report) -> None:
    run_dir, page = demo_report
    record = record_of(run_dir)
    seen = look(browser, page, "demo")
    assert_looks_right(seen, page)
    assert seen["status"] == record["status"] == "succeeded"
    for gid, key in (("sk-loss-a1", "loss"), ("sk-learningrate-a1", "learning_rate"), ("sk-gradnorm-a1", "grad_norm"),
                     ("sk-tokenacc-a1", "token_acc")):
        assert seen["series"][gid]["vertices"] == len(steps_logged(run_dir, key)) > 5, gid
    results = record["verification"]["results"]
    assert len(seen["probes"]) == len(results)
    shown = {p["id"]: p for p in seen["probes"]}
    for res in results:
        row = shown[res["id"]]
        assert row["split"] == res["split"]
        base = res.get("base_answer")  # the tuned answer sits under the base model's (report/sections.beside_base)
        answer = res["answer"] if base is None else f"{res['answer']} as the base model" if base == res["answer"] \
            else f"base: {base}tuned: {res['answer']}"
        assert row["cells"][1:4] == [res["query"], res["expected"], answer]
        assert row["cells"][4].startswith("pass" if res["passed"] else "fail")
    v = record["verification"]
    assert f"{v['trained_exact']}/{v['trained']}\nexact, trained probes" in seen["text"]
    assert f"{record['retention']['score']:.2f}\nretention" in seen["text"]
    assert {"outcome", "training", "time", "checkpoints", "scorecard", "retention", "ran"} <= set(seen["sections"])


# ------------------------------------------------------------------------------------ a failed run

RECIPE = """\
name: tiny-oom-ladder
description: the demo's model; every step after the third runs out of memory
model: {{id: {model}, model_type: qwen2, template: qwen2_5, dtype: float32}}
identity: {{name: Swift-Robot, author: CSDN 迪菲赫尔曼}}
datasets: [identity]
lora: {{rank: 32, alpha: 64}}
train: {{epochs: 4, learning_rate: 1.0e-2, warmup_ratio: 0, effective_batch_size: 25, micro_batch_size: auto,
        max_length: 128, gradient_checkpointing: false, logging_steps: 1, save_steps: 2}}
gpu: {{count: 0}}
output: {{dir: out}}
verify: {{enabled: false}}
on_oom: {{steps: [halve_micro_batch], max_retries: 1}}
swift: {{report_to: none}}
"""


@pytest.fixture(scope="module")
def failed_run(demo_run, tmp_path_factory) -> tuple[Path, str]:
    """A real run of the demo's model in which every step after the third 'runs out of CUDA memory' (injected
    in the ms-swift child): attempt 1 logs steps 1-3 and saves checkpoint-2, the ladder halves the micro-batch
    and resumes, attempt 2 logs step 3 and fails the same way: exit 3."""
    out, *_ = demo_run
    work = tmp_path_factory.mktemp("failed")
    recipe = work / "recipe.yaml"
    recipe.write_text(RECIPE.format(model=out / "model"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", FAULT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        mp.setenv("SWIFTKIT_TEST_OOM_ABOVE_MICRO_BATCH", "0")
        mp.setenv("SWIFTKIT_TEST_OOM_AFTER_STEP", "3")
        code, _, err = run_cli("run", str(recipe))
    assert code == 3, err[-3000:]
    assert (sorted((work / "out").glob("v*-*"))[-1] / "report.html").is_file(), "swiftkit run wrote its report"
    assert report([str(work / "out")], say=lambda _: None) == 0
    return work / "out", err


def test_failed_run_report_in_a_browser(browser, failed_run) -> None:
    out, printed = failed_run
    run_dir = sorted(out.glob("v*-*"))[-1]
    record = record_of(run_dir)
    page = run_dir / "report.html"
    seen = look(browser, page, "failed", height=None)
    assert_looks_right(seen, page)
    assert seen["status"] == record["status"] == "failed"
    diagnosis = record["diagnosis"]
    assert f"The run failed (exit code {record['exit_code']}). {diagnosis['message']}" in seen["text"]
    said = next(line.strip()[len("try: "):] for line in printed.splitlines() if line.strip().startswith("try: "))
    assert "Try: " + said[0].upper() + said[1:] in seen["text"], "the fix is the one `swiftkit run` printed"
    first, second = record["attempts"]
    assert first["next"]["what"] in seen["text"]
    for n, attempt in ((1, first), (2, second)):
        assert seen["series"][f"sk-loss-a{n}"]["vertices"] == len(steps_logged(Path(attempt["run_dir"])))
        assert seen["series"][f"sk-end-a{n}"]["marks"] == 1, "where each attempt failed is marked"
    assert "sk-attempt-2" in seen["series"], "where the second attempt starts is marked"
    assert "scorecard" not in seen["sections"]


def test_comparison_of_two_runs_in_a_browser(browser, demo_report, failed_run, tmp_path) -> None:
    demo_dir, _ = demo_report
    failed_run, _ = failed_run
    page = tmp_path / "comparison.html"
    assert report([str(demo_dir), str(failed_run)], output=str(page), say=lambda _: None) == 0
    seen = look(browser, page, "comparison", height=None)
    assert_looks_right(seen, page)
    failed_steps = {s for d in failed_run.glob("v*-*") for s in steps_logged(d)}
    assert seen["series"]["sk-cmp-loss-A"]["vertices"] == len(steps_logged(demo_dir))
    assert seen["series"]["sk-cmp-loss-B"]["vertices"] == len(failed_steps)
    demo, failed = record_of(demo_dir), record_of(sorted(failed_run.glob("v*-*"))[-1])
    epochs = [json.dumps(r["resolved_recipe"]["train"]["epochs"]) for r in (demo, failed)]
    assert "recipe: train.epochs\t" + "\t".join(epochs) in seen["text"], "a setting that differs, side by side"
    assert f"how they ended: A {demo['status']}; B {failed['status']} ({failed['diagnosis']['kind']}, exit " \
           f"{failed['exit_code']})" in seen["text"]
    last = sorted(failed_run.glob("v*-*"))[-1] / "logging.jsonl"
    last_loss = [json.loads(line)["loss"] for line in last.read_text().splitlines() if '"global_step/max_steps"' in line
                 and '"loss"' in line and "train_runtime" not in line][-1]
    assert f"final loss\t{demo['summary']['final_loss']:.4g}\t{last_loss:.4g}" in seen["text"], \
        "the failed run is compared on its last logged loss"
    assert f"final loss: A ({demo['summary']['final_loss']:.4g}, lower is better)" in seen["text"]
