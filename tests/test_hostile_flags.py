"""Values that would be read as flags: a system prompt, a hub dataset id or a `swift:` value that starts with
'-'. A lone value is rendered `--flag=-x`, which ms-swift's own parser (checked here, in a child) reads as
the value; a list item that starts with '-' is refused once, at its key."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import run_cli

from swiftkit.checks.collect import check, planned_invocations

BASE = "model: {id: Qwen/Qwen2.5-7B-Instruct}\ntrain: {epochs: 1}\ndatasets: [identity]\n" \
       "identity: {name: a, author: b}\n"

PARSE = """
import contextlib, io, json, sys
with contextlib.redirect_stdout(io.StringIO()):
    from swiftkit.child.introspect import _parser
out = []
for r in json.loads(sys.stdin.read()):
    parser = _parser(r["verb"])
    parser.allow_abbrev = False
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            ns, rest = parser.parse_known_args(r["argv"])
        out.append({"values": {d: getattr(ns, d, None) for d in r["dests"]}, "rest": rest})
    except SystemExit:
        out.append({"error": err.getvalue().strip().splitlines()[-1]})
print("RESULT" + json.dumps(out))
"""


def parsed_by_swift(requests: list[tuple[str, list[str], list[str]]]) -> list[dict]:
    """(verb, argv, dests) -> what ms-swift's HfArgumentParser makes of argv: the dests' values and the
    leftovers, or its error. One child for all (importing ms-swift takes seconds)."""
    payload = json.dumps([{"verb": v, "argv": a, "dests": d} for v, a, d in requests])
    done = subprocess.run([sys.executable, "-c", PARSE], input=payload, capture_output=True, text=True, check=False,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.split("RESULT", 1)[1])


def commands(write, text: str, catalog) -> dict:
    return planned_invocations(check(write("r.yaml", text), catalog=catalog))


def test_the_parser_really_misreads_a_value_given_as_its_own_word():
    # what rendering avoids: `--system -x` is an error, `--dataset a -b` leaves -b over
    split, listed = parsed_by_swift([("sft", ["--system", "-x"], ["system"]),
                                     ("sft", ["--dataset", "a", "-b"], ["dataset"])])
    assert "argument --system: expected one argument" in split["error"]
    assert listed["values"]["dataset"] == ["a"] and listed["rest"] == ["-b"]


def test_values_that_start_with_a_dash_reach_ms_swift_as_values(write, catalog):
    system = "-x you are --helpful"
    invs = commands(write, "model: {id: Qwen/Qwen2.5-7B-Instruct}\ndatasets: [-org/name]\n"
                    f"train: {{epochs: 1, system: '{system}'}}\n"
                    "swift: {max_grad_norm: -1e-4, report_to: --none}\n", catalog)
    sft, infer = invs["sft"].argv, invs["infer"].argv
    assert f"--system={system}" in sft and f"--system={system}" in infer
    assert "--dataset=-org/name" in sft and "--max_grad_norm=-1e-4" in sft and "--report_to=--none" in sft
    got = parsed_by_swift([("sft", sft[2:], ["system", "dataset", "max_grad_norm", "report_to"]),
                           ("infer", infer[2:], ["system"])])
    assert got[0]["rest"] == [] and got[1]["rest"] == [], got
    assert got[0]["values"] == {"system": system, "dataset": ["-org/name"], "max_grad_norm": -1e-4,
                                "report_to": ["--none"]}
    assert got[1]["values"] == {"system": system}


def test_validate_accepts_a_system_prompt_that_starts_with_dashes(write):
    recipe = write("r.yaml", BASE.replace("{epochs: 1}", "{epochs: 1, system: '--be brief'}"))
    code, out, err = run_cli("validate", str(recipe))
    assert code == 0 and "has no flag" not in err, err
    code, out, err = run_cli("render", str(recipe))
    assert code == 0 and "'--system=--be brief'" in out, err


@pytest.mark.parametrize("text,where,value,flag", [
    ("datasets: [identity, -org/name]\n", "r.yaml:4:22: datasets[1]", "-org/name", "--dataset"),
    ("swift: {report_to: [tensorboard, --none]}\n", "r.yaml:5:34: swift.report_to[1]", "--none", "--report_to"),
    ("lora: {target_modules: [q_proj, -k_proj]}\n", "r.yaml:5:33: lora.target_modules[1]", "-k_proj",
     "--target_modules"),
])
def test_a_list_item_that_starts_with_a_dash_is_refused_once_at_its_key(write, text, where, value, flag):
    recipe = BASE.replace("datasets: [identity]\n", "") if text.startswith("datasets") else BASE
    code, _out, err = run_cli("validate", str(write("r.yaml", recipe + text)))
    assert code == 2 and "Traceback" not in err
    assert f"{where}: '{value}' starts with '-': in the list of {flag}, ms-swift would read it as a flag" in err
    assert "fix: rename it so that it does not start with '-', or give it as the only value" in err
    assert "has no flag" not in err and err.count("starts with '-'") == 1, err
