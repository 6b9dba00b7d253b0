"""Reading a local dataset file the way ms-swift's loaders do (JSON, JSON Lines, CSV, parquet), every
row with its line number, and every way a file can be unreadable as a located error."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Iterator

from swiftkit import userfiles
from swiftkit.errors import Problem, UserError

from .formats import MAX_ROW_PROBLEMS, SUPPORTED_EXTENSIONS

# --- Reading files --------------------------------------------------------------------------------
def _json_error(path: Path, err: json.JSONDecodeError, line: int | None = None) -> Problem:
    return Problem(
        f"malformed JSON: {err.msg}", file=str(path), line=line or err.lineno, column=err.colno,
        fix="correct the JSON there (a .json file holds one list of objects, a .jsonl file one object per line)",
    )


def _not_object(path: Path, line: int, value: Any) -> Problem:
    return Problem(f"a row must be a JSON object, found {type(value).__name__}", file=str(path), line=line,
                   fix='write each row as an object such as {"messages": [...]}')


_ROW_FIX = "write each row as a flat object such as {\"messages\": [...]}"


def _parse_problem(path: Path, line: int, err: Exception) -> Problem:
    """What json raises beyond JSONDecodeError, as a located problem: an integer longer than Python
    converts (a ValueError naming sys.set_int_max_str_digits) or nesting deeper than the recursion limit."""
    if isinstance(err, RecursionError):
        return Problem(f"the row is nested too deeply to read (lists or objects more than "
                       f"{sys.getrecursionlimit()} levels inside each other)", file=str(path), line=line,
                       fix=_ROW_FIX)
    return Problem(f"a number with more than {sys.get_int_max_str_digits()} digits", file=str(path), line=line,
                   fix="write it as a string (in quotes), or correct it")


def _loads(path: Path, line: int, text: str) -> tuple[Any, Problem | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        return None, _json_error(path, err, line=line)
    except (ValueError, RecursionError) as err:
        return None, _parse_problem(path, line, err)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _first_char(text: str) -> str:
    i = _skip_ws(text, 0)
    return text[i] if i < len(text) else ""


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    """One object per line; collects up to MAX_ROW_PROBLEMS bad lines and raises after the good ones."""
    problems: list[Problem] = []
    bad = 0
    # split('\n') rather than splitlines(): splitlines also breaks on \x1c-\x1e and U+2028 inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        value, problem = _loads(path, number, line)
        if problem:
            bad += 1
            if len(problems) < MAX_ROW_PROBLEMS:
                problems.append(problem)
            continue
        if not isinstance(value, dict):
            bad += 1
            if len(problems) < MAX_ROW_PROBLEMS:
                problems.append(_not_object(path, number, value))
            continue
        yield number, value
    if problems:
        if bad > len(problems):
            problems.append(Problem(f"... and {bad - len(problems)} more malformed lines", file=str(path)))
        raise UserError(problems)


def _json_array_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    """A JSON list of objects, decoded one element at a time so each row knows the line it starts on."""
    decoder = json.JSONDecoder()
    i = _skip_ws(text, 0)
    if i == len(text):
        return
    if text[i] != "[":
        err = json.JSONDecodeError("expected a list of objects starting with '['", text, i)
        raise UserError([_json_error(path, err)])
    line, counted = 1, 0
    i = _skip_ws(text, i + 1)
    if i < len(text) and text[i] == "]":
        _check_trailing(path, text, i + 1)
        return
    while True:
        line += text.count("\n", counted, i)
        counted = i
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise UserError([_json_error(path, err)]) from None
        except (ValueError, RecursionError) as err:
            raise UserError([_parse_problem(path, line, err)]) from None
        if not isinstance(value, dict):
            raise UserError([_not_object(path, line, value)])
        yield line, value
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
        elif i < len(text) and text[i] == "]":
            _check_trailing(path, text, i + 1)
            return
        else:
            err = json.JSONDecodeError("Expecting ',' delimiter", text, i)
            raise UserError([_json_error(path, err)])


def _check_trailing(path: Path, text: str, i: int) -> None:
    i = _skip_ws(text, i)
    if i < len(text):
        raise UserError([_json_error(path, json.JSONDecodeError("Extra data", text, i))])


# pandas, which ms-swift reads csv with, has no cell size limit; the csv module's default (128 KiB) would
# refuse a long conversation. 2**31 - 1: the most every platform's C long holds.
CSV_FIELD_LIMIT = 2**31 - 1


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    # ms-swift loads csv with na_filter=False: empty cells stay "" (not NaN), as here.
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.DictReader(io.StringIO(text, newline=""))
    index = 0
    try:
        for index, row in enumerate(reader):
            # Line = index + 2 (the header is line 1); exact unless a quoted cell spans lines.
            yield index + 2, {k: v for k, v in row.items() if k is not None}
    except csv.Error as err:
        raise UserError([Problem(f"malformed CSV: {err}", file=str(path), line=reader.line_num or None,
                                 fix="correct the CSV there (a quote inside a cell is written twice: \"\")")]) \
            from None


def _parquet_rows(path: Path, kind: str) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq  # lazy: only parquet needs it (it ships with `datasets`)

    problem = userfiles.check_regular(path, kind)  # pyarrow would open a FIFO, and wait
    if problem:
        raise UserError([problem])
    try:
        parquet = pq.ParquetFile(path)
        index = 0
        for batch in parquet.iter_batches():
            for row in batch.to_pylist():
                index += 1
                yield index, row
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError([Problem(f"cannot read parquet: {err}", file=str(path),
                                 fix="check that the file is a complete parquet file")]) from None


def _read_text(path: Path, kind: str = "dataset file") -> str:
    try:
        return userfiles.read_text(path, kind)
    except OSError as err:
        raise UserError([Problem(f"cannot read the file: {err.strerror or err}", file=str(path),
                                 fix="check the path and its permissions")]) from None


def read_rows(path: Path, kind: str = "dataset file") -> Iterator[tuple[int, dict]]:
    """(line, row) pairs of a .json, .jsonl, .csv or .parquet file.

    Lines: .jsonl exact (blank lines skipped); .json the line each object starts on; .csv row index + 2
    (after the header); .parquet row index + 1. Malformed JSON raises UserError naming file:line:column;
    in .jsonl the error comes after the good rows, so that it can list several bad lines at once.
    `kind` (a key of userfiles.LIMITS) names the file in errors and sets the most it may hold.
    """
    path = Path(path)
    suffix = path.suffix
    if suffix == ".parquet":
        yield from _parquet_rows(path, kind)
        return
    if suffix not in (".json", ".jsonl", ".csv"):
        raise UserError([_extension_problem(path)])
    text = _read_text(path, kind)
    if suffix == ".csv":
        yield from _csv_rows(path, text)
    elif suffix == ".jsonl" or _first_char(text) == "{":
        # ms-swift's json loader also reads JSON Lines from a .json file.
        yield from _jsonl_rows(path, text)
    else:
        yield from _json_array_rows(path, text)


def _extension_problem(path: Path) -> Problem:
    shown = ", ".join(SUPPORTED_EXTENSIONS)
    if path.suffix.lower() in SUPPORTED_EXTENSIONS:
        fix = f"rename it to end in '{path.suffix.lower()}' (ms-swift matches the extension case-sensitively)"
    else:
        fix = f"convert it to one of: {shown}"
    return Problem(f"unsupported dataset file type '{path.suffix or '(none)'}'; supported: {shown}",
                   file=str(path), fix=fix)


