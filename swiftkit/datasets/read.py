"""Reading a local dataset file the way ms-swift's loaders do (JSON, JSON Lines, CSV, parquet), every
row with its line number, and every way a file can be unreadable as a located error."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator


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


def _decode(path: Path, data: bytes) -> str:
    try:
        # utf-8-sig: a leading BOM (common from Windows editors) is dropped instead of failing json.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError([Problem(f"not UTF-8 text: {err.reason} at byte {err.start}", file=str(path), line=line,
                                 fix="save the file as UTF-8")]) from None


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
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            bad += 1
            if len(problems) < MAX_ROW_PROBLEMS:
                problems.append(_json_error(path, err, line=number))
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
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as err:
            raise UserError([_json_error(path, err)]) from None
        line += text.count("\n", counted, i)
        counted = i
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


def _csv_rows(path: Path, text: str) -> Iterator[tuple[int, dict]]:
    # ms-swift loads csv with na_filter=False: empty cells stay "" (not NaN), as here.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for index, row in enumerate(reader):
        # Line = index + 2 (the header is line 1); exact unless a quoted cell spans lines.
        yield index + 2, {k: v for k, v in row.items() if k is not None}


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq  # lazy: only parquet needs it (it ships with `datasets`)

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


def _read_text(path: Path) -> str:
    try:
        return _decode(path, path.read_bytes())
    except OSError as err:
        raise UserError([Problem(f"cannot read the file: {err.strerror or err}", file=str(path),
                                 fix="check the path and its permissions")]) from None


def read_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(line, row) pairs of a .json, .jsonl, .csv or .parquet file.

    Lines: .jsonl exact (blank lines skipped); .json the line each object starts on; .csv row index + 2
    (after the header); .parquet row index + 1. Malformed JSON raises UserError naming file:line:column;
    in .jsonl the error comes after the good rows, so that it can list several bad lines at once.
    """
    path = Path(path)
    suffix = path.suffix
    if suffix == ".parquet":
        yield from _parquet_rows(path)
        return
    if suffix not in (".json", ".jsonl", ".csv"):
        raise UserError([_extension_problem(path)])
    text = _read_text(path)
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


