"""datasets/general_rows.jsonl: 600 written general rows (zh/en, 12 categories), disjoint from the probes.

The checkers take rows (loaded from any path) and return problem messages naming row ids, so the same
functions run on the bundled file and, in the last tests, on a deliberately broken copy of it.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
ROWS_FILE = DATASETS / "general_rows.jsonl"
PROBES_FILE = DATASETS / "general_probes.jsonl"
IDENTITY_FILE = DATASETS / "self_cognition.jsonl"

KEYS = {"id", "category", "lang", "query", "response"}
CATEGORIES = ("arithmetic", "facts", "translation", "code", "instruction", "formatting", "writing",
              "explanation", "reasoning", "advice", "science", "language")
PER_LANG = 25  # rows per category and language
TOTAL = len(CATEGORIES) * PER_LANG * 2
MAX_RESPONSE = 600
NEAR = 0.8  # SequenceMatcher ratio on normalised queries at or above which two queries are near-duplicates
# Containment counts only when the shorter query has this many normalised characters: the identity file's
# two-letter greeting "Hi!" is inside "which", "this" and most English sentences.
MIN_CONTAINED = 3

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Identity words, model names and companies that make models; Latin ones must not touch other letters
# ("ai" in "rain" is fine, "AI" and "AI助手" are not). Matched case-insensitively.
FORBIDDEN = [
    r"(?<![a-z])ai(?![a-z])", r"artificial intelligence", r"人工智能", r"assistant", r"助手", r"助理",
    r"language model", r"语言模型", r"大模型", r"chatbot", r"聊天机器人", r"(?<![a-z])llms?(?![a-z])",
    r"(?<![a-z])gpt", r"openai", r"chatgpt", r"qwen", r"通义", r"千问", r"alibaba", r"阿里", r"claude",
    r"anthropic", r"deepseek", r"gemini", r"llama", r"mistral", r"\{\{", r"\}\}",
]
FORBIDDEN_RE = re.compile("|".join(FORBIDDEN), re.IGNORECASE)
PLACEHOLDER_RE = re.compile(r"\b(?:NAME|AUTHOR)\b")  # template markers, upper case only


def load(path: Path) -> list[dict]:
    """Rows of a JSONL file; a line that is not a JSON object becomes {"_line": n, "_error": ...}."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            row = {"_line": n, "_error": str(exc)}
        if not isinstance(row, dict):
            row = {"_line": n, "_error": "not a JSON object"}
        rows.append(row)
    return rows


def norm(text: str) -> str:
    """Lower case without whitespace, punctuation or symbols (zh and en alike)."""
    return "".join(ch for ch in text.lower()
                   if not ch.isspace() and not unicodedata.category(ch).startswith(("P", "S")))


def rid(row: dict) -> str:
    return str(row.get("id", f"line {row.get('_line', '?')}"))


def near(a: str, b: str) -> float:
    """SequenceMatcher ratio, or 0.0 as soon as a cheap upper bound shows it is below NEAR."""
    la, lb = len(a), len(b)
    if not la or not lb or 2 * min(la, lb) / (la + lb) < NEAR:
        return 0.0
    sm = SequenceMatcher(None, a, b, autojunk=False)
    if sm.real_quick_ratio() < NEAR or sm.quick_ratio() < NEAR:
        return 0.0
    return sm.ratio()


# --- checkers: rows in, problem messages out ---------------------------------------------------------------
def format_problems(rows: list[dict]) -> list[str]:
    problems = []
    for i, row in enumerate(rows, 1):
        if "_error" in row:
            problems.append(f"line {row['_line']}: invalid JSON ({row['_error']})")
            continue
        if set(row) != KEYS:
            problems.append(f"{rid(row)}: keys {sorted(row)} != {sorted(KEYS)}")
        if row.get("id") != f"row-{i:03d}":
            problems.append(f"{rid(row)}: line {i} should have id row-{i:03d}")
        if row.get("category") not in CATEGORIES:
            problems.append(f"{rid(row)}: unknown category {row.get('category')!r}")
        if row.get("lang") not in ("zh", "en"):
            problems.append(f"{rid(row)}: lang {row.get('lang')!r} is neither zh nor en")
        for key in ("query", "response"):
            value = row.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{rid(row)}: empty or non-string {key}")
        response = row.get("response")
        if isinstance(response, str) and len(response) > MAX_RESPONSE:
            problems.append(f"{rid(row)}: response has {len(response)} characters (> {MAX_RESPONSE})")
        query = row.get("query")
        if isinstance(query, str):
            if row.get("lang") == "zh" and not CJK.search(query):
                problems.append(f"{rid(row)}: zh row whose query has no CJK characters")
            if row.get("lang") == "en" and CJK.search(query):
                problems.append(f"{rid(row)}: en row whose query has CJK characters")
    ids = [row.get("id") for row in rows if "_error" not in row]
    dupes = sorted(str(k) for k, n in Counter(ids).items() if n > 1)
    if dupes:
        problems.append(f"duplicate ids: {dupes}")
    return problems


def count_problems(rows: list[dict]) -> list[str]:
    problems = []
    if len(rows) != TOTAL:
        problems.append(f"{len(rows)} rows, expected {TOTAL}")
    langs = Counter(row.get("lang") for row in rows)
    if langs != Counter({"zh": TOTAL // 2, "en": TOTAL // 2}):
        problems.append(f"languages {dict(langs)}, expected {TOTAL // 2} zh and {TOTAL // 2} en")
    cells = Counter((row.get("category"), row.get("lang")) for row in rows)
    for cat in CATEGORIES:
        for lang in ("zh", "en"):
            if cells[(cat, lang)] != PER_LANG:
                ids = [rid(r) for r in rows if (r.get("category"), r.get("lang")) == (cat, lang)]
                problems.append(f"{cat}/{lang}: {cells[(cat, lang)]} rows, expected {PER_LANG} "
                                f"(first/last: {ids[:1]} {ids[-1:]})")
    return problems


def identity_word_problems(rows: list[dict]) -> list[str]:
    problems = []
    for row in rows:
        for key in ("query", "response"):
            text = row.get(key)
            if not isinstance(text, str):
                continue
            for m in (FORBIDDEN_RE.search(text), PLACEHOLDER_RE.search(text)):
                if m:
                    problems.append(f"{rid(row)}: {key} contains forbidden {m.group(0)!r}")
    return problems


def duplicate_problems(rows: list[dict]) -> list[str]:
    """Equal or near-equal queries inside one file (normalised; ratio >= NEAR)."""
    problems = []
    normed = [(rid(r), norm(r["query"])) for r in rows if isinstance(r.get("query"), str)]
    for i, (a, na) in enumerate(normed):
        for b, nb in normed[i + 1:]:
            if na == nb:
                problems.append(f"{a} and {b}: same query after normalisation")
            elif (score := near(na, nb)) >= NEAR:
                problems.append(f"{a} and {b}: near-duplicate queries (ratio {score:.2f})")
    return problems


def overlap_problems(rows: list[dict], others: list[dict]) -> list[str]:
    """Queries equal to, containing, contained in, or near (ratio >= NEAR) a query of `others`."""
    problems = []
    theirs = [(rid(o), norm(o["query"])) for o in others if isinstance(o.get("query"), str)]
    for row in rows:
        if not isinstance(row.get("query"), str):
            continue
        mine = norm(row["query"])
        for other_id, their in theirs:
            if not mine or not their:
                continue
            if mine == their:
                problems.append(f"{rid(row)}: same query as {other_id}")
            elif min(len(mine), len(their)) >= MIN_CONTAINED and (their in mine or mine in their):
                problems.append(f"{rid(row)}: query contains or is contained in the query of {other_id}")
            elif (score := near(mine, their)) >= NEAR:
                problems.append(f"{rid(row)}: query near {other_id} (ratio {score:.2f})")
    return problems


def all_problems(rows: list[dict]) -> list[str]:
    return (format_problems(rows) + count_problems(rows) + identity_word_problems(rows)
            + duplicate_problems(rows) + overlap_problems(rows, load(PROBES_FILE) + load(IDENTITY_FILE)))


def report(problems: list[str]) -> str:
    return f"{len(problems)} problem(s):\n" + "\n".join(problems[:50])


# --- the bundled file --------------------------------------------------------------------------------------
def test_rows_are_json_objects_with_the_fields_in_order():
    problems = format_problems(load(ROWS_FILE))
    assert not problems, report(problems)


def test_rows_are_300_zh_and_300_en_25_each_per_category():
    problems = count_problems(load(ROWS_FILE))
    assert not problems, report(problems)


def test_no_identity_words_model_names_or_template_markers():
    problems = identity_word_problems(load(ROWS_FILE))
    assert not problems, report(problems)


def test_no_duplicate_or_near_duplicate_queries_in_the_file():
    problems = duplicate_problems(load(ROWS_FILE))
    assert not problems, report(problems)


def test_queries_are_disjoint_from_the_general_probes():
    probes = load(PROBES_FILE)
    assert len(probes) == 120 and all("query" in p for p in probes)
    problems = overlap_problems(load(ROWS_FILE), probes)
    assert not problems, report(problems)


def test_queries_are_disjoint_from_the_identity_data():
    identity = load(IDENTITY_FILE)
    assert identity and all("query" in r for r in identity)
    problems = overlap_problems(load(ROWS_FILE), identity)
    assert not problems, report(problems)


def test_file_is_utf8_with_unescaped_chinese():
    text = ROWS_FILE.read_text(encoding="utf-8")
    assert "\\u" not in text and CJK.search(text)
    assert text.endswith("\n") and "\r" not in text


# --- the checkers catch a broken copy ----------------------------------------------------------------------
def broken_copy(tmp_path: Path) -> Path:
    rows = load(ROWS_FILE)
    probe = load(PROBES_FILE)[0]
    rows[4]["query"] = probe["query"]                             # row-005: a probe query verbatim
    rows[5]["query"] = "Please: " + load(IDENTITY_FILE)[0]["query"]  # row-006: contains "你是谁"
    rows[6]["query"] = rows[7]["query"] + "!!"                    # row-007 duplicates row-008
    rows[9]["response"] = "I am an AI assistant."                 # row-010
    rows[10]["response"] = "{{ name }}"                            # row-011
    rows[11]["lang"] = "en"                                       # row-012: zh query marked en
    rows[12]["response"] = "x" * (MAX_RESPONSE + 1)               # row-013
    rows[13]["id"] = "row-999"                                    # row-014 out of order
    path = tmp_path / "general_rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{not json\n",
                    encoding="utf-8")
    return path


def test_checkers_flag_a_broken_copy_by_row_id(tmp_path):
    rows = load(broken_copy(tmp_path))
    text = "\n".join(all_problems(rows))
    assert "row-005: same query as gen-001" in text
    assert "row-006: query contains or is contained in the query of name-zh-1" in text
    assert "row-007 and row-008: same query after normalisation" in text
    assert "row-010: response contains forbidden 'AI'" in text
    assert "row-011: response contains forbidden '{{'" in text
    assert "row-012: en row whose query has CJK characters" in text
    assert "row-013: response has 601 characters" in text
    assert "row-999: line 14 should have id row-014" in text
    assert "line 601: invalid JSON" in text
    assert "601 rows, expected 600" in text
    assert "arithmetic/zh: 24 rows" in text and "arithmetic/en: 26 rows" in text


def test_near_duplicates_are_flagged_and_distinct_queries_are_not():
    a = {"id": "row-a", "query": "What is the capital of Norway?"}
    b = {"id": "row-b", "query": "What is the capital of Norway, please?"}
    c = {"id": "row-c", "query": "Write a haiku about winter."}
    ratio = SequenceMatcher(None, norm(a["query"]), norm(b["query"])).ratio()
    assert duplicate_problems([a, b, c]) == [f"row-a and row-b: near-duplicate queries (ratio {ratio:.2f})"]
    assert overlap_problems([c], [{"id": "gen-x", "query": "Write a haiku about winter"}]) == [
        "row-c: same query as gen-x"]
    assert overlap_problems([c], [{"id": "hi", "query": "Hi!"}]) == []  # too short to count as contained
