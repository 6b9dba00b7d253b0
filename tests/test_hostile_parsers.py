"""Parsers fed what a user can write: integers beyond Python's digit limit, JSON nested past the recursion
limit, UTF-16 and broken UTF-8 files, and shell arithmetic that is huge or endless. Each is a located error
(file:line or key) with a fix: never an unexpected error or a traceback."""
from __future__ import annotations

import json
import sys

import pytest

from conftest import run_cli

BASE = "model: {id: Qwen/Qwen2.5-7B-Instruct}\ntrain: {epochs: 1}\n"
ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}
LINE = json.dumps(ROW) + "\n"
DIGITS = sys.get_int_max_str_digits()
HUGE = "9" * (DIGITS + 700)
DEEP = "[" * 5000 + "]" * 5000
MODEL = "swift sft --model Qwen/Qwen2.5-7B-Instruct --dataset data.jsonl"


def cli(*args) -> tuple[int, str]:
    code, out, err = run_cli(*args)
    assert "Traceback" not in err and "unexpected error" not in err, err
    return code, out + err


def validate_data(write, name: str, data: bytes | str) -> tuple[int, str, str]:
    path = write(name, "")
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    code, text = cli("validate", str(write("r.yaml", BASE + f"datasets: [{name}]\n")))
    return code, text, str(path)


# -- data rows --------------------------------------------------------------------------------------

def test_a_huge_integer_in_a_jsonl_row_is_located(write):
    code, text, path = validate_data(write, "big.jsonl", LINE + '{"messages": [], "n": ' + HUGE + "}\n")
    assert code == 2
    assert (f"{path}:2: datasets[0]: a number with more than {DIGITS} digits\n"
            "    fix: write it as a string (in quotes), or correct it") in text


def test_a_huge_integer_in_a_json_list_is_located_on_its_row(write):
    code, text, path = validate_data(write, "big.json", "[\n" + LINE.strip() + ',\n{"n": ' + HUGE + "}\n]\n")
    assert code == 2 and f"{path}:3: datasets[0]: a number with more than {DIGITS} digits" in text


def test_jsonl_nested_past_the_recursion_limit_is_located(write):
    code, text, path = validate_data(write, "deep.jsonl", LINE + '{"messages": ' + DEEP + "}\n")
    assert code == 2
    assert (f"{path}:2: datasets[0]: the row is nested too deeply to read (lists or objects more than "
            f"{sys.getrecursionlimit()} levels inside each other)\n"
            '    fix: write each row as a flat object such as {"messages": [...]}') in text


def test_a_json_list_nested_past_the_recursion_limit_is_located(write):
    code, text, path = validate_data(write, "deep.json", "[\n" + LINE.strip() + ',\n{"messages": ' + DEEP + "}]\n")
    assert code == 2 and f"{path}:3: datasets[0]: the row is nested too deeply to read" in text


def test_utf16_data_with_a_bom_is_named_as_such(write):
    code, text, path = validate_data(write, "u16.jsonl", LINE.encode("utf-16"))
    assert code == 2
    assert (f"{path}: datasets[0]: is UTF-16 text, not UTF-8 (it starts with a UTF-16 byte-order mark)\n"
            "    fix: save the dataset file as UTF-8") in text


def test_utf16_data_without_a_bom_is_named_as_such(write):
    code, text, path = validate_data(write, "u16.jsonl", LINE.encode("utf-16-le"))
    assert code == 2 and f"{path}: datasets[0]: is UTF-16 text, not UTF-8 (every other byte is NUL)" in text


def test_a_bad_utf8_byte_is_located_by_line_and_column(write):
    code, text, path = validate_data(write, "bad.jsonl", LINE.encode() + b'{"messages": "ab\xc3\x28"}\n')
    assert code == 2
    assert (f"{path}:2:17: datasets[0]: not UTF-8 text: invalid continuation byte (byte 0xc3)\n"
            "    fix: save the dataset file as UTF-8") in text


def test_a_csv_cell_past_the_csv_modules_default_limit_is_read(write):
    code, text, _ = validate_data(write, "long.csv", "query,response\nhi," + "x" * 200_000 + "\n")
    assert code == 0, text


# -- recipes ----------------------------------------------------------------------------------------

def test_a_huge_integer_in_a_recipe_is_located(write):
    code, text = cli("validate", str(write("r.yaml", BASE + "datasets: [a.jsonl]\nseed: " + HUGE + "\n")))
    assert code == 2
    assert (f"r.yaml:4:7: seed: a number with more than {DIGITS} digits\n"
            "    fix: write the number the setting needs, or quote it if it is text") in text


def test_an_impossible_date_in_a_recipe_is_located(write):
    code, text = cli("validate", str(write("r.yaml", BASE + "datasets: [a.jsonl]\nseed: 2024-13-45\n")))
    assert code == 2
    assert "r.yaml:4:7: seed: cannot read this value: month must be in 1..12\n    fix: correct it, or quote it" in text


def test_a_utf16_recipe_is_named_as_such(write):
    path = write("r.yaml", "")
    path.write_bytes((BASE + "datasets: [a.jsonl]\n").encode("utf-16"))
    code, text = cli("validate", str(path))
    assert code == 2
    assert (f"{path}: is UTF-16 text, not UTF-8 (it starts with a UTF-16 byte-order mark)\n"
            "    fix: save the recipe as UTF-8") in text


# -- general probe files and identity templates -------------------------------------------------------

def test_probe_rows_with_a_huge_integer_or_deep_nesting_are_located(write):
    write("data.jsonl", LINE)
    probes = write("probes.jsonl", '{"query": "a", "n": ' + HUGE + '}\n{"query": "b", "n": ' + DEEP + "}\n")
    code, text = cli("validate", str(write("r.yaml", BASE + "datasets: [data.jsonl]\n"
                                           "verify: {general_probes: probes.jsonl}\n")))
    assert code == 2
    assert (f"{probes}:1: a number with more than {DIGITS} digits\n"
            "    fix: write it as a string (in quotes), or correct it") in text
    assert f"{probes}:2: nested too deeply to read (more than {sys.getrecursionlimit()} levels)" in text


def identity(write, template: bytes) -> tuple[int, str, str]:
    path = write("identity.jsonl", "")
    path.write_bytes(template)
    code, text = cli("validate", str(write("r.yaml", BASE + "datasets: [identity]\n"
                                           "identity: {name: Ada, author: Lab, template: identity.jsonl}\n")))
    return code, text, str(path)


def test_a_utf16_identity_template_is_named_as_such(write):
    row = {"id": "a", "lang": "en", "kind": "name", "split": "train", "query": "Who?", "response": "{{ name }}"}
    code, text, path = identity(write, (json.dumps(row) + "\n").encode("utf-16"))
    assert code == 2
    assert (f"{path}: is UTF-16 text, not UTF-8 (it starts with a UTF-16 byte-order mark)\n"
            "    fix: save the identity template as UTF-8") in text


def test_an_identity_template_nested_past_the_recursion_limit_is_located(write):
    code, text, path = identity(write, ('{"id": ' + DEEP + "}\n").encode())
    assert code == 2 and f"{path}:1: the row is nested too deeply to read" in text


# -- shell arithmetic in imported scripts -------------------------------------------------------------

def imported(write, script: str) -> tuple[int, str, str]:
    path = write("train.sh", script)
    code, text = cli("import", str(path))
    return code, text, str(path)


def test_a_power_beyond_64_bits_is_refused_without_computing_it(write):
    code, text, path = imported(write, f"N=1\n{MODEL} \\\n  --num_train_epochs $((10**100000))\n")
    assert code == 2
    assert (f"{path}:2: '$((10**100000))' is beyond the shell's 64-bit integers (the shell would wrap it around "
            "to another number)\n    fix: write the value the setting needs") in text


def test_a_product_beyond_64_bits_is_refused(write):
    code, text, path = imported(write, f"{MODEL} --num_train_epochs $(({'*'.join(['99999'] * 40)}))\n")
    assert code == 2 and f"{path}:1: '$((99999*99999*99999*999...' is beyond the shell's 64-bit integers" in text


def test_arithmetic_longer_than_any_setting_is_refused_before_parsing(write):
    code, text, path = imported(write, f"{MODEL} --num_train_epochs $(({'+'.join(['1'] * 100_000)}))\n")
    assert code == 2
    assert (f"{path}:1: the arithmetic '$((1+1+1+1+1+1+1+1+1+1+1...' is 199999 characters long (at most 1000): "
            "more than a setting needs\n    fix: write the value the setting needs") in text


def test_a_power_within_64_bits_is_evaluated(write):
    code, text, _ = imported(write, f"{MODEL} --num_train_epochs $((2**2))\n")
    assert code == 0 and "epochs: 4" in text


def test_a_flag_value_of_thousands_of_digits_is_refused(write):
    code, text, path = imported(write, f"{MODEL} --num_train_epochs {HUGE}\n")
    assert code == 2
    assert (f"{path}: --num_train_epochs '999999999999999999999999...': a number of {len(HUGE)} digits, more than "
            f"Python reads (at most {DIGITS})\n    fix: write the value the setting needs") in text


def test_a_utf16_script_is_named_as_such(write):
    path = write("train.sh", "")
    path.write_bytes(MODEL.encode("utf-16"))
    code, text = cli("import", str(path))
    assert code == 2
    assert (f"{path}: is UTF-16 text, not UTF-8 (it starts with a UTF-16 byte-order mark)\n"
            "    fix: save the import script as UTF-8") in text


def test_division_and_remainder_are_the_shells_near_64_bits():
    from swiftkit.importer.shell import arithmetic

    # Through a float, 2**62 / 3 would come out 1537228672809129216; the shell truncates toward zero.
    assert arithmetic("$((2**62 / 3)) $((-7 / 2)) $((-7 % 3))", {}) == "1537228672809129301 -3 -1"


# -- identity template expressions and DeepSpeed configs ------------------------------------------------

def test_a_template_expression_nested_past_jinjas_parser_is_located(write):
    row = {"id": "x-en-1", "lang": "en", "kind": "name", "split": "train", "query": "q",
           "response": "{{ " + "(" * 3000 + "name" + ")" * 3000 + " }}"}
    path = write("t.jsonl", json.dumps(row) + "\n")
    code, text = cli("validate", str(write("r.yaml", BASE + "datasets: [identity]\n"
                                          "identity: {name: a, author: b, template: t.jsonl}\n")))
    assert code == 2 and f"{path}:1: response: the template is nested too deeply to read" in text


def test_a_deepspeed_config_with_a_huge_integer_or_deep_nesting_is_located(write):
    for content, said in (('{"train_batch_size": ' + HUGE + "}", f"holds a number with more than {DIGITS} digits"),
                          ('{"a": ' + DEEP + "}", "is nested too deeply to read")):
        config = write("ds.json", content)
        code, text = cli("validate", str(write("r.yaml", BASE + "datasets: [identity]\nidentity: {name: a, author: b}\n"
                                              "gpu: {count: 1}\ndistributed: {deepspeed: ds.json}\n")))
        assert code == 2 and f"distributed.deepspeed: deepspeed config {config} {said}" in text


# -- recipe tags ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, tag", [
    ("!!binary aGVsbG8=", "!!binary"),
    ("!!python/object:os.system x", "!!python/object:os.system"),
    ("!!python/name:os.system x", "!!python/name:os.system"),
    ("!!set {a}", "!!set"),
])
def test_a_yaml_tag_beyond_plain_values_is_refused_at_its_key(write, value, tag):
    code, text = cli("validate", str(write("r.yaml", BASE + f"datasets: [identity]\nidentity: {{name: {value}, "
                                                         "author: b}\n")))
    assert code == 2 and f"r.yaml:4:18: identity.name: the tag {tag} is not allowed in a recipe" in text
    assert "fix: write the value plainly: text, a number, true/false, a list or a mapping" in text
