"""checkpoints: fake ms-swift output dirs built in tmp_path, laid out as ms-swift 4.6 lays them out."""
from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import pytest

from swiftkit.results import checkpoints as ck

LOGS = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A real safetensors file written by hand: u64 LE header length, JSON header, data."""
    widths = {"F32": 4, "BF16": 2}
    header: dict = {"__metadata__": {"format": "pt"}}
    data = b""
    for name, (dtype, shape) in tensors.items():
        n = widths[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + n]}
        data += bytes(range(256)) * (n // 256) + bytes(n % 256)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


LORA = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": ("F32", [8, 64]),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": ("F32", [64, 8])}


def trainer_state(step: int, losses: dict[int, float], best: str | None = None) -> dict:
    """Shaped like transformers' trainer_state.json (keys as in a real ms-swift 4.6 checkpoint)."""
    history = [{"epoch": float(s), "grad_norm": 0.9, "learning_rate": 1e-4, "loss": loss, "step": s,
                "token_acc": 0.0} for s, loss in sorted(losses.items()) if s <= step]
    return {"best_global_step": None, "best_metric": None, "best_model_checkpoint": best,
            "epoch": float(step), "global_step": step, "log_history": history, "max_steps": 2000}


def make_checkpoint(run: Path, step: int, losses: dict[int, float], *, best: str | None = None,
                    weights: bytes | None = None) -> Path:
    path = run / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 32.0}))
    (path / "adapter_model.safetensors").write_bytes(weights if weights is not None else safetensors_bytes(LORA))
    (path / "trainer_state.json").write_text(json.dumps(trainer_state(step, losses, best), indent=2))
    (path / "args.json").write_text("{}")
    return path


def make_run(output: Path, name: str, steps: list[int], losses: dict[int, float], **kw) -> Path:
    run = output / name
    run.mkdir(parents=True)
    (run / "args.json").write_text("{}")
    lines = [json.dumps({"loss": loss, "global_step/max_steps": f"{s}/{max(steps)}"}) for s, loss in sorted(losses.items())]
    (run / "logging.jsonl").write_text("\n".join(lines) + "\n")
    for step in steps:
        make_checkpoint(run, step, losses, **kw)
    if steps:
        os.symlink(f"checkpoint-{max(steps)}", run / "last-checkpoint")
    return run


LOSSES = {1: 5.70, 5: 5.65, 10: 5.60, 15: 5.62}


@pytest.fixture
def output(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    make_run(out, "v0-20261122-130000", [5, 10], LOSSES)
    make_run(out, "v2-20261122-131000", [5, 10, 15], LOSSES)
    (out / "v10-20261122-140000").mkdir()  # a failed start: empty leftover
    return out


# ---------------------------------------------------------------------------- discovery


def test_find_runs_sorted_by_version_number(output: Path) -> None:
    runs = ck.find_runs(output)
    assert [r.version for r in runs] == [0, 2, 10]  # numeric: v10 after v2
    assert [r.leftover for r in runs] == [False, False, True]
    assert runs[1].started.isoformat() == "2026-11-22T13:10:00"
    assert [c.step for c in runs[1].checkpoints] == [5, 10, 15]  # last-checkpoint link skipped


def test_checkpoint_loss_from_trainer_state(output: Path) -> None:
    run = ck.find_runs(output)[1]
    assert [c.loss for c in run.checkpoints] == [5.65, 5.60, 5.62]
    assert all(c.complete and c.kind == "adapter" and c.problems == [] for c in run.checkpoints)


def test_loss_at_takes_the_last_loss_at_or_before_the_step() -> None:
    history = [{"loss": 3.0, "step": 1}, {"loss": 2.0, "step": 10}, {"eval_loss": 9.0, "step": 10},
               {"train_loss": 1.0, "step": 20}]
    assert ck.loss_at(history, 15) == 2.0
    assert ck.loss_at(history, 0) is None


def test_newest_run_skips_the_empty_leftover(output: Path) -> None:
    assert ck.newest_run(output).path.name == "v2-20261122-131000"


def test_latest_checkpoint(output: Path) -> None:
    latest = ck.latest_checkpoint(output)
    assert latest.path == output / "v2-20261122-131000" / "checkpoint-15"


def test_missing_output_dir(tmp_path: Path) -> None:
    assert ck.find_runs(tmp_path / "nope") == []
    assert ck.latest_checkpoint(tmp_path / "nope") is None
    assert ck.newest_run(tmp_path / "nope") is None


def test_run_without_version_dirs(tmp_path: Path) -> None:
    """add_version false: checkpoints straight under output_dir."""
    make_checkpoint(tmp_path, 7, {7: 1.0})
    (run,) = ck.find_runs(tmp_path)
    assert run.version == -1 and [c.step for c in run.checkpoints] == [7]
    assert ck.latest_checkpoint(tmp_path).step == 7


def test_a_run_dir_passed_directly(output: Path) -> None:
    assert ck.latest_checkpoint(output / "v0-20261122-130000").step == 10


# ---------------------------------------------------------------------------- truncation


def test_truncated_safetensors_is_incomplete_and_never_chosen(output: Path) -> None:
    good = safetensors_bytes(LORA)
    run = output / "v2-20261122-131000"
    path = run / "checkpoint-15" / "adapter_model.safetensors"
    path.write_bytes(good[: len(good) - 100])  # cut mid-write
    checkpoint = ck.inspect_checkpoint(path.parent)
    assert not checkpoint.complete
    assert any("truncated" in p for p in checkpoint.problems)
    assert ck.latest_checkpoint(output).path == run / "checkpoint-10"


@pytest.mark.parametrize("damage, problem", [
    (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json: missing"),
    (lambda c: (c / "trainer_state.json").write_text('{"global_step": 1'), "trainer_state.json: not valid JSON"),
    (lambda c: (c / "adapter_config.json").write_text(""), "adapter_config.json: not valid JSON"),
    (lambda c: (c / "adapter_model.safetensors").unlink(), "adapter_model.safetensors missing"),
    (lambda c: (c / "adapter_model.safetensors").write_bytes(b""), "too short"),
])
def test_damaged_checkpoints(tmp_path: Path, damage, problem: str) -> None:
    path = make_checkpoint(tmp_path / "v0-20261122-130000", 10, LOSSES)
    damage(path)
    checkpoint = ck.inspect_checkpoint(path)
    assert not checkpoint.complete
    assert any(problem in p for p in checkpoint.problems), checkpoint.problems


def test_disk_full_checkpoint_named_by_the_log_is_not_trusted(tmp_path: Path) -> None:
    """probe-disk-full.log: the save of checkpoint-5 stopped after the adapter, before
    trainer_state.json, yet the log says `last_model_checkpoint: …/checkpoint-5`."""
    out = tmp_path / "out"
    run = make_run(out, "v0-20261122-133049", [5], {1: 5.706, 5: 5.701})
    (run / "checkpoint-5" / "trainer_state.json").unlink()
    (run / "checkpoint-5" / "args.json").write_text('{"model": "/data/tiny')  # cut at 24576 bytes in the probe
    (checkpoint,) = ck.find_runs(out)[0].checkpoints
    assert not checkpoint.complete
    assert checkpoint.loss == 5.701  # from logging.jsonl, since trainer_state.json is gone
    assert ck.latest_checkpoint(out) is None
    assert ck.newest_run(out).path == run  # a failed run, but not an empty leftover


def test_trainer_state_from_another_save(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, 10, LOSSES)
    (path / "trainer_state.json").write_text(json.dumps(trainer_state(5, LOSSES)))
    assert "global_step 5" in ck.inspect_checkpoint(path).problems[0]


def test_adapter_bin(tmp_path: Path) -> None:
    path = make_checkpoint(tmp_path, 10, LOSSES)
    (path / "adapter_model.safetensors").unlink()
    with zipfile.ZipFile(path / "adapter_model.bin", "w") as z:  # torch.save writes a zip
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    assert ck.inspect_checkpoint(path).complete
    data = (path / "adapter_model.bin").read_bytes()
    (path / "adapter_model.bin").write_bytes(data[: len(data) // 2])
    assert not ck.inspect_checkpoint(path).complete


# ---------------------------------------------------------------------------- full fine-tunes


def make_full(path: Path, step: int, shards: int = 1) -> Path:
    path = make_checkpoint(path, step, LOSSES)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (path / name).unlink()
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    if shards == 1:
        (path / "model.safetensors").write_bytes(safetensors_bytes({"lm_head.weight": ("BF16", [16, 8])}))
        return path
    weight_map = {}
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        (path / name).write_bytes(safetensors_bytes({f"layer{i}.weight": ("BF16", [4, 4])}))
        weight_map[f"layer{i}.weight"] = name
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return path


def test_full_fine_tune_counts(tmp_path: Path) -> None:
    checkpoint = ck.inspect_checkpoint(make_full(tmp_path, 10))
    assert checkpoint.complete and checkpoint.kind == "full"


def test_sharded_full_fine_tune_missing_a_shard(tmp_path: Path) -> None:
    path = make_full(tmp_path, 10, shards=3)
    assert ck.inspect_checkpoint(path).complete
    (path / "model-00003-of-00003.safetensors").unlink()
    checkpoint = ck.inspect_checkpoint(path)
    assert not checkpoint.complete
    assert "model-00003-of-00003.safetensors: missing" in checkpoint.problems[0]


def test_no_weights_at_all(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint-3"
    path.mkdir()
    (path / "trainer_state.json").write_text(json.dumps(trainer_state(3, {})))
    checkpoint = ck.inspect_checkpoint(path)
    assert checkpoint.kind == "unknown" and not checkpoint.complete


# ---------------------------------------------------------------------------- best


def test_best_from_trainer_state(output: Path) -> None:
    run = ck.find_runs(output)[1]
    for c in run.checkpoints:
        state = json.loads((c.path / "trainer_state.json").read_text())
        state["best_model_checkpoint"] = "/elsewhere/out/v2-20261122-131000/checkpoint-5"
        (c.path / "trainer_state.json").write_text(json.dumps(state))
    run = ck.find_runs(output)[1]
    assert run.best().step == 5


def test_best_falls_back_to_lowest_loss(output: Path) -> None:
    run = ck.find_runs(output)[1]
    assert run.best().step == 10  # 5.60 < 5.62 (step 15) < 5.65 (step 5)
    assert run.last_complete().step == 15


def test_best_ignores_incomplete(output: Path) -> None:
    run_dir = output / "v2-20261122-131000"
    (run_dir / "checkpoint-10" / "adapter_model.safetensors").write_bytes(b"\x00" * 4)
    assert ck.find_runs(output)[1].best().step == 15


# ---------------------------------------------------------------------------- from the log


def test_run_dir_from_log_path_that_exists(output: Path) -> None:
    run = output / "v0-20261122-130000"
    lines = ["[INFO:swift] rank: -1", f"[INFO:swift] output_dir: {run}"]
    assert ck.run_dir_from_log(lines, output) == run


def test_run_dir_from_a_log_written_elsewhere(output: Path) -> None:
    lines = ["[INFO:swift] output_dir: /data/out/v2-20261122-131000"]
    assert ck.run_dir_from_log(lines, output) == output / "v2-20261122-131000"


def test_run_dir_from_the_real_cpu_log_falls_back_to_newest_run(output: Path) -> None:
    """cpu-tiny-sft.log names /data/out2/v0-20261122-124531, which is not here."""
    lines = (LOGS / "cpu-tiny-sft.log").read_text(encoding="utf-8").splitlines()
    assert ck.run_dir_from_log(lines, output) == output / "v2-20261122-131000"
    assert ck.run_dir_from_log(lines) is None


def test_run_dir_from_log_without_output_dir_line(output: Path) -> None:
    assert ck.run_dir_from_log(["Traceback (most recent call last):"], output) == output / "v2-20261122-131000"
