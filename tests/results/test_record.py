"""record: atomic writes, forgiving reads, redaction, versions."""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swiftkit.errors import UserError
from swiftkit.results import record as rec


def sample() -> rec.RunRecord:
    return rec.RunRecord(
        recipe="recipes/identity.yaml",
        command=["swift", "sft", "--model", "/models/Qwen2.5-7B-Instruct", "--tuner_type", "lora"],
        env={"NPROC_PER_NODE": "2", "HF_TOKEN": "hf_secret"},
        output_dir="/data/out", run_dir="/data/out/v0-20261122-124531",
        status="succeeded", returncode=0, exit_code=0,
        checkpoint="/data/out/v0-20261122-124531/checkpoint-80",
        summary={"train_runtime": 4.569, "train_loss": 5.955},
        attempts=[{"per_device_train_batch_size": 16, "result": "cuda_oom"}],
        versions={"ms-swift": "4.6.0"}, started_at="2026-11-22T12:45:31+00:00",
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ---------------------------------------------------------------------------- writing


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    record = sample()
    rec.write_record(path, record)
    back = rec.read_record(path)
    assert back.schema == 1
    assert back.summary == record.summary and back.attempts == record.attempts
    assert back.env == {"NPROC_PER_NODE": "2", "HF_TOKEN": "***"}  # redacted on the way to disk
    record.env = rec.redact_env(record.env)
    assert back == record
    assert leftovers(tmp_path) == []


def test_file_is_versioned_json(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    rec.write_record(path, sample())
    data = json.loads(path.read_text())
    assert data["schema"] == 1 and next(iter(data)) == "schema"


def test_crash_mid_write_leaves_the_old_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.json"
    rec.write_record(path, sample())
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    newer = sample()
    newer.status = "failed"
    with pytest.raises(OSError, match="simulated"):
        rec.write_record(path, newer)
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_unserializable_record_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    rec.write_record(path, sample())
    before = path.read_bytes()
    with pytest.raises(TypeError):
        rec.write_record(path, {"summary": {("tuple", "key"): 1}})
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_nan_loss_is_written_as_a_string(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    rec.write_record(path, rec.RunRecord(summary={"train_loss": float("nan"), "peak": float("inf")}))
    assert "NaN" not in path.read_text()
    assert rec.read_record(path).summary == {"train_loss": "nan", "peak": "inf"}


def test_paths_are_written_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "run.json"  # the directory is created
    rec.write_record(path, rec.RunRecord(output_dir=tmp_path / "out"))  # type: ignore[arg-type]
    assert rec.read_record(path).output_dir == str(tmp_path / "out")


def test_write_a_plain_dict(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    rec.write_record(path, {"schema": 1, "status": "running", "command": ["--hub_token", "abc"]})
    back = rec.read_record(path)
    assert back.status == "running" and back.command == ["--hub_token", "***"]


# ---------------------------------------------------------------------------- reading


def test_unknown_keys_are_kept_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"schema": 1, "status": "failed", "gpu": {"name": "H100"}, "note": "x"}))
    record = rec.read_record(path)
    assert record.extra == {"gpu": {"name": "H100"}, "note": "x"}
    rec.write_record(path, record)
    data = json.loads(path.read_text())
    assert data["gpu"] == {"name": "H100"} and data["note"] == "x" and data["status"] == "failed"


def test_missing_keys_take_defaults(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text("{}")
    assert rec.read_record(path) == rec.RunRecord()


def test_wrong_container_types_take_defaults(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"attempts": None, "summary": [1, 2], "command": "swift sft", "schema": "1"}))
    record = rec.read_record(path)
    assert (record.attempts, record.summary, record.command, record.schema) == ([], {}, [], 1)


def test_newer_schema_reads_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"schema": 7, "status": "succeeded", "shiny_new_field": [1]}))
    with pytest.warns(rec.RecordWarning, match="schema 7"):
        record = rec.read_record(path)
    assert record.status == "succeeded" and record.schema == 7
    assert record.extra == {"shiny_new_field": [1]}


def test_current_schema_reads_without_warning(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    rec.write_record(path, sample())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.read_record(path)


@pytest.mark.parametrize("text", ['{"schema": 1, "status": "runn', "[1, 2]", ""])
def test_corrupt_record_is_a_user_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        rec.read_record(path)
    assert str(path) in str(info.value)


def test_missing_record(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        rec.read_record(tmp_path / "nope.json")


@given(st.dictionaries(st.text(min_size=1), st.none() | st.integers() | st.text() | st.lists(st.integers())))
def test_any_json_object_reads(data: dict) -> None:
    record = rec.RunRecord.from_dict(data)
    assert isinstance(record.attempts, list) and isinstance(record.schema, int)
    for key, value in data.items():
        if key not in {f for f in rec.RunRecord.__dataclass_fields__ if f != "extra"}:
            assert record.extra[key] == value


# ---------------------------------------------------------------------------- redaction


def test_redact_env() -> None:
    env = {"HF_TOKEN": "hf_x", "MODELSCOPE_API_TOKEN": "ms_x", "WANDB_API_KEY": "w", "AWS_SECRET_ACCESS_KEY": "a",
           "DB_PASSWORD": "p", "GOOGLE_APPLICATION_CREDENTIALS": "/k.json", "SOME_AUTH": "s", "hub_token": "lower",
           "NPROC_PER_NODE": "2", "CUDA_VISIBLE_DEVICES": "0,1", "TOKENIZERS_PARALLELISM": "false"}
    red = rec.redact_env(env)
    assert {k for k, v in red.items() if v == "***"} == {
        "HF_TOKEN", "MODELSCOPE_API_TOKEN", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD",
        "GOOGLE_APPLICATION_CREDENTIALS", "SOME_AUTH", "hub_token"}
    assert env["HF_TOKEN"] == "hf_x"  # a copy


def test_redact_argv() -> None:
    argv = ["swift", "sft", "--hub_token", "ms-abc", "--swanlab_token=sw-1", "--swanlab_secret", "s",
            "--max_new_tokens", "64", "--model_author", "swift", "--reft_layer_key", "k", "--push_to_hub", "true"]
    assert rec.redact_argv(argv) == [
        "swift", "sft", "--hub_token", "***", "--swanlab_token=***", "--swanlab_secret", "***",
        "--max_new_tokens", "64", "--model_author", "swift", "--reft_layer_key", "k", "--push_to_hub", "true"]


def test_redact_argv_flag_without_value() -> None:
    assert rec.redact_argv(["--hub_token", "--model", "m"]) == ["--hub_token", "--model", "m"]
    assert rec.redact_argv(["--hub_token"]) == ["--hub_token"]


def test_redaction_is_idempotent() -> None:
    argv = ["--hub_token", "x", "--api-key=y"]
    once = rec.redact_argv(argv)
    assert rec.redact_argv(once) == once == ["--hub_token", "***", "--api-key=***"]


# ---------------------------------------------------------------------------- versions


def test_versions_reads_metadata_without_importing() -> None:
    heavy = {"torch", "transformers", "peft", "swift"}
    before = heavy & set(sys.modules)
    found = rec.versions()
    assert heavy & set(sys.modules) == before  # nothing heavy got imported
    assert set(found) >= {"swiftkit", "ms-swift", "torch", "transformers", "peft", "python"}
    assert found["python"].count(".") == 2
    assert found["ms-swift"] is None or found["ms-swift"][0].isdigit()
