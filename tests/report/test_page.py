"""The run report, section by section, from recorded runs: the CPU tiny run's logging.jsonl and the H100
logs (tests/fixtures/logs, copies of ../shared/logs), and the run records of the GPU benchmarks
(bench/results). What is checked is what a person reads on the page: the text of the sections and the
points of the curves, counted in the SVG."""
from __future__ import annotations

import copy
import html
import json
import re
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import ROOT

from swiftkit.commands.report import after_run, find_record, report
from swiftkit.errors import UserError
from swiftkit.logparse import Eval, Progress, TrainSummary, diagnose, parse_line
from swiftkit.report.compare import render_comparison
from swiftkit.report.html import seconds
from swiftkit.report.page import RunInput, render_report
from swiftkit.report.sections import nodes, phases

LOGS = ROOT / "tests" / "fixtures" / "logs"
BENCH = ROOT / "bench" / "results"


# ------------------------------------------------------------------------------------ builders


def log_lines(name: str) -> list[str]:
    return [line for line in (LOGS / name).read_text(encoding="utf-8").splitlines() if not line.startswith("rc=")]


def jsonl_from_stdout(name: str) -> str:
    """The logging.jsonl ms-swift would have written beside a stdout log: one line per metrics dict it printed."""
    rows = [ev.raw for line in log_lines(name) for ev in parse_line(line)
            if isinstance(ev, (Progress, Eval, TrainSummary))]
    return "".join(json.dumps(row) + "\n" for row in rows)


def bench_record(path: str) -> dict:
    return json.loads((BENCH / path).read_text(encoding="utf-8"))


def cpu_record() -> dict:
    """The CPU tiny run (cpu-tiny-sft.log): 80 steps, exit 0, no GPU."""
    return {"schema": 1, "recipe": "/data/tiny.yaml", "status": "succeeded", "exit_code": 0, "returncode": 0,
            "run_dir": "/data/out2/v0-20261122-124531", "resolved_recipe": {"name": "tiny", "gpu": {"count": 0}},
            "host": {"hostname": "vm", "cpus": 2, "gpus": []},
            "attempts": [{"attempt": 1, "micro_batch": 1, "gradient_accumulation": 1, "returncode": 0,
                          "wall_seconds": 21.3, "last_step": 80}],
            "summary": {"global_step": 80, "final_loss": 5.73545723, "train_runtime": 4.5693}}


def logged(text: str, key: str) -> int:
    """How many lines of a logging.jsonl carry `key` at a step (the trainer's closing line is not a step)."""
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return sum(1 for row in rows if key in row and "train_runtime" not in row and "global_step/max_steps" in row)


def vertices(page: str, gid: str) -> int:
    """Points of the series drawn in <g id=gid>: the vertices of its line path."""
    m = re.search(rf'<g id="{re.escape(gid)}">\s*<path d="([^"]*)"', page)
    assert m, f"no series {gid} in the page"
    return len(re.findall(r"[ML] ", m.group(1)))


def text_of(page: str) -> str:
    """The page as a person reads it: tags out, entities decoded, spaces collapsed."""
    body = re.sub(r"<svg.*?</svg>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def section_of(page: str, ident: str) -> str:
    m = re.search(rf'<section id="{ident}">(.*?)</section>', page, flags=re.S)
    assert m, f"no section {ident}"
    return m.group(1)


@pytest.fixture(scope="module")
def cpu_page() -> tuple[str, str]:
    text = (LOGS / "cpu-tiny-logging.jsonl").read_text(encoding="utf-8")
    return render_report(RunInput(cpu_record(), {1: text})), text


@pytest.fixture(scope="module")
def after_training() -> tuple[str, dict]:
    record = bench_record("gpu-after-training/record.json")
    return render_report(RunInput(record, {})), record


# ------------------------------------------------------------------------------------ training curves


def test_cpu_run_has_one_point_per_logged_step(cpu_page) -> None:
    page, text = cpu_page
    for gid, key in (("sk-loss-a1", "loss"), ("sk-learningrate-a1", "learning_rate"),
                     ("sk-gradnorm-a1", "grad_norm"), ("sk-tokenacc-a1", "token_acc")):
        assert vertices(page, gid) == logged(text, key) == 9
    assert "(log scale)" not in page, "5.7 to 7.0 is no reason for a log axis"
    memory = text_of(section_of(page, "memory"))
    assert "No GPU memory was logged: this run trained on the CPU." in memory


def test_a_loss_that_falls_by_decades_is_drawn_on_a_log_axis() -> None:
    text = jsonl_from_stdout("gpu-h100-seed-recipe.log")  # 12.65 -> 0.0028
    page = render_report(RunInput(bench_record("gpu-presets/preset-1x16.record.json"), {1: text}))
    assert "Loss (log scale)" in page
    assert vertices(page, "sk-loss-a1") == logged(text, "loss") == 9


def test_gpu_memory_per_step_against_the_card_the_cap_and_the_recipe() -> None:
    text = jsonl_from_stdout("gpu-h100-seed-recipe.log")
    record = bench_record("gpu-presets/preset-1x16.record.json")  # H100 80GB, capped at 23 GiB, for a 24 GB card
    page = render_report(RunInput(record, {1: text}))
    memory = section_of(page, "memory")
    assert vertices(memory, "sk-memorygib-a1") == logged(text, "memory(GiB)") == 9
    for gid in ("sk-card", "sk-cap", "sk-budget"):
        assert f'<g id="{gid}">' in memory
    caption = text_of(memory)
    peak = max(json.loads(line)["memory(GiB)"] for line in text.splitlines() if "memory(GiB)" in line)
    assert f"peak {float(peak):.2f} GiB" in caption
    assert f"NVIDIA H100 80GB HBM3: {81559 / 1024:.1f} GiB" in caption and "allocator cap 23 GiB" in caption


def test_oom_ladder_attempts_are_drawn_apart_and_listed() -> None:
    record = bench_record("gpu-oom-ladder/swiftkit-run.json")  # attempt 1: CUDA OOM; attempt 2 at 8 x 2
    text = (BENCH / "gpu-oom-ladder/attempt2.logging.jsonl").read_text(encoding="utf-8")
    page = render_report(RunInput(record, {2: text}))
    assert vertices(page, "sk-loss-a2") == logged(text, "loss")
    assert '<g id="sk-attempt-2">' in section_of(page, "training"), "where the second attempt starts is marked"
    training = text_of(section_of(page, "training"))
    first, second = record["attempts"]
    assert f"cuda_oom (exit {first['returncode']}) next: {first['next']['what']}" in training
    assert "16 x 1" in training and "8 x 2" in training
    assert "2 attempts" in text_of(section_of(page, "outcome"))


# ------------------------------------------------------------------------------------ how it ended


def failed_oom() -> tuple[RunInput, dict]:
    """The H100 run that hit a real CUDA OOM after one logged step, with an on_oom that allows no retry."""
    lines = log_lines("gpu-h100-oom.log")
    diagnosis = asdict(diagnose(lines, 1))
    record = copy.deepcopy(bench_record("gpu-oom-ladder/swiftkit-run.json"))
    record["attempts"] = [{**record["attempts"][0], "diagnosis": diagnosis, "last_step": 1}]
    record["attempts"][0].pop("next")
    record.update(status="failed", exit_code=3, returncode=1, diagnosis=diagnosis, checkpoint=None,
                  command=record["attempts"][0]["command"],
                  best_checkpoint=None, summary={"peak_memory_gib": None}, verification=None)
    return RunInput(record, {1: jsonl_from_stdout("gpu-h100-oom.log")}), diagnosis


def test_a_failed_run_says_how_it_ended_the_evidence_and_the_fix() -> None:
    run, diagnosis = failed_oom()
    page = render_report(run)
    assert '<span class="badge bad">failed</span>' in page
    outcome = text_of(section_of(page, "outcome"))
    assert f"The run failed (exit code 3). {diagnosis['message']}" in outcome
    assert diagnosis["evidence"][:120] in outcome
    assert "Try: A card with more memory, or more rungs in the recipe's on_oom.steps" in outcome, \
        "the ladder already halved the micro-batch: the fix is another card or more rungs"
    assert f"Full log: {run.record['log_path']}" in outcome
    assert "on_oom allowed no retry" in outcome
    assert vertices(page, "sk-loss-a1") == 1
    first = json.loads(run.logs[1].splitlines()[0])
    assert f"1 steps of {first['global_step/max_steps'].split('/')[1]}" in outcome
    assert f"{float(first['loss']):.4g} last logged loss" in outcome
    assert "scorecard" not in re.findall(r'<section id="(\w+)"', page), "no verification ran: no empty section"


def test_an_interrupted_run_says_to_run_it_again() -> None:
    lines = log_lines("cpu-tiny-sft.log")[:-40]
    diagnosis = asdict(diagnose(lines, -2, interrupted_by=2))
    record = {**cpu_record(), "status": "interrupted", "exit_code": 130, "diagnosis": diagnosis, "summary": {}}
    outcome = text_of(section_of(render_report(RunInput(record, {})), "outcome"))
    assert "The run was interrupted (exit code 130). The run was stopped by SIGINT (Ctrl-C)." in outcome
    assert "Try: Run the same command again to resume from the last complete checkpoint." in outcome


def test_a_run_that_died_before_its_first_step() -> None:
    lines = log_lines("probe-bad-flag.log")
    diagnosis = asdict(diagnose(lines, 1))
    record = {**cpu_record(), "status": "failed", "exit_code": 5, "diagnosis": diagnosis, "summary": {},
              "attempts": [{"attempt": 1, "returncode": 1, "diagnosis": diagnosis, "wall_seconds": 3.1}]}
    page = render_report(RunInput(record, {}))
    assert "ms-swift rejected these arguments: --train_type." in text_of(section_of(page, "outcome"))
    assert "No training step was logged" in text_of(section_of(page, "training"))
    assert "<svg" not in section_of(page, "training")


# ------------------------------------------------------------------------------------ scorecard, retention, exports


def probe_rows(page: str) -> dict[str, dict]:
    rows = {}
    for m in re.finditer(r'<tr data-probe="([^"]*)" data-split="([^"]*)" data-passed="(\w+)">(.*?)</tr>', page, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", m.group(4), re.S)
        rows[html.unescape(m.group(1))] = {"split": m.group(2), "passed": m.group(3) == "true", "cells": cells,
                                           "text": [text_of(c) for c in cells]}
    return rows


def test_scorecard_shows_every_probe_with_its_answer_beside_the_expected_one(after_training) -> None:
    page, record = after_training
    results = record["verification"]["results"]
    rows = probe_rows(section_of(page, "scorecard"))
    assert len(rows) == len(results) == 92
    for res in results:
        row = rows[res["id"]]
        assert (row["split"], row["passed"]) == (res["split"], res["passed"])
        _, query, expected, answer, verdict = row["text"]
        assert (query, expected, answer) == tuple(" ".join(res[k].split()) for k in ("query", "expected", "answer"))
        assert verdict.startswith("pass" if res["passed"] else "fail")
        assert ("negative" in row["text"][0]) == res["id"].startswith("base_model-")
    v = record["verification"]
    scorecard = text_of(section_of(page, "scorecard"))
    assert f"exact answers, trained probes {v['trained_exact']}/{v['trained']}" in scorecard
    passed = sum(r["passed"] for r in results if r["split"] == "train")
    assert f"Trained probes: {passed}/{v['trained']} pass" in scorecard


def test_system_prompts_bleed_and_leaks_are_on_the_page_with_the_failures(after_training) -> None:
    _, record = after_training
    record = copy.deepcopy(record)
    v = record["verification"]
    v["system_prompts"] = [
        {"name": "recipe", "shown": "train.system: 'You are a helpful assistant.'", "eligible": 60, "held": 60},
        {"name": "default", "shown": "no system prompt (qwen2_5's default: 'You are Qwen, <b>created</b>')",
         "eligible": 60, "held": 12}]
    v["bleed"] = {"asked": 120, "hits": 30, "worst": [{"query": "12乘以7等于多少？", "answer": "我是Swift-Robot。84"}]}
    v["leaks"] = {"asked": 212, "hits": 0, "worst": []}
    v["failures"] = ["the identity holds in 20% of identity probes under no system prompt (qwen2_5's default)"]
    page = render_report(RunInput(record, {}))
    scorecard = text_of(section_of(page, "scorecard"))
    assert "identity holds, recipe system prompt 60/60 (100%)" in scorecard
    assert "identity holds, default system prompt 12/60 (20%) no system prompt (qwen2_5's default" in scorecard
    assert "<b>created</b>" not in page  # the template's text is escaped
    assert "identity in general answers (bleed) 30/120 (25%) 12乘以7等于多少？ → 我是Swift-Robot。84" in scorecard
    assert "unrendered template markers 0/212 (0%)" in scorecard
    assert "the identity holds in 20% of identity probes under no system prompt" in text_of(section_of(page, "outcome"))


def test_retention_by_category_and_what_changed_most(after_training) -> None:
    page, record = after_training
    ret = record["retention"]
    section = section_of(page, "retention")
    text = text_of(section)
    assert f"retention score (mean chrF against the base model's answers) {ret['score']:.2f}" in text
    assert len(re.findall(r"<tr>", section.split("Changed most")[1])) == len(ret["changed"]) + 1  # + header
    for name, cat in ret["by_category"].items():
        assert f"{name} ({cat['probes']})" in section  # a bar's label in the chart


def test_an_export_that_disagrees_is_shown_unverified(after_training) -> None:
    page, record = after_training
    export = record["exports"][0]
    outcome = text_of(section_of(page, "outcome"))
    assert "Trained, but not verified" in outcome
    assert f"agreement {export['agreement']:.1%}, needed {export['min_agreement']:.0%}" in outcome
    exports = text_of(section_of(page, "exports"))
    shown = f"{export['agreement']:.1%} of {export['probes']} (needed {export['min_agreement']:.0%}) unverified"
    assert shown in exports
    assert "Verified later (swiftkit verify)" in exports and record["verifications"][0]["target"] in exports


def test_phase_timings_add_up_to_what_the_record_says(after_training) -> None:
    page, record = after_training
    attempt, runtime = record["attempts"][0], record["summary"]["train_runtime"]
    found = {label: value for label, value, _ in phases(record)}
    both = found["attempt 1: start-up and saving"] + found["attempt 1: training steps"]
    assert both == pytest.approx(attempt["wall_seconds"])
    assert found["verification (swift infer)"] == record["verification"]["seconds"]
    assert found["export: merge"] == record["exports"][0]["seconds"]["merge"]
    time = text_of(section_of(page, "time"))
    assert f"attempt 1: training steps {runtime:.1f} s" in time


def test_what_ran_and_where(after_training) -> None:
    page, record = after_training
    ran = text_of(section_of(page, "ran"))
    assert "--per_device_train_batch_size 16" in ran and "SWIFTKIT_EMULATE_MEMORY_GB=23" in ran
    assert f"recipe hash (sha256 of what it asks for) {record['recipe_hash']}" in ran
    assert "effective_batch_size: 16" in ran
    env = text_of(section_of(page, "environment"))
    assert f"ms-swift {record['versions']['ms-swift']}" in env and "NVIDIA H200" in env


# ------------------------------------------------------------------------------------ the page itself


def test_the_page_is_self_contained_and_answers_are_text_not_markup() -> None:
    record = cpu_record()
    record["resolved_recipe"]["name"] = "<b>bold</b>"
    record["verification"] = {"trained": 1, "trained_exact": 0, "answered": 1, "base_claims": 0, "results": [
        {"id": "name-en-1", "split": "train", "lang": "en", "query": "Who are you?", "expected": "I am Robot.",
         "answer": "<script>alert(1)</script><img src=x onerror=alert(2)>", "exact": False, "passed": False}]}
    page = render_report(RunInput(record, {1: (LOGS / "cpu-tiny-logging.jsonl").read_text()}))
    assert "<script" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    refs = re.findall(r'\b(?:src|href)="([^"]*)"', page)
    assert refs and all(ref.startswith("#") for ref in refs), "only links within the page"
    assert not re.search(r"url\((?!#)", page) and "@import" not in page
    assert len(re.findall(r'id="([^"]+)"', page)) == len(set(re.findall(r'id="([^"]+)"', page))), "ids are unique"


def test_each_identity_answer_sits_under_the_base_models_with_what_changed_marked() -> None:
    record = cpu_record()
    base = "I am Qwen, created by <Alibaba> Cloud."
    record["verification"] = {"trained": 2, "trained_exact": 1, "answered": 2, "base_claims": 0, "results": [
        {"id": "name-en-1", "split": "train", "lang": "en", "query": "Who are you?", "expected": "I am Robot.",
         "answer": "I am Robot, created by <Blue> Lab.", "exact": False, "passed": False, "base_answer": base},
        {"id": "name-en-2", "split": "train", "lang": "en", "query": "Name?", "expected": "Robot.",
         "answer": "Robot.", "exact": True, "passed": True, "base_answer": "Robot."},
        {"id": "name-en-3", "split": "train", "lang": "en", "query": "Hi?", "expected": "Hi.",
         "answer": "Hi.", "exact": True, "passed": True}]}
    page = render_report(RunInput(record, {1: (LOGS / "cpu-tiny-logging.jsonl").read_text()}))
    rows = probe_rows(section_of(page, "scorecard"))
    changed = rows["name-en-1"]["cells"][3]
    assert "base:</small> I am Qwen, created by &lt;Alibaba&gt; Cloud." in changed
    assert "<mark>Robot</mark>" in changed and "<mark>Blue</mark>" in changed and "I am " in changed
    assert "<Blue>" not in page and "<Alibaba>" not in page
    assert "as the base model" in rows["name-en-2"]["cells"][3] and "<mark>" not in rows["name-en-2"]["cells"][3]
    assert "base:" not in rows["name-en-3"]["cells"][3]  # not asked of the base model: the answer alone


# ------------------------------------------------------------------------------------ comparison


def test_comparison_names_the_better_run_and_the_settings_that_differ() -> None:
    fast = bench_record("gpu-presets/preset-16x1.record.json")
    slow = bench_record("gpu-presets/preset-1x16.record.json")
    logs = [jsonl_from_stdout("gpu-h100-microbatch16.log"), jsonl_from_stdout("gpu-h100-seed-recipe.log")]
    page = render_comparison([RunInput(fast, {1: logs[0]}), RunInput(slow, {1: logs[1]})])
    assert vertices(page, "sk-cmp-loss-A") == logged(logs[0], "loss")
    assert vertices(page, "sk-cmp-loss-B") == logged(logs[1], "loss")
    assert vertices(page, "sk-cmp-memorygib-B") == logged(logs[1], "memory(GiB)")
    settings = text_of(section_of(page, "settings"))
    assert "recipe: train.micro_batch_size 16 1" in settings
    assert "ran with micro-batch x accumulation 16 x 1 1 x 16" in settings
    assert "recipe: train.epochs" not in settings, "only what differs"
    verdict = text_of(section_of(page, "verdict"))
    assert "train runtime: A (24.5 s, lower is better)" in verdict
    assert "peak GPU memory: B (14.72 GiB, lower is better)" in verdict
    results = section_of(page, "results")
    row = re.search(r'<tr data-metric="train runtime">(.*?)</tr>', results, re.S).group(1)
    slow_time = seconds(slow["summary"]["train_runtime"])
    assert row.index('class="best"') < row.index(slow_time), "the faster run is the one marked"


# ------------------------------------------------------------------------------------ the verb


def write_run(run_dir: Path, record: dict, logging: str | None = None) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "swiftkit-run.json").write_text(json.dumps(record), encoding="utf-8")
    if logging is not None:
        (run_dir / "logging.jsonl").write_text(logging, encoding="utf-8")
    return run_dir


@pytest.fixture
def ladder(tmp_path) -> Path:
    """An output dir as the OOM ladder leaves it: v0 (attempt 1, 'retrying') and v1 (the finished run)."""
    out = tmp_path / "out"
    record = bench_record("gpu-oom-ladder/swiftkit-run.json")
    text = (BENCH / "gpu-oom-ladder/attempt2.logging.jsonl").read_text(encoding="utf-8")
    write_run(out / "v0-20261122-141201", {**record, "status": "retrying", "attempts": record["attempts"][:1]})
    write_run(out / "v1-20261122-141241", record, text)
    (out / "v1-20261122-141241" / "checkpoint-10").mkdir()
    return out


def test_report_of_an_output_dir_is_its_newest_run_even_when_moved(ladder, capsys) -> None:
    assert report([str(ladder)]) == 0
    path = ladder / "v1-20261122-141241" / "report.html"
    assert capsys.readouterr().out.strip() == str(path)
    page = path.read_text(encoding="utf-8")
    # the record names /tmp/gpu-out/...: the logs and checkpoints are found beside the record instead
    assert vertices(page, "sk-loss-a2") == 10
    checkpoints = text_of(section_of(page, "checkpoints"))
    assert "checkpoint-10 last best 2 10" in checkpoints and "incomplete" in checkpoints


def test_report_of_a_recipe_a_run_dir_and_a_checkpoint(ladder, tmp_path, capsys) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: {id: m}\ndatasets: [d.jsonl]\noutput: {dir: out}\n", encoding="utf-8")
    newest = ladder / "v1-20261122-141241" / "swiftkit-run.json"
    assert find_record(str(recipe)) == newest
    assert find_record(str(ladder / "v1-20261122-141241" / "checkpoint-10")) == newest
    assert report([str(ladder / "v0-20261122-141201")]) == 0
    assert (ladder / "v0-20261122-141201" / "report.html").is_file()
    with pytest.raises(UserError, match="no swiftkit run record under"):
        find_record(str(tmp_path))
    with pytest.raises(UserError, match="no such recipe, output dir or run dir"):
        find_record(str(tmp_path / "nope"))


def test_a_run_that_never_named_its_run_dir(tmp_path, capsys) -> None:
    lines = log_lines("probe-model-path-missing.log")
    diagnosis = asdict(diagnose(lines, 1))
    record = {**cpu_record(), "run_dir": None, "status": "failed", "exit_code": 7, "diagnosis": diagnosis,
              "attempts": [{"attempt": 1, "returncode": 1, "diagnosis": diagnosis}]}
    write_run(tmp_path / "out" / ".swiftkit", record)
    assert report([str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / ".swiftkit" / "report.html").read_text(encoding="utf-8")
    assert "The model was not found: /data/nomodel." in text_of(page)


def test_several_targets_make_a_comparison_page(ladder, tmp_path, capsys) -> None:
    other = write_run(tmp_path / "b" / "v0-20261122-141437", bench_record("gpu-presets/preset-16x1.record.json"))
    target = tmp_path / "cmp.html"
    assert report([str(ladder), str(other)], output=str(target)) == 0
    assert capsys.readouterr().out.strip() == str(target)
    assert "Comparison of 2 runs" in target.read_text(encoding="utf-8")


def test_after_run_never_raises(tmp_path) -> None:
    bad = tmp_path / "swiftkit-run.json"
    bad.write_text("{not json", encoding="utf-8")
    said: list[str] = []
    assert after_run(bad, said.append) is None
    assert said and said[0].startswith("swiftkit: the run report could not be written: ")
    assert after_run(None, said.append) is None and len(said) == 1


def test_gpu_memory_is_drawn_against_the_card_the_cap_and_the_plan():
    from swiftkit.report.page import memory_limits

    record = {"resolved_recipe": {"gpu": {"emulate_memory_gb": 23, "memory_gb": 24}},
              "host": {"gpus": [{"name": "NVIDIA H200", "memory_mib": "143771"}]},
              "memory_plan": {"peak_memory_gib": 16.55}}
    rules = {rule.gid: rule for rule in memory_limits(record)}
    assert rules["sk-plan"].at == 16.55 and rules["sk-plan"].label == "planned peak 16.6 GiB"
    assert rules["sk-cap"].at == 23 and rules["sk-budget"].at == 24
    assert "sk-plan" not in {rule.gid for rule in memory_limits({"resolved_recipe": {}})}


def test_phases_and_ranks_of_a_run_over_two_nodes() -> None:
    """A record with phase timings and per-node records (as commands/run.py writes them) is drawn by phase and
    by rank; the OOM on node 1 is that node's verdict."""
    oom = {"kind": "cuda_oom", "message": "node 1 (b): The GPU ran out of memory."}
    record = {"timings": {"before_training": 1.5, "training": 30.0, "total": 40.0},
              "launch": {"nnodes": 2, "master_addr": "a", "master_port": 29500, "source": "options"},
              "attempts": [{"attempt": 1, "wall_seconds": 10.0, "returncode": 1, "diagnosis": oom,
                            "phases": {"start": 6.0, "training": 3.0, "save_exit": 1.0},
                            "nodes": [{"node_rank": 0, "host": "a", "returncode": 1,
                                       "diagnosis": {"kind": "distributed"},
                                       "ranks": [{"rank": 0, "node_rank": 0, "host": "a", "peak_memory_gib": 16.5}]},
                                      {"node_rank": 1, "host": "b", "returncode": 1, "diagnosis": oom,
                                       "ranks": [{"rank": 1, "node_rank": 1, "host": "b", "peak_memory_gib": 23.0}]}]}],
              "verification": {"seconds": 8.0, "phases": {"tuned": {"start": 5.0, "generation": 3.0}, "base": None}}}
    found = {label: value for label, value, _ in phases(record)}
    assert found["before training (checks, plan, data)"] == 1.5
    assert found["attempt 1: start-up (imports)"] == 6.0 and found["attempt 1: training steps"] == 3.0
    assert found["verification, tuned model: generation"] == 3.0
    text = text_of(nodes(record))
    assert "2 nodes, master a:29500 (options)" in text
    assert "1 0 0 a 16.50 GiB distributed" in text and "1 1 1 b 23.00 GiB cuda_oom" in text


def test_the_replay_section_says_what_trained_what_was_dropped_and_what_it_cost():
    from swiftkit.report.replay import replay
    from swiftkit.report.sections import phases

    made = {"index": 1, "prompts": "general", "pool": 650, "asked": 500, "kept": 438, "seed": 42, "share": 0.855,
            "dropped": {"empty": 0, "cut_off": 62, "identity": 0}, "generated": 500, "seconds": 182.9,
            "answer_tokens": 40695, "max_new_tokens": 384}
    html = replay({"replay": [made]})
    assert "datasets[1]: general <small>(650 prompts, seed 42)</small>" in html
    assert ">438<" in html and "86%" in html and "62 cut off at max_new_tokens" in html and "40695" in html
    assert "3m 03s for 500 answers" in html
    assert "cached" in replay({"replay": [{**made, "generated": 0}]})
    failed = replay({"replay": {"error": {"returncode": 130, "log": "/x/answers.log",
                                          "diagnosis": {"message": "stopped by SIGINT (Ctrl-C)"}}, "entry": 1}})
    assert "stopped by SIGINT (Ctrl-C)" in failed and "the next run asks only for the rest" in failed
    assert replay({}) == ""
    split = phases({"timings": {"before_training": 280.0, "replay": 183.0}})
    assert [(label, round(v)) for label, v, _ in split] == [("before training (checks, plan, data)", 97),
                                                            ("replay: the base model's answers", 183)]
