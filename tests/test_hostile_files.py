"""Files that are not files: a dataset, recipe, import script, probe file or identity template that is a FIFO,
a character device, something under /proc, or larger than its kind can be. Each is refused from its stat,
before it is opened (opening a FIFO blocks; /dev/zero never ends), with what, where and a fix."""
from __future__ import annotations

import io
import os
import sys
import threading

import pytest

from conftest import run_cli
from swiftkit.errors import UserError

BASE = "model: {id: Qwen/Qwen2.5-7B-Instruct}\ntrain: {epochs: 1}\n"
ROW = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n'
SCRIPT = "swift sft --model Qwen/Qwen2.5-7B-Instruct --dataset data.jsonl\n"
NOT_REGULAR_FIX = "must be a regular file: copy the data into one and point at that"


def finishes(call, *fifos, seconds: float = 180):
    """call()'s result, failing (not hanging) when it blocks: a reader stuck on a FIFO is let go by opening
    the FIFO's other end. Generous: the first validate of a test session builds the flag catalog (~40 s)."""
    result: dict = {}

    def target():
        try:
            result["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        pytest.fail(f"blocked for {seconds} s instead of refusing the file")
    if "error" in result:
        raise result["error"]
    return result["value"]


def cli(*args, fifos=()) -> tuple[int, str]:
    code, out, err = finishes(lambda: run_cli(*args), *fifos)
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, out + err


def sparse(path, size: int):
    """A file of `size` bytes that takes no disk space: its size is all the checks look at."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def recipe(write, datasets: str, extra: str = "") -> str:
    return str(write("r.yaml", BASE + f"datasets: [{datasets}]\n" + extra))


# -- datasets ---------------------------------------------------------------------------------------

def test_a_fifo_dataset_is_refused_without_opening_it(write, tmp_path):
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    code, text = cli("validate", recipe(write, "fifo.jsonl"), fifos=[fifo])
    assert code == 2
    assert f"{fifo}: datasets[0]: is a FIFO (named pipe), not a regular file" in text
    assert f"fix: a dataset file {NOT_REGULAR_FIX}" in text


def test_a_parquet_fifo_is_refused_before_pyarrow_opens_it(write, tmp_path):
    fifo = tmp_path / "fifo.parquet"
    os.mkfifo(fifo)
    code, text = cli("validate", recipe(write, "fifo.parquet"), fifos=[fifo])
    assert code == 2 and f"{fifo}: datasets[0]: is a FIFO (named pipe), not a regular file" in text


def test_a_dataset_linked_to_a_character_device_is_refused(write, tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.jsonl")
    code, text = cli("validate", recipe(write, "zero.jsonl"))
    assert code == 2
    assert f"{tmp_path / 'zero.jsonl'}: datasets[0]: is a character device, not a regular file" in text


def test_a_dataset_beyond_its_limit_is_refused_unread(write, tmp_path):
    sparse(tmp_path / "huge.jsonl", 21 << 30)
    code, text = cli("validate", recipe(write, "huge.jsonl"))
    assert code == 2
    assert f"{tmp_path / 'huge.jsonl'}: datasets[0]: is 21 GiB; a dataset file is at most 20 GiB" in text
    assert "fix: check that this is the dataset file you meant" in text


# -- recipes ----------------------------------------------------------------------------------------

def test_a_fifo_recipe_is_refused(tmp_path):
    fifo = tmp_path / "r.yaml"
    os.mkfifo(fifo)
    code, text = cli("validate", str(fifo), fifos=[fifo])
    assert code == 2
    assert f"{fifo}: is a FIFO (named pipe), not a regular file\n    fix: a recipe {NOT_REGULAR_FIX}" in text


def test_a_recipe_linked_to_dev_zero_is_refused(tmp_path):
    os.symlink("/dev/zero", tmp_path / "r.yaml")
    code, text = cli("validate", str(tmp_path / "r.yaml"))
    assert code == 2 and f"{tmp_path / 'r.yaml'}: is a character device, not a regular file" in text


def test_a_recipe_of_megabytes_is_refused(tmp_path):
    path = sparse(tmp_path / "r.yaml", 2 << 20)
    code, text = cli("validate", str(path))
    assert code == 2
    assert f"{path}: is 2 MiB; a recipe is at most 1 MiB\n    fix: check that this is the recipe you meant" in text


def test_a_recipe_under_proc_is_refused():
    code, text = cli("validate", "/proc/self/status")
    assert code == 2 and "/proc/self/status: is under /proc, a view of the kernel, not a recipe" in text


# -- import scripts ---------------------------------------------------------------------------------

def test_a_fifo_import_script_is_refused(tmp_path):
    fifo = tmp_path / "train.sh"
    os.mkfifo(fifo)
    code, text = cli("import", str(fifo), fifos=[fifo])
    assert code == 2
    assert f"{fifo}: is a FIFO (named pipe), not a regular file\n    fix: an import script {NOT_REGULAR_FIX}" in text


def test_importing_dev_zero_is_refused():
    code, text = cli("import", "/dev/zero")
    assert code == 2 and "/dev/zero: is a character device, not a regular file" in text


def test_an_import_script_of_megabytes_is_refused(tmp_path):
    path = tmp_path / "train.sh"
    path.write_text(SCRIPT + "#" * (2 << 20) + "\n", encoding="utf-8")
    code, text = cli("import", str(path))
    assert code == 2 and f"{path}: is 2.0 MiB; an import script is at most 1 MiB" in text


def test_stdin_is_read_only_up_to_a_scripts_limit(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(SCRIPT + "#" * (2 << 20)))
    code, text = cli("import", "-")
    assert code == 2 and "stdin holds more than 1 MiB; an import script is at most that" in text


# -- general probe files and identity templates -------------------------------------------------------

def test_a_probe_file_under_proc_is_refused(write, tmp_path):
    write("data.jsonl", ROW)
    os.symlink("/proc/self/status", tmp_path / "probes.jsonl")
    code, text = cli("validate", recipe(write, "data.jsonl", "verify: {general_probes: probes.jsonl}\n"))
    assert code == 2
    assert (f"{tmp_path / 'probes.jsonl'}: verify.general_probes: is under /proc, a view of the kernel, not a "
            "general probe file\n    fix: copy what you need into a regular file and point at that") in text


def test_a_probe_file_beyond_its_limit_is_refused(write, tmp_path):
    write("data.jsonl", ROW)
    sparse(tmp_path / "probes.jsonl", 17 << 20)
    code, text = cli("validate", recipe(write, "data.jsonl", "verify: {general_probes: probes.jsonl}\n"))
    assert code == 2
    assert (f"{tmp_path / 'probes.jsonl'}: verify.general_probes: is 17 MiB; a general probe file is at most "
            "16 MiB") in text


def test_a_fifo_probe_file_is_refused_where_verify_reads_it(tmp_path):
    from swiftkit.datasets.probes import load_probes

    fifo = tmp_path / "probes.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UserError) as caught:
        finishes(lambda: load_probes(fifo), fifo)
    assert caught.value.format() == (f"{fifo}: verify.general_probes: is a FIFO (named pipe), not a regular file\n"
                                     f"    fix: a general probe file {NOT_REGULAR_FIX}")


def identity_recipe(write, template: str) -> str:
    return str(write("r.yaml", BASE + "datasets: [identity]\n"
                     f"identity: {{name: Ada, author: Lab, template: {template}}}\n"))


def test_an_identity_template_under_proc_is_refused(write, tmp_path):
    os.symlink("/proc/self/status", tmp_path / "identity.jsonl")
    code, text = cli("validate", identity_recipe(write, "identity.jsonl"))
    assert code == 2
    assert (f"{tmp_path / 'identity.jsonl'}: identity.template: is under /proc, a view of the kernel, not an "
            "identity template") in text


def test_an_identity_template_beyond_its_limit_is_refused(write, tmp_path):
    sparse(tmp_path / "identity.jsonl", 17 << 20)
    code, text = cli("validate", identity_recipe(write, "identity.jsonl"))
    assert code == 2
    assert f"{tmp_path / 'identity.jsonl'}: identity.template: is 17 MiB; an identity template is at most 16 MiB" \
        in text


def test_a_fifo_identity_template_is_refused_where_it_is_read(tmp_path):
    from swiftkit.datasets.identity import load_identity_template

    fifo = tmp_path / "identity.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UserError) as caught:
        finishes(lambda: load_identity_template(fifo), fifo)
    assert caught.value.format() == (f"{fifo}: identity.template: is a FIFO (named pipe), not a regular file\n"
                                     f"    fix: an identity template {NOT_REGULAR_FIX}")


@pytest.mark.parametrize("key, yaml", [
    ("identity.template", "identity: {name: Ada, author: Lab, template: special.jsonl}\n"),
    ("verify.general_probes", "verify: {general_probes: special.jsonl}\n"),
])
def test_validate_names_a_fifo_template_or_probe_file_as_such_not_as_missing(write, tmp_path, key, yaml):
    fifo = tmp_path / "special.jsonl"
    os.mkfifo(fifo)
    datasets = "datasets: [identity]\n" if key.startswith("identity") else "datasets: [data.jsonl]\n"
    write("data.jsonl", ROW)
    code, text = cli("validate", str(write("r.yaml", BASE + datasets + yaml)), fifos=[fifo])
    assert code == 2 and f"{fifo}: {key}: is a FIFO (named pipe), not a regular file" in text
    assert "not found" not in text and "did you mean" not in text
