"""General probe files (the bundled datasets/general_probes.jsonl or verify.general_probes): read and checked
row by row before anything runs, every broken row reported at once."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from swiftkit import userfiles
from swiftkit.errors import Problem, UserError

MAX_PROBLEMS = 5


def load_probes(path: Path) -> list[dict]:
    """General probe rows (`query`, optional `id`, `category`, `lang`); every broken row reported at once."""
    path = Path(path)
    try:
        # userfiles: a FIFO or a device is refused before it is opened, and a probe file has a size limit.
        text = userfiles.read_text(path, "general probe file", key="verify.general_probes")
    except FileNotFoundError:
        raise UserError.one(f"general probe file not found: {path}",
                            fix="check verify.general_probes (relative to the recipe), or remove it for the "
                                "bundled set") from None
    except OSError as e:
        raise UserError.one(f"cannot read the general probe file: {e.strerror or e}", file=str(path),
                            key="verify.general_probes", fix="check the path and its permissions") from None
    rows, problems, seen = [], [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row, problem = _row(path, number, line, seen)
        if problem:
            problems.append(problem)
        else:
            rows.append(row)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise UserError(shown, headline=f"{path}: {len(problems)} broken probe row(s)"
                        + (f" ({more} more not shown)" if more else "") + "; nothing was run")
    if not rows:
        raise UserError.one("general probe file has no rows", file=str(path),
                            fix='one JSON object per line: {"id": "gen-001", "query": "What is 12 x 7?"}')
    return rows


def _row(path: Path, number: int, line: str, seen: dict[str, int]) -> tuple[dict, Problem | None]:
    fix = 'one JSON object per line with a non-empty "query", e.g. {"id": "gen-001", "query": "What is 12 x 7?"}'
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        return {}, Problem(f"not valid JSON: {e.msg}", file=str(path), line=number, column=e.colno, fix=fix)
    except RecursionError:  # json's decoder recurses once per level of nesting
        return {}, Problem(f"nested too deeply to read (more than {sys.getrecursionlimit()} levels)",
                           file=str(path), line=number, fix=fix)
    except ValueError:  # an integer longer than Python converts from text
        return {}, Problem(f"a number with more than {sys.get_int_max_str_digits()} digits", file=str(path),
                           line=number, fix="write it as a string (in quotes), or correct it")
    if not isinstance(row, dict):
        return {}, Problem(f"expected a JSON object, got {type(row).__name__}", file=str(path), line=number, fix=fix)
    query = row.get("query")
    if not isinstance(query, str) or not query.strip():
        return {}, Problem('"query" is missing or empty', file=str(path), line=number, key="query", fix=fix)
    probe_id = str(row.get("id") or f"line-{number}")
    if probe_id in seen:
        return {}, Problem(f'id "{probe_id}" repeats line {seen[probe_id]}', file=str(path), line=number, key="id",
                           fix="give every probe its own id")
    seen[probe_id] = number
    return {"id": probe_id, "query": query, "category": str(row.get("category") or "other"),
            "lang": str(row.get("lang") or "")}, None
