"""datasets/general_prompts.jsonl, the bundled replay pool: 650 prompts, zh and en, 13 categories, disjoint from
the retention probes (which no training data may contain), the identity questions and the written general rows
(whose held-out slice measures eval loss), checked with the same normalising product code as a user's pool."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from test_general_rows import CJK, FORBIDDEN_RE, PLACEHOLDER_RE

from swiftkit.datasets.prompt_pool import Prompt, duplicates, load_prompts, overlaps
from swiftkit.paths import DATASETS_DIR, bundled_general_prompts

CATEGORIES = ("arithmetic", "facts", "translation", "code", "instruction", "formatting", "writing", "explanation",
              "reasoning", "advice", "science", "language", "conversation")
ROWS = [json.loads(line) for line in bundled_general_prompts().read_text(encoding="utf-8").splitlines()]


def others(name: str) -> list[tuple[str, str]]:
    rows = [json.loads(line) for line in (DATASETS_DIR / name).read_text(encoding="utf-8").splitlines()]
    return [(str(r.get("id") or f"{name}:{i}"), r["query"]) for i, r in enumerate(rows, 1)]


def pool() -> list[Prompt]:
    return load_prompts(bundled_general_prompts(), "replay")


def test_650_prompts_25_per_category_and_language_in_order():
    assert [r["id"] for r in ROWS] == [f"prompt-{i:03d}" for i in range(1, 651)]
    assert all(list(r) == ["id", "category", "lang", "query"] for r in ROWS)
    assert Counter((r["category"], r["lang"]) for r in ROWS) == Counter(
        {(c, lang): 25 for c in CATEGORIES for lang in ("zh", "en")})
    for r in ROWS:
        assert bool(CJK.search(r["query"])) == (r["lang"] == "zh"), r
        assert 0 < len(r["query"]) <= 400


def test_no_prompt_names_an_identity_a_model_or_a_template_marker():
    bad = [(r["id"], m.group(0)) for r in ROWS for m in (FORBIDDEN_RE.search(r["query"]),
                                                          PLACEHOLDER_RE.search(r["query"])) if m]
    assert not bad


def test_no_duplicates_inside_the_pool():
    assert not [(a.line, b.line, round(s, 2)) for a, b, s in duplicates(pool())]


def test_disjoint_from_the_probes_the_identity_questions_and_the_written_rows():
    theirs = others("general_probes.jsonl") + others("self_cognition.jsonl") + others("general_rows.jsonl")
    assert not [(p.line, label, round(s, 2)) for p, label, s in overlaps(pool(), theirs)]


def test_the_checks_catch_a_broken_copy():
    probe = others("general_probes.jsonl")[3]
    broken = pool()[:20] + [Prompt(21, probe[1].upper() + "!!"), Prompt(22, pool()[0].query.lower() + " ")]
    assert [label for _, label, _ in overlaps(broken, [probe])] == [probe[0]]
    assert [(a.line, b.line) for a, b, _ in duplicates(broken)] == [(1, 22)]


def test_the_pool_is_the_one_the_recipe_key_names():
    assert bundled_general_prompts() == Path(DATASETS_DIR / "general_prompts.jsonl")
