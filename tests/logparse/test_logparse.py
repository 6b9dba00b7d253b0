"""logparse against real ms-swift output (tests/fixtures/logs, see its README)."""
from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swiftkit import logparse as lp

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


def raw_lines(name: str) -> list[str]:
    """The log as the child wrote it: carriage returns kept, split on newlines only."""
    with open(LOGS / name, encoding="utf-8", newline="") as f:
        return f.read().split("\n")


def run_output(name: str) -> tuple[list[str], int | None]:
    """The output lines and the exit status; the recorder appended the status as `rc=N`."""
    lines = raw_lines(name)
    rc = next((int(line[3:]) for line in reversed(lines) if line.startswith("rc=")), None)
    return [line for line in lines if not line.startswith("rc=")], rc


def events(name: str, cls: type) -> list:
    return [e for e in lp.parse_lines(raw_lines(name)) if isinstance(e, cls)]


# ---------------------------------------------------------------------------- stdout events


def test_cpu_log_progress_steps_and_losses() -> None:
    progress = events("cpu-tiny-sft.log", lp.Progress)
    # logging_steps 10 plus logging_first_step: step 1, then every 10th step up to 80.
    assert [p.step for p in progress] == [1, 10, 20, 30, 40, 50, 60, 70, 80]
    assert [p.loss for p in progress] == [6.97, 6.609, 6.155, 5.95, 5.853, 5.795, 5.761, 5.744, 5.735]
    assert {p.max_steps for p in progress} == {80}
    first = progress[0]
    assert first.grad_norm == 0.739
    assert first.learning_rate == 0.009996
    assert first.token_acc == 0.0
    assert first.epoch == 1.0
    assert first.speed_s_per_it == 0.7181
    assert (first.elapsed, first.remaining) == (1.0, 57.0)
    assert first.memory_gib is None  # CPU: no memory key
    assert first.raw["loss"] == "6.97"  # transformers 5 prints strings


def test_cpu_log_paths_and_summary() -> None:
    evs = lp.parse_lines(raw_lines("cpu-tiny-sft.log"))
    run = "/data/out2/v0-20261122-124531"
    assert [e for e in evs if isinstance(e, lp.OutputDir)] == [lp.OutputDir(run)]
    assert [e for e in evs if isinstance(e, lp.CheckpointSaved)] == [lp.CheckpointSaved(f"{run}/checkpoint-80")]
    assert [e for e in evs if isinstance(e, lp.LastCheckpoint)] == [lp.LastCheckpoint(f"{run}/checkpoint-80")]
    assert [e for e in evs if isinstance(e, lp.BestCheckpoint)] == [lp.BestCheckpoint(None)]
    (summary,) = [e for e in evs if isinstance(e, lp.TrainSummary)]
    assert summary.train_runtime == 4.569
    assert summary.train_loss == 5.955
    assert summary.train_samples_per_second == 87.54
    assert (summary.step, summary.max_steps) == (80, 80)


def test_universal_newlines_give_the_same_events() -> None:
    """A reader in text mode turns tqdm's carriage returns into newlines: same events."""
    text = (LOGS / "cpu-tiny-sft.log").read_text(encoding="utf-8")
    assert lp.parse_lines(text.splitlines()) == lp.parse_lines(raw_lines("cpu-tiny-sft.log"))


def test_checkpoint_message_after_tqdm_on_the_same_line() -> None:
    line = ("Train: 100%|██████████| 80/80 [00:04<00:00, 25.10it/s][INFO:swift] Saving model checkpoint "
            "to /data/out2/v0-20261122-124531/checkpoint-80")
    assert lp.parse_line(line) == [lp.CheckpointSaved("/data/out2/v0-20261122-124531/checkpoint-80")]


@pytest.mark.parametrize("name, peak, last_elapsed", [
    ("gpu-h100-seed-recipe.log", 14.7, 173.0),
    ("gpu-h100-microbatch16.log", 16.17, 24.0),
])
def test_h100_logs_memory(name: str, peak: float, last_elapsed: float) -> None:
    progress = events(name, lp.Progress)
    assert [p.step for p in progress] == [1, 5, 10, 15, 20, 25, 30, 35, 40]
    assert all(p.memory_gib is not None for p in progress)
    assert max(p.memory_gib for p in progress) == peak
    assert progress[-1].elapsed == last_elapsed
    (summary,) = events(name, lp.TrainSummary)
    assert summary.memory_gib == peak


def test_minutes_in_elapsed_time() -> None:
    first = events("gpu-h100-microbatch16.log", lp.Progress)[0]
    assert first.raw["remaining_time"] == "3m 14s"
    assert first.remaining == 194.0


def test_oom_log_progress_before_the_crash() -> None:
    (progress,) = events("gpu-h100-oom.log", lp.Progress)
    assert (progress.step, progress.max_steps, progress.memory_gib) == (1, 40, 23.0)
    assert events("gpu-h100-oom.log", lp.LastCheckpoint) == [lp.LastCheckpoint(None)]


def test_ddp_log_events() -> None:
    assert [p.step for p in events("cpu-tiny-ddp2-teardown-abort.log", lp.Progress)] == [1, 2, 4]
    assert events("cpu-tiny-ddp2-teardown-abort.log", lp.LastCheckpoint) == [
        lp.LastCheckpoint("/data/out3/v0-20261122-130350/checkpoint-4")]


def test_ms_swift_3_numeric_dict() -> None:
    """3.x printed numbers, iter/s and a percentage (line from a public ms-swift 3.x log)."""
    line = ("{'loss': 1.4749825, 'grad_norm': 1.59615517, 'learning_rate': 2e-05, 'token_acc': 0.66827957, "
            "'epoch': 0.01, 'global_step/max_steps': '1/94', 'percentage': '1.06%', 'elapsed_time': '7s', "
            "'remaining_time': '12m 6s', 'memory(GiB)': 16.75, 'train_speed(iter/s)': 0.128088}")
    (p,) = lp.parse_line(line)
    assert isinstance(p, lp.Progress)
    assert (p.step, p.max_steps, p.loss, p.memory_gib) == (1, 94, 1.4749825, 16.75)
    assert p.speed_s_per_it == pytest.approx(1 / 0.128088)
    assert (p.elapsed, p.remaining) == (7.0, 726.0)
    assert p.raw["percentage"] == "1.06%"


def test_ms_swift_2_dict_with_global_step_only() -> None:
    line = ("{'loss': 1.8210969, 'acc': 0.6236614, 'grad_norm': 2.75, 'learning_rate': 2e-05, "
            "'memory(GiB)': 16.79, 'train_speed(iter/s)': 0.155172, 'epoch': 0.01, 'global_step': 1}")
    (p,) = lp.parse_line(line)
    assert (p.step, p.max_steps, p.token_acc) == (1, None, 0.6236614)


def test_rank_prefix_is_ignored() -> None:
    line = "[rank0]: [INFO:swift] output_dir: /data/out/v3-20261122-130350"
    assert lp.parse_line(line) == [lp.OutputDir("/data/out/v3-20261122-130350")]


def test_eval_dict() -> None:
    line = ("{'eval_loss': '1.25', 'eval_token_acc': '0.5', 'eval_runtime': '0.5', 'epoch': '1', "
            "'global_step/max_steps': '10/20', 'elapsed_time': '3s', 'remaining_time': '3s'}")
    (e,) = lp.parse_line(line)
    assert isinstance(e, lp.Eval)
    assert (e.step, e.loss, e.metrics["token_acc"]) == (10, 1.25, 0.5)


@pytest.mark.parametrize("line", [
    "accelerator_config={'dispatch_batches': False},",
    "[INFO:swift] model_kwargs: {'device_map': 'cpu', 'dtype': torch.float32}",
    "{'num_prompt_tokens': 130, 'num_generated_tokens': 76, 'num_samples': 5, 'runtime': 0.34}",
    "  \"rope_parameters\": {",
    "{'loss': '6.9",  # cut mid-write
    "",
])
def test_lines_without_events(line: str) -> None:
    assert lp.parse_line(line) == []


def test_warnings_become_log_lines() -> None:
    evs = events("cpu-tiny-sft.log", lp.LogLine)
    hub = [e for e in evs if e.logger == "modelscope_hub.legacy_api"]
    assert len(hub) == 3 and hub[0].level == "WARNING" and "NetworkError" in hub[0].message
    assert any(e.logger == "swift" and "trust_remote_code=True" in e.message for e in evs)


@pytest.mark.parametrize("text, seconds", [
    ("0s", 0.0), ("57s", 57.0), ("2m 54s", 174.0), ("9h 30m 16s", 34216.0), ("1d 0h 0m 5s", 86405.0),
    (3.5, 3.5), ("soon", None), ("", None), (None, None),
])
def test_parse_duration(text: object, seconds: float | None) -> None:
    assert lp.parse_duration(text) == seconds


@given(st.text())
def test_parse_line_never_raises(line: str) -> None:
    assert isinstance(lp.parse_line(line), list)


@given(st.text())
def test_parse_logging_jsonl_line_never_raises(line: str) -> None:
    assert isinstance(lp.parse_logging_jsonl_line(line), list)


# ---------------------------------------------------------------------------- logging.jsonl


def test_logging_jsonl() -> None:
    lines = (LOGS / "cpu-tiny-logging.jsonl").read_text(encoding="utf-8").splitlines()
    evs = [e for line in lines for e in lp.parse_logging_jsonl_line(line)]
    progress = [e for e in evs if isinstance(e, lp.Progress)]
    assert [p.step for p in progress] == [1, 10, 20, 30, 40, 50, 60, 70, 80]
    assert progress[0].loss == 6.96981907  # real numbers here, not strings
    (summary,) = [e for e in evs if isinstance(e, lp.TrainSummary)]
    assert summary.train_loss == 5.95465971
    assert [e for e in evs if isinstance(e, lp.LastCheckpoint)] == [
        lp.LastCheckpoint("/data/out2/v0-20261122-124531/checkpoint-80")]
    assert [e for e in evs if isinstance(e, lp.BestCheckpoint)] == [lp.BestCheckpoint(None)]
    (run,) = [e for e in evs if isinstance(e, lp.RunSummary)]
    assert run.global_step == 80 and len(run.log_history) == 10


def test_logging_jsonl_line_cut_short() -> None:
    assert lp.parse_logging_jsonl_line('{"loss": 6.96981907, "grad_no') == []


# ---------------------------------------------------------------------------- diagnose


def test_success_has_no_diagnosis() -> None:
    lines, rc = run_output("cpu-tiny-sft.log")
    assert rc == 0 and lp.diagnose(lines, rc) is None


def test_cuda_oom() -> None:
    lines, rc = run_output("gpu-h100-oom.log")
    d = lp.diagnose(lines[-200:], 1)
    assert d.kind == "cuda_oom" and d.exit_code == 3
    oom_line = next(line for line in lines if line.startswith("torch.OutOfMemoryError"))
    assert d.evidence == oom_line.strip()
    assert "354.00 MiB" in d.message
    assert d.checkpoint is None and not d.training_finished


@pytest.mark.parametrize("line", [
    "[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
    "[rank0]:torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 23.65 GiB total)",
    "RuntimeError: CUDA error: out of memory",
])
def test_cuda_oom_variants(line: str) -> None:
    tail = ["Traceback (most recent call last):", "  File \"x.py\", line 1, in <module>", line,
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: "]
    d = lp.diagnose(tail, 1)
    assert d.kind == "cuda_oom"
    assert "[rank" not in d.evidence


def test_ddp_teardown_abort_after_checkpoint() -> None:
    lines, rc = run_output("cpu-tiny-ddp2-teardown-abort.log")
    d = lp.diagnose(lines[-120:], rc)
    assert (d.kind, d.exit_code) == ("distributed", 10)
    assert d.evidence == "terminate called without an active exception"
    assert d.training_finished
    assert d.checkpoint == "/data/out3/v0-20261122-130350/checkpoint-4"
    assert "checkpoint-4" in d.message


def test_bad_flag_extracts_flags() -> None:
    tail = ["Traceback (most recent call last):",
            "ValueError: remaining_argv: ['--train_type', 'lora', '--evaluation_strategy=steps', '--no_cuda']"]
    d = lp.diagnose(tail, 1)
    assert (d.kind, d.exit_code) == ("bad_flag", 5)
    assert d.flags == ("--train_type", "--evaluation_strategy", "--no_cuda")
    assert "--train_type" in d.message


def test_bad_flag_real_probe() -> None:
    lines, rc = run_output("probe-bad-flag.log")
    d = lp.diagnose(lines, rc)
    assert d.kind == "bad_flag" and d.flags == ("--train_type",)


@pytest.mark.parametrize("name, kind, needle", [
    ("probe-model-path-missing.log", "model_not_found", "/data/nomodel"),
    ("probe-model-hub-unreachable.log", "network", ""),
    ("probe-model-type-ambiguous.log", "model_type", "/data/tiny/tiny-qwen"),
    ("probe-dataset-path-missing.log", "dataset", "/data/missing.json"),
    ("probe-dataset-relative-path-to-hub.log", "dataset", "x.json"),
    ("probe-dataset-malformed-jsonl.log", "dataset", "/data/broken.jsonl"),
    ("probe-dataset-no-valid-rows.log", "dataset", "malformed"),
    ("probe-dataset-all-rows-too-long.log", "dataset", "max_length"),
    ("probe-disk-full.log", "disk_full", ""),
    ("probe-child-sigkill.log", "host_oom", "247"),
])
def test_probe_logs(name: str, kind: str, needle: str) -> None:
    lines, rc = run_output(name)
    d = lp.diagnose(lines[-200:], rc)
    assert d.kind == kind
    assert d.exit_code == lp.EXIT_CODES[kind]
    assert needle in d.message
    assert "raise " not in d.evidence  # never the source line a traceback echoes


@pytest.mark.parametrize("name, kind", [
    ("gpu-h100-oom.log", "cuda_oom"), ("cpu-tiny-ddp2-teardown-abort.log", "distributed"),
    ("probe-bad-flag.log", "bad_flag"), ("probe-disk-full.log", "disk_full"),
    ("probe-dataset-no-valid-rows.log", "dataset"), ("probe-model-path-missing.log", "model_not_found"),
])
def test_tail_split_at_carriage_returns(name: str, kind: str) -> None:
    """A supervisor that splits at every carriage return and keeps the last 300 pieces."""
    lines, rc = run_output(name)
    pieces = [p for line in lines for p in line.split("\r") if p.strip()][-300:]
    assert lp.diagnose(pieces, rc or 1).kind == kind


def test_disk_full_keeps_the_checkpoint_the_log_claims() -> None:
    """The log names checkpoint-5 although its save failed: Diagnosis passes the claim on."""
    lines, rc = run_output("probe-disk-full.log")
    d = lp.diagnose(lines, rc)
    assert d.checkpoint.endswith("checkpoint-5") and not d.training_finished


def test_network_warnings_of_a_good_run_do_not_read_as_network_failure() -> None:
    """A successful CPU run logs hub retries (NetworkError); a later failure is not 'network'."""
    lines, _ = run_output("cpu-tiny-sft.log")
    tail = lines[-200:] + ["RuntimeError: something else"]
    d = lp.diagnose(tail, 1)
    assert d.kind == "unknown"
    assert d.evidence == "RuntimeError: something else"


@pytest.mark.parametrize("rc", [-9, 137, 247])
def test_host_oom_from_exit_status(rc: int) -> None:
    d = lp.diagnose(["Train:  10%|█         | 8/80 [00:01<00:08,  8.19it/s]"], rc)
    assert (d.kind, d.exit_code, d.evidence) == ("host_oom", 4, f"exit status {rc}")


def test_host_oom_under_torchrun() -> None:
    tail = ["torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
            "  exitcode  : -9 (pid: 32313)", "  traceback : Signal 9 (SIGKILL) received by PID 32313"]
    assert lp.diagnose(tail, 1).kind == "host_oom"


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_by_swiftkit(signum: int, code: int) -> None:
    lines, _ = run_output("gpu-h100-oom.log")  # whatever the output says
    d = lp.diagnose(lines, 1, interrupted_by=signum)
    assert (d.kind, d.exit_code) == ("interrupted", code)


@pytest.mark.parametrize("rc, code", [(-2, 130), (254, 130), (-15, 143), (241, 143)])
def test_interrupted_from_exit_status(rc: int, code: int) -> None:
    assert lp.diagnose([], rc).exit_code == code


def test_keyboard_interrupt_traceback() -> None:
    d = lp.diagnose(["Traceback (most recent call last):", "KeyboardInterrupt"], 1)
    assert (d.kind, d.exit_code) == ("interrupted", 130)


def test_unknown_takes_the_last_traceback_line() -> None:
    tail = ["Traceback (most recent call last):",
            '  File "/venv/lib/python3.11/site-packages/swift/pipelines/train/sft.py", line 288, in _show_dataset',
            "    inputs = train_dataset[0]",
            "TypeError: 'NoneType' object is not subscriptable",
            "Train:   2%|▎         | 1/40 [00:23<15:29, 23.84s/it]"]
    d = lp.diagnose(tail, 1)
    assert (d.kind, d.exit_code) == ("unknown", 1)
    assert d.evidence == "TypeError: 'NoneType' object is not subscriptable"


def test_empty_tail() -> None:
    d = lp.diagnose([], 1)
    assert d.kind == "unknown" and d.evidence == ""


# ---------------------------------------------------------------------------- the table itself


@pytest.mark.parametrize("rule", lp.RULES, ids=lambda r: f"{r.kind}:{r.pattern.pattern[:30]}")
def test_every_rule_matches_its_example(rule: lp.Rule) -> None:
    assert rule.pattern.search(rule.example)
    assert rule.kind in lp.EXIT_CODES
    tail = [rule.example]
    if rule.requires is not None:
        tail.append("ZeroDivisionError: integer division or modulo by zero")
    d = lp.diagnose(tail, 1)
    assert d.kind == rule.kind
    assert "{" not in d.message and "{" not in d.hint  # every template field was filled


def test_rule_examples_quote_real_logs() -> None:
    """Examples that name a fixture must appear in it (as a substring, modulo tqdm output)."""
    for rule in lp.RULES:
        fixture = re.match(r"([\w.-]+\.log)", rule.source)
        if fixture is None:
            continue
        text = (LOGS / fixture.group(1)).read_text(encoding="utf-8")
        probe = rule.example.rstrip("…").strip()[:60]
        assert probe in text, (rule.kind, fixture.group(1), probe)


def test_a_stall_is_diagnosed_from_swiftkits_own_stop_whatever_the_output() -> None:
    d = lp.diagnose(["step 5/12 loss 4.1", "Traceback (most recent call last):", "KeyboardInterrupt"], -15,
                    stalled_after=30.2)
    assert (d.kind, d.exit_code) == ("stalled", 13)
    assert d.message.startswith("The run stalled: no output for 30 s")
    assert d.evidence == "last output before the silence: KeyboardInterrupt"
    assert "resumes from the last complete checkpoint" in d.hint


def test_a_checkpoint_cut_off_by_a_full_disk_is_disk_full() -> None:
    line = "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos 392064 vs 391956"
    assert lp.diagnose([line], 1).kind == "disk_full"


def test_exit_codes_are_distinct_and_stable() -> None:
    assert lp.EXIT_CODES == {
        "unknown": 1, "cuda_oom": 3, "host_oom": 4, "bad_flag": 5, "dataset": 6,
        "model_not_found": 7, "network": 8, "disk_full": 9, "distributed": 10, "model_type": 11,
        "export_unverified": 12, "stalled": 13, "rendezvous": 14, "serve_unverified": 15, "interrupted": 130,
    }
    assert 2 not in lp.EXIT_CODES.values()  # swiftkit.errors.EXIT_USAGE


@pytest.mark.parametrize("log, kind, says", [
    ("cpu-tiny-dist-port-in-use-node0.log", "rendezvous",
     "Node 0 could not listen on the master port 29533: another process already uses it."),
    ("cpu-tiny-dist-master-unreachable-bounded.log", "rendezvous", "could not reach the master 127.0.0.1:29599"),
    ("cpu-tiny-dist-master-unreachable-noroute-bounded.log", "rendezvous",
     "could not reach the master 192.0.2.77:29533"),
    ("cpu-tiny-dist-master-unreachable-proxied-bounded.log", "rendezvous", "or something that is not torch did"),
    ("cpu-tiny-dist-rank-killed-node0.log", "distributed", "A training process at 127.0.0.1 went away"),
    ("cpu-tiny-dist-rank-killed-node1.log", "host_oom", "killed (SIGKILL)"),
    ("cpu-tiny-dist-rank-stopped-timeout-node0.log", "distributed", "A collective operation timed out"),
    ("cpu-tiny-dist-one-node-2proc-rank-killed.log", "host_oom",
     "First to fail: rank 1 (local_rank: 1) on localhost, exit -9."),
])
def test_distributed_failures_are_named(log, kind, says) -> None:
    """Real torchrun/gloo output of nodes that could not meet, or lost a peer (tests/fixtures/logs/README.md)."""
    lines, rc = run_output(log)
    d = lp.diagnose(lines, rc)
    assert d.kind == kind and says in d.message, (d.kind, d.message)
