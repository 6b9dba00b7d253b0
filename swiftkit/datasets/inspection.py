"""`inspect_dataset`: a local dataset checked as ms-swift will read it (format, rows it would drop,
rows longer than max_length), all problems at once with file:line; and a token counter."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


from swiftkit.errors import Problem, UserError, nearby_name, quotes_are_hidden, quotes_hidden, shown as shown_name

from .formats import (ACCEPTED_COLUMN_SETS, ALPACA_COLUMNS, MAX_ROW_PROBLEMS, MESSAGE_SEP, SUPPORTED_EXTENSIONS,
                      _ambiguities, _Columns, _Drop, _join, _resolve, _to_messages)
from .read import _extension_problem, _first_char, _read_text, read_rows


# Chat-template tokens each message adds around its content. ChatML (Qwen and most templates
# ms-swift uses for LoRA targets) wraps a message as `<|im_start|>` + role + `\n` ... `<|im_end|>` + `\n`:
# 5 tokens. A template's default system prompt is not counted, so counts are a slight underestimate.
PER_MESSAGE_OVERHEAD = 5


# --- Reports --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatasetReport:
    path: Path
    format: str
    rows: int
    usable_rows: int
    dropped: list[tuple[int, str]]
    too_long: int | None
    sha256: str
    notes: list[str] = field(default_factory=list)




# --- Tokens ---------------------------------------------------------------------------------------
def token_counter(model_dir: Path) -> Callable[[str], int] | None:
    """A token counter from model_dir/tokenizer.json (fast `tokenizers`, no torch); None without one.

    Counts the tokens of each MESSAGE_SEP-separated message plus PER_MESSAGE_OVERHEAD for its
    chat-template markers."""
    file = Path(model_dir) / "tokenizer.json"
    if not file.is_file():
        return None
    from tokenizers import Tokenizer  # lazy: comes with transformers, but only this needs it

    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as err:  # tokenizers raises its own Exception subclass with the parse error
        raise UserError([Problem(f"cannot load tokenizer: {err}", file=str(file),
                                 fix="replace tokenizer.json with the model's original file")]) from None

    def count(text: str) -> int:
        parts = text.split(MESSAGE_SEP)
        encodings = tokenizer.encode_batch(parts, add_special_tokens=False)
        return sum(len(e.ids) for e in encodings) + PER_MESSAGE_OVERHEAD * len(parts)

    return count


# --- inspect_dataset ------------------------------------------------------------------------------
def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _with_key(err: UserError, key: str | None) -> UserError:
    if key is None:
        return err
    return UserError([dataclasses.replace(p, key=p.key or key) for p in err.problems], headline=err.headline)


def _missing_file(path: Path, key: str | None) -> UserError:
    parent = path.parent
    message = ("dataset file not found (ms-swift would take this path for a ModelScope dataset id "
               "and fail with a hub error)")
    if not parent.is_dir():
        return UserError([Problem(message, file=str(path), key=key, fix=f"directory '{parent}' does not exist either")])
    guess = nearby_name(path)
    if guess:
        fix = f"did you mean '{parent / guess}'?"
    else:
        siblings = sorted(p.name for p in parent.iterdir() if p.is_file())
        data = [s for s in siblings if Path(s).suffix in SUPPORTED_EXTENSIONS][:5]
        fix = f"files in '{parent}': {', '.join(data)}" if data else f"no dataset files in '{parent}'"
    return UserError([Problem(message, file=str(path), key=key, fix=fix)])


def _check_file(path: Path, key: str | None) -> None:
    if not path.exists():
        raise _missing_file(path, key)
    if path.is_dir():
        raise UserError([Problem("is a directory, expected a dataset file", file=str(path), key=key,
                                 fix=f"name a file inside it ({', '.join(SUPPORTED_EXTENSIONS)})")])
    if path.suffix not in SUPPORTED_EXTENSIONS:
        raise UserError([dataclasses.replace(_extension_problem(path), key=key)])


def _row_problems(path: Path, key: str | None, items: list[tuple[int, str]]) -> list[Problem]:
    shown = [Problem(reason, file=str(path), line=line, key=key) for line, reason in items[:MAX_ROW_PROBLEMS]]
    if len(items) > MAX_ROW_PROBLEMS:
        shown.append(Problem(f"... and {len(items) - MAX_ROW_PROBLEMS} more rows like these", file=str(path), key=key))
    return shown


def _column_list(columns: set[str], limit: int = 8) -> str:
    """Column names as an error shows them: each escaped and cut short, at most `shown` of them."""
    names = sorted(columns, key=str)
    if names and quotes_are_hidden():
        return f"{len(names)} (not shown: the file is a link to outside the recipe's folder)"
    text = ", ".join(shown_name(c) for c in names[:limit])
    return text + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _unknown_columns(path: Path, key: str | None, columns: set[str]) -> UserError:
    found = _column_list(columns) or "(none)"
    clashes = _ambiguities(columns)
    message = f"no column set ms-swift knows; found columns: {found}"
    if clashes:
        message += "; " + "; ".join(clashes)
    return UserError([Problem(message, file=str(path), key=key, fix=f"use one of: {ACCEPTED_COLUMN_SETS}")])


def _read_all(path: Path, key: str | None) -> list[tuple[int, dict]]:
    try:
        return list(read_rows(path))
    except UserError as err:
        raise _with_key(err, key) from None


def _column_notes(columns: set[str], cols: _Columns) -> list[str]:
    # Alpaca data always has two query synonyms (instruction, input); AlpacaPreprocessor reads both itself.
    notes = _ambiguities(columns - set(ALPACA_COLUMNS) if cols.input else columns)
    unused = sorted(columns - cols.used())
    if unused:
        notes.append(f"columns not used as conversation text: {_column_list(set(unused))}")
    return notes


def _length_notes(counts: list[tuple[int, int]], max_length: int | None, too_long: int | None) -> list[str]:
    line, longest = max(counts, key=lambda c: c[1])
    notes = [f"longest row: about {longest} tokens (line {line})"]
    if too_long:
        notes.append(f"{too_long} rows are longer than max_length {max_length} and would be dropped by ms-swift")
    return notes


_Conversations = list[tuple[int, list[dict]]]  # (line, messages) of usable rows
_Reasons = list[tuple[int, str]]  # (line, why) of rows ms-swift would drop


def _split_rows(rows: list[tuple[int, dict]], cols: _Columns) -> tuple[_Conversations, _Reasons]:
    kept: _Conversations = []
    dropped: _Reasons = []
    for line, row in rows:
        try:
            kept.append((line, _to_messages(row, cols)))
        except _Drop as reason:
            dropped.append((line, str(reason)))
    return kept, dropped


def _all_dropped(path: Path, key: str | None, total: int, dropped: list[tuple[int, str]]) -> UserError:
    head = Problem(f"all {total} rows would be dropped by ms-swift", file=str(path), key=key,
                   fix="fix the rows below; each needs a non-empty user message followed by a non-empty answer")
    return UserError([head] + _row_problems(path, key, dropped))


def _count_lengths(path: Path, key: str | None, kept: _Conversations, max_length: int | None,
                   count_tokens: Callable[[str], int]) -> tuple[int | None, list[str]]:
    """(too_long, notes); UserError when max_length would drop every usable row."""
    counts = [(line, count_tokens(_join(messages))) for line, messages in kept]
    too_long = None
    if max_length is not None:
        long_rows = [(line, f"about {n} tokens, longer than max_length {max_length}")
                     for line, n in counts if n > max_length]
        too_long = len(long_rows)
        if too_long == len(kept):
            head = Problem(f"every usable row is longer than max_length {max_length}; ms-swift would drop them all",
                           file=str(path), key=key, fix="raise max_length or shorten the rows")
            raise UserError([head] + _row_problems(path, key, long_rows))
    return too_long, _length_notes(counts, max_length, too_long)


def inspect_dataset(path: Path, *, max_length: int | None = None, count_tokens: Callable[[str], int] | None = None,
                    key: str | None = None, root: Path | None = None) -> DatasetReport:
    """Check a local dataset as ms-swift will read it; UserError (all problems at once) when unusable.

    too_long is None unless both max_length and count_tokens are given; token counts are estimates
    (see PER_MESSAGE_OVERHEAD). `root` is the recipe's folder (default: the file's own): a file reached through
    a link to outside it is checked all the same, but its errors quote nothing of its content."""
    path = Path(path)
    if _linked_outside(path, root):
        with quotes_hidden():
            return _inspect(path, max_length, count_tokens, key)
    return _inspect(path, max_length, count_tokens, key)


def _linked_outside(path: Path, root: Path | None) -> bool:
    """Reached through a symlink, and really outside the recipe's folder (a link to /etc/passwd)."""
    real = Path(os.path.realpath(path))
    if real == Path(os.path.abspath(path)):
        return False
    top = Path(os.path.realpath(root if root is not None else Path(os.path.abspath(path)).parent))
    return top != real and top not in real.parents


def _inspect(path: Path, max_length: int | None, count_tokens: Callable[[str], int] | None,
             key: str | None) -> DatasetReport:
    _check_file(path, key)
    rows = _read_all(path, key)
    if not rows:
        raise UserError([Problem("the dataset has no rows", file=str(path), key=key,
                                 fix="add rows, or point the recipe at the right file")])
    columns = set().union(*(row.keys() for _, row in rows))
    cols = _resolve(columns)
    if cols is None:
        raise _unknown_columns(path, key, columns)
    notes = _column_notes(columns, cols)
    if path.suffix == ".json" and _first_char(_read_text(path)) == "{":
        notes.append("this .json file holds JSON Lines (one object per line); ms-swift reads that too")
    kept, dropped = _split_rows(rows, cols)
    if not kept:
        raise _all_dropped(path, key, len(rows), dropped)
    if dropped:
        first_line, first_reason = dropped[0]
        notes.append(f"{len(dropped)} of {len(rows)} rows would be dropped by ms-swift "
                     f"(first: line {first_line}: {first_reason})")
    too_long = None
    if count_tokens is not None:
        too_long, length_notes = _count_lengths(path, key, kept, max_length, count_tokens)
        notes += length_notes
    return DatasetReport(path=path, format=cols.format, rows=len(rows), usable_rows=len(kept), dropped=dropped,
                         too_long=too_long, sha256=_sha256_file(path), notes=notes)


def conversations(path: Path) -> list[list[dict]]:
    """The usable rows of a local dataset (already checked) as the messages ms-swift trains on."""
    rows = _read_all(Path(path), None)
    cols = _resolve(set().union(*(row.keys() for _, row in rows))) if rows else None
    return [messages for _, messages in _split_rows(rows, cols)[0]] if cols else []


