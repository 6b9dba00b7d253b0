"""Hostile input, run dirs: files swiftkit reads back from a run (the run record, trainer_state.json,
logging.jsonl, safetensors headers, export markers) that parse into the wrong shape, nest too deeply or hold
numbers too long to convert. `report`, `checkpoints` and `export` report what they could read and name what
they could not; none crashes."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from conftest import run_cli
from test_targets import trained

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INT = "1" + "0" * 5000


def record(run: Path, **fields) -> Path:
    data = {"schema": 1, "status": "succeeded", "run_dir": str(run), "attempts": [{"attempt": 1, "run_dir": str(run)}],
            **fields}
    path = run / "swiftkit-run.json"
    path.write_text(json.dumps(data))
    return path


def cli(*args: str) -> tuple[int, str]:
    code, out, err = run_cli(*args)
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, out + err


def test_a_record_with_fields_of_the_wrong_shape_is_reported_and_named(tmp_path):
    run = trained(tmp_path)
    record(run, output_dir=5, verification="yes", retention=[1], exports={"a": 1}, exit_code=True)
    code, text = cli("report", str(run))
    assert code == 0
    for named in ("output_dir: a whole number, expected text or null", "verification: text, expected an object or null",
                  "retention: a list, expected an object or null", "exports: an object, expected a list",
                  "exit_code: true/false, expected a whole number or null"):
        assert f"swiftkit-run.json: {named}: not shown in the report" in text
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Not shown, the run record holds them in the wrong shape: output_dir: a whole number" in html


@pytest.mark.parametrize("content, reason", [
    (DEEP, "run record is nested too deeply to read"),
    ('{"schema": ' + HUGE_INT + "}", "run record cannot be read: Exceeds the limit"),
    ("\xff\xfe{", "run record is not UTF-8 text"),
])
def test_a_record_that_cannot_be_parsed_is_a_located_error(tmp_path, content, reason):
    run = trained(tmp_path)
    (run / "swiftkit-run.json").write_bytes(content.encode("latin-1") if content.startswith("\xff") else content.encode())
    code, text = cli("report", str(run))
    assert code == 2 and f"{run / 'swiftkit-run.json'}: {reason}" in text
    assert "fix: restore it or delete it" in text


@pytest.mark.parametrize("state, reason", [
    ({"global_step": "x"}, "trainer_state.json: global_step is str, not int"),
    ({"global_step": 10, "log_history": 5}, "trainer_state.json: log_history is int, not list"),
    ({"global_step": True}, "trainer_state.json: global_step is bool, not int"),
    ([1, 2], "trainer_state.json: not a JSON object"),
    (DEEP, "trainer_state.json: not valid JSON"),
    ('{"global_step": ' + HUGE_INT + "}", "trainer_state.json: not valid JSON"),
])
def test_a_trainer_state_of_the_wrong_shape_marks_the_checkpoint_incomplete(tmp_path, state, reason):
    run = trained(tmp_path)
    path = run / "checkpoint-10" / "trainer_state.json"
    path.write_text(state if isinstance(state, str) else json.dumps(state))
    code, text = cli("checkpoints", str(tmp_path / "out"))
    assert code == 0 and "checkpoint-10" in text and f"INCOMPLETE: {reason}" in text
    code, text = cli("export", str(run / "checkpoint-10"), "--output", str(tmp_path / "e"))
    assert code == 2 and reason in text and not (tmp_path / "e").exists()


def test_a_deep_logging_line_is_skipped_and_the_rest_read(tmp_path):
    run = trained(tmp_path)
    with open(run / "logging.jsonl", "a", encoding="utf-8") as f:
        f.write(DEEP + "\n" + '{"loss": ' + HUGE_INT + "}\n")
    record(run)
    code, text = cli("report", str(run))
    assert code == 0
    code, text = cli("checkpoints", str(tmp_path / "out"))
    assert code == 0 and "checkpoint-10        step 10" in text


def safetensors_with(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * 8


@pytest.mark.parametrize("info, reason", [
    ({"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}, "w: dtype is list, expected a name such as BF16"),
    ({"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}, "w: shape is not a list of whole numbers"),
])
def test_a_safetensors_header_of_the_wrong_shape_names_the_field(tmp_path, info, reason):
    run = trained(tmp_path)
    (run / "checkpoint-10" / "adapter_model.safetensors").write_bytes(safetensors_with({"w": info}))
    code, text = cli("checkpoints", str(tmp_path / "out"))
    assert code == 0 and f"adapter_model.safetensors: {reason}" in text


def test_an_export_marker_of_the_wrong_shape_reads_as_no_marker(tmp_path):
    from swiftkit.results.exports import MARKER, read_marker

    for content in ("[1]", DEEP, '{"sha256": ' + HUGE_INT + "}"):
        (tmp_path / MARKER).write_text(content)
        assert read_marker(tmp_path) is None
