"""holdout: general rows kept out of training, the same rows for the same seed, the user's files untouched."""
from __future__ import annotations

import json

from conftest import run_cli
from helpers import RECIPE, pairs_jsonl, project

from swiftkit.datasets import holdout


def test_plan_takes_a_share_of_each_file_never_more_than_a_tenth(tmp_path):
    h = holdout.plan([(tmp_path / "a.jsonl", 400), (tmp_path / "b.jsonl", 100), (tmp_path / "c.jsonl", 5)],
                     tmp_path / "data", 32)
    assert [(c.source.name, c.held_out) for c in h.carves] == [("a.jsonl", 25), ("b.jsonl", 6)]
    assert h.rows == 31 and h.heldout_path == tmp_path / "data" / holdout.HELDOUT_FILE
    assert holdout.plan([(tmp_path / "a.jsonl", 9)], tmp_path, 32) is None  # too few to spare
    assert holdout.plan([(tmp_path / "a.jsonl", 400)], tmp_path, 0) is None  # off


def test_write_splits_rows_deterministically(tmp_path):
    src = pairs_jsonl(tmp_path / "mine.jsonl", n=50)
    before = src.read_bytes()
    h = holdout.plan([(src, 50)], tmp_path / "data", 5)
    holdout.write(h, seed=42)
    train = [json.loads(x) for x in h.carves[0].train_path.read_text().splitlines()]
    held = [json.loads(x) for x in h.heldout_path.read_text().splitlines()]
    assert len(train) == 45 and len(held) == 5
    assert not {json.dumps(r) for r in train} & {json.dumps(r) for r in held}
    assert src.read_bytes() == before
    first = h.heldout_path.read_bytes()
    holdout.write(h, seed=42)
    assert h.heldout_path.read_bytes() == first


def test_render_trains_on_the_carved_file_and_evaluates_the_slice(tmp_path):
    recipe = project(tmp_path, RECIPE)
    pairs_jsonl(tmp_path / "data.jsonl", n=100)
    code, stdout, err = run_cli("render", str(recipe), "--json")
    assert code == 0, err
    argv = json.loads(stdout)["argv"]
    data = argv[argv.index("--dataset") + 2]
    assert data.endswith("general/0-data.train.jsonl")
    assert argv[argv.index("--val_dataset") + 1].endswith("data/general.heldout.jsonl")
    assert argv[argv.index("--eval_on_start") + 1] == "true"
    code, stdout, _ = run_cli("render", str(recipe), "--json", "--set", "verify.general_holdout=0")
    assert "--val_dataset" not in json.loads(stdout)["argv"]
