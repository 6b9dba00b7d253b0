"""`swiftkit import` against every `swift sft` command in ms-swift's own examples/ (tests/corpus).

Each command is imported, checked and rendered back; ms-swift's own parser then reads the original
(as bash passes it to `swift`) and the rendered command. A command round-trips when every setting
that differs from ms-swift's default in the original has the same value in the rendered one. A
command that does not must be refused by the importer with a message that says why.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from swiftkit.checks.collect import check, planned_invocations
from swiftkit.errors import UserError
from swiftkit.importer.command import SELF_COGNITION, import_command
from swiftkit.importer.recipe_yaml import to_yaml
from swiftkit.recipe.models import DEEPSPEED_BUILTIN, FSDP_BUILTIN, looks_like_hub_id

HERE = Path(__file__).resolve().parents[1]
CORPUS = HERE / "corpus" / "ms_swift_sft_examples.jsonl"
GOAL = 0.97
IDENTITY_FILE = re.compile(r"/data/identity\.train\.jsonl(#\d+)?$")
# Path-valued settings: a recipe resolves them relative to its own file, ms-swift to the working dir.
PATH_DESTS = {"output_dir"}


@dataclass
class Outcome:
    file: str
    status: str  # "same", "refused", "differs", "error"
    detail: str = ""


def corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def shell_argv(script: str) -> list[str]:
    """The words bash hands to `swift` after `sft` (variables, quotes and $(...) done by bash itself)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "argv"
        stub = f'swift() {{ [ "$1" = sft ] && {{ shift; printf "%s\\0" "$@" > {out}; exit 0; }}; }}\n'
        subprocess.run(["bash", "-c", stub + script], check=False, capture_output=True, timeout=30)
        return out.read_bytes().decode().split("\0")[:-1]


def swift_parse(argvs: list[list[str]]) -> tuple[dict, list[dict]]:
    """(defaults, [{"values", "remaining"}]) from ms-swift's own parser, in a child process."""
    done = subprocess.run([sys.executable, str(HERE / "corpus" / "parse_settings.py")], input=json.dumps(argvs),
                          capture_output=True, text=True, check=True, timeout=600)
    data = json.loads(done.stdout)
    return data["defaults"], data["parsed"]


def stand_ins(recipe: dict, root: Path) -> None:
    """Small files where the recipe names local data, so the check sees them (the content is not compared)."""
    from helpers import make_model_dir, pairs_jsonl

    for entry in recipe.get("datasets", []):
        source = entry if isinstance(entry, str) else entry.get("path") or ""
        source = source.partition("#")[0]
        if source and source != "identity" and not looks_like_hub_id(source) and isinstance(entry, str):
            path = root / source
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.suffix == ".parquet":
                import pandas as pd

                pd.DataFrame({"messages": [[{"role": "user", "content": "q"},
                                            {"role": "assistant", "content": "a"}]]}).to_parquet(path)
            else:
                pairs_jsonl(path)
    model = recipe.get("model", {}).get("id", "")
    if model and not looks_like_hub_id(model):
        make_model_dir(root / model)
    for key, builtin in (("deepspeed", DEEPSPEED_BUILTIN), ("fsdp", FSDP_BUILTIN)):
        config = recipe.get("distributed", {}).get(key)
        if isinstance(config, str) and config not in builtin:
            (root / config).parent.mkdir(parents=True, exist_ok=True)
            (root / config).write_text("{}", encoding="utf-8")


def rendered_argv(text: str, root: Path, catalog) -> tuple[list[str] | None, dict | None, Outcome | None]:
    try:
        result = import_command(text)
    except UserError as exc:
        return None, None, Outcome("", "refused", exc.format())
    path = root / "recipe.yaml"
    path.write_text(to_yaml(result), encoding="utf-8")
    stand_ins(result.recipe, root)
    try:
        checked = check(path, catalog=catalog)
    except UserError as exc:
        return None, None, Outcome("", "error", "the imported recipe does not check: " + exc.format())
    return planned_invocations(checked)["sft"].argv[2:], result.recipe, None


def _norm(value):
    if isinstance(value, list) and len(value) == 2 and value[0] == value[1]:
        return [value[0]]  # --model_name X means X in both languages
    return value


def compare(original: dict, rendered: dict, defaults: dict, recipe: dict, root: Path) -> list[str]:
    """Settings of the original that differ from the default and are not the same after the round trip."""
    rendered = dict(rendered)
    rendered["dataset"] = [_identity_as_hub(d) for d in rendered.get("dataset") or []]
    if "identity" in recipe:
        rendered["model_name"] = _norm([recipe["identity"]["name"]["zh"], recipe["identity"]["name"]["en"]])
        rendered["model_author"] = _norm([recipe["identity"]["author"]["zh"], recipe["identity"]["author"]["en"]])
    self_cognition = any(SELF_COGNITION.match(d.split("::")[-1]) for d in original.get("dataset") or [])
    val_exists = bool(original.get("dataset") and original.get("split_dataset_ratio", 0) > 0
                      or original.get("val_dataset") or original.get("cached_val_dataset")
                      or original.get("eval_dataset"))
    differ = []
    for dest, value in original.items():
        if value == defaults.get(dest):
            continue
        if dest in ("model_name", "model_author") and not self_cognition:
            continue  # read only by the swift/self-cognition loader
        if dest == "eval_steps" and not val_exists:
            continue  # no eval set: ms-swift sets eval_strategy "no"
        want, got = _norm(value), _norm(rendered.get(dest))
        config_file = dest in ("deepspeed", "fsdp") and want not in DEEPSPEED_BUILTIN + FSDP_BUILTIN
        if (dest in PATH_DESTS or config_file) and isinstance(want, str) and isinstance(got, str):
            want = os.path.normpath(root / want)
        if dest == "dataset":
            want = [d if looks_like_hub_id(d.partition("#")[0].split("::")[-1].partition(":")[0])
                    or SELF_COGNITION.match(d) else os.path.normpath(root / d) for d in want]
        if want != got:
            differ.append(f"{dest}: {value!r} -> {rendered.get(dest)!r}")
    return differ


def _identity_as_hub(arg: str) -> str:
    match = IDENTITY_FILE.search(arg)
    return f"swift/self-cognition{match.group(1) or ''}" if match else arg


def measure(rows: list[dict], catalog) -> list[Outcome]:
    outcomes: list[Outcome | None] = []
    pairs: list[tuple[int, list[str], list[str], dict, Path]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, row in enumerate(rows):
            root = Path(tmp) / f"c{i}"
            root.mkdir()
            try:
                argv, recipe, failed = rendered_argv(row["command"], root, catalog)
            except Exception as exc:  # noqa: BLE001  (a traceback is exactly what the test reports)
                argv, recipe, failed = None, None, Outcome("", "error", f"{type(exc).__name__}: {exc}")
            if failed:
                failed.file = row["file"]
                outcomes.append(failed)
                continue
            outcomes.append(None)
            pairs.append((i, shell_argv(row["command"]), argv, recipe, root))
        defaults, parsed = swift_parse([argv for _, original, rendered, _, _ in pairs
                                        for argv in (original, rendered)])
        for n, (i, _original, _rendered, recipe, root) in enumerate(pairs):
            original, rendered = parsed[2 * n], parsed[2 * n + 1]
            problems = compare(original["values"], rendered["values"], defaults, recipe, root)
            if rendered["remaining"]:
                problems.append(f"ms-swift does not read {rendered['remaining']}")
            outcomes[i] = Outcome(rows[i]["file"], "differs" if problems else "same", "; ".join(problems))
    return outcomes  # type: ignore[return-value]


def summary(outcomes: list[Outcome]) -> str:
    same = sum(o.status == "same" for o in outcomes)
    lines = [f"{same} of {len(outcomes)} commands round-trip ({same / len(outcomes):.1%}; goal {GOAL:.0%})"]
    lines += [f"  {o.status}: {o.file}: {o.detail[:400]}" for o in outcomes if o.status != "same"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def outcomes(catalog):
    result = measure(corpus(), catalog)
    print("\n" + summary(result))
    return result


def test_corpus_is_there():
    rows = corpus()
    assert len(rows) >= 100 and all(set(r) == {"file", "command"} for r in rows)


def test_most_examples_round_trip(outcomes):
    same = sum(o.status == "same" for o in outcomes)
    assert same / len(outcomes) >= GOAL, summary(outcomes)


def test_the_rest_is_refused_with_a_reason(outcomes):
    """Never a traceback, never a recipe that trains differently: a refusal that says why."""
    bad = [o for o in outcomes if o.status in ("differs", "error")]
    assert not bad, summary(outcomes)
    for o in outcomes:
        if o.status == "refused":
            assert "Traceback" not in o.detail and len(o.detail) > 20, o
