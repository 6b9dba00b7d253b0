"""Local datasets checked the way ms-swift will read them, and the identity (self-cognition) data.

ms-swift 4.6 picks a preprocessor from a local file's column names and silently drops rows it cannot
use (swift/dataset/preprocessor/core.py, `AutoPreprocessor`); when every row goes, the run crashes much
later with an unrelated error. `inspect_dataset` does the same column matching and row checks up front,
so a recipe fails with file:line:column instead.

Pure Python on purpose: no torch, no ms-swift import (importing ms-swift takes seconds and patches
transformers). Token counting uses the `tokenizers` package directly.
"""
from __future__ import annotations

import ast
import csv
import dataclasses
import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import jinja2
import jinja2.meta

from swiftkit.errors import Problem, UserError, did_you_mean, nearby_name

# --- What ms-swift 4.6 recognises, copied from swift/dataset/preprocessor/core.py -----------------
# AutoPreprocessor chooses MessagesPreprocessor when one of these columns exists (exact, case-sensitive
# names); MessagesPreprocessor then renames it to `messages`.
MESSAGES_COLUMNS: tuple[str, ...] = ("messages", "conversation", "conversations")
# ResponsePreprocessor renames these (matched case-insensitively) to `query` / `response` / `system`.
# Note 'input' and 'instruction' are query synonyms and 'output', 'text', 'content', 'solution' are
# response synonyms, so {input, output} or {prompt, completion} are query/response data.
QUERY_SYNONYMS: tuple[str, ...] = ("query", "prompt", "input", "instruction", "question", "problem")
RESPONSE_SYNONYMS: tuple[str, ...] = (
    "response", "answer", "output", "targets", "target", "answer_key", "answers", "solution",
    "text", "completion", "content",
)
SYSTEM_SYNONYMS: tuple[str, ...] = ("system", "system_prompt")
# AutoPreprocessor uses AlpacaPreprocessor only when both of these exist (exact names).
ALPACA_COLUMNS: tuple[str, ...] = ("instruction", "input")
# Key and role spellings MessagesPreprocessor normalises inside each message.
ROLE_KEYS: tuple[str, ...] = ("role", "from")
CONTENT_KEYS: tuple[str, ...] = ("content", "value")
USER_ROLES: tuple[str, ...] = ("user", "human")
ASSISTANT_ROLES: tuple[str, ...] = ("assistant", "gpt", "bot")
TOOL_CALL_ROLES: tuple[str, ...] = ("tool_call", "function_call")
TOOL_RESPONSE_ROLES: tuple[str, ...] = ("tool", "tool_response", "function_response", "observation", "observations")

FORMATS: tuple[str, ...] = ("messages", "sharegpt", "alpaca", "query_response")
# ms-swift picks the loader from the extension, case-sensitively (swift/dataset/loader.py).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".json", ".jsonl", ".csv", ".parquet")
ACCEPTED_COLUMN_SETS = (
    "messages (list of {role, content}); conversations or conversation (list of {from, value}); "
    "instruction + output (+ input); a query column (" + "/".join(QUERY_SYNONYMS) + ") "
    "with a response column (" + "/".join(RESPONSE_SYNONYMS) + ")"
)
# Row-level problems shown per file: enough to see the pattern, not a wall of text.
MAX_ROW_PROBLEMS = 5

# Chat-template tokens each message adds around its content. ChatML (Qwen and most templates
# ms-swift uses for LoRA targets) wraps a message as `<|im_start|>` + role + `\n` ... `<|im_end|>` + `\n`:
# 5 tokens. A template's default system prompt is not counted, so counts are a slight underestimate.
PER_MESSAGE_OVERHEAD = 5
# Separates messages in `row_text`: a control character that real text does not contain, so the
# counter can add the per-message overhead from the text alone.
MESSAGE_SEP = "\x1e"

IDENTITY_FIELDS: tuple[str, ...] = ("id", "lang", "kind", "split", "query", "response")
IDENTITY_LANGS: tuple[str, ...] = ("zh", "en")
IDENTITY_KINDS: tuple[str, ...] = (
    "name", "author", "intro", "base_model", "online", "capability", "limits", "greeting",
)
IDENTITY_SPLITS: tuple[str, ...] = ("train", "heldout")
IDENTITY_VARIABLES: frozenset[str] = frozenset({"name", "author"})
IDENTITY_TRAIN_FILE = "identity.train.jsonl"
IDENTITY_PROBES_FILE = "identity.probes.jsonl"


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


@dataclass(frozen=True)
class IdentityFiles:
    train_path: Path
    probes_path: Path
    train_rows: int
    heldout_rows: int
    sha256: str


@dataclass(frozen=True)
class _Columns:
    """Which source column ms-swift reads for each role of a detected format."""

    format: str
    messages: str | None = None
    query: str | None = None
    response: str | None = None
    system: str | None = None
    instruction: str | None = None
    input: str | None = None

    def used(self) -> set[str]:
        return {c for c in (self.messages, self.query, self.response, self.system,
                            self.instruction, self.input) if c}


class _Drop(Exception):
    """A row ms-swift would drop; the message is the reason shown to the user."""


# --- Column detection -----------------------------------------------------------------------------
def _matches(columns: Iterable[str], synonyms: Iterable[str]) -> list[str]:
    lower = {c.lower(): c for c in columns}
    return [lower[s] for s in synonyms if s in lower]


def _pick(columns: set[str], target: str, synonyms: Iterable[str]) -> str | None:
    """The column ms-swift reads as `target`.

    safe_rename_columns renames a synonym only when it is the only one present; with two or more it
    renames none of them, so only a column already named `target` survives (e.g. `prompt` and
    `question` together and no `query`: ms-swift finds no query at all).
    """
    found = _matches(columns, synonyms)
    if len(found) == 1:
        return found[0]
    return target if target in columns else None


def _resolve(columns: set[str]) -> _Columns | None:
    system = _pick(columns, "system", SYSTEM_SYNONYMS)
    present = [c for c in MESSAGES_COLUMNS if c in columns]
    if present:
        fmt = "messages" if "messages" in present else "sharegpt"
        return _Columns(fmt, messages=_pick(columns, "messages", MESSAGES_COLUMNS), system=system)
    response = _pick(columns, "response", RESPONSE_SYNONYMS)
    if all(c in columns for c in ALPACA_COLUMNS):
        # AlpacaPreprocessor reads instruction/input/output directly, whatever else is there.
        response = "output" if "output" in columns else response
        if response is None:
            return None
        return _Columns("alpaca", instruction="instruction", input="input", response=response, system=system)
    query = _pick(columns, "query", QUERY_SYNONYMS)
    if query is None or response is None:
        return None
    fmt = "alpaca" if (query, response) == ("instruction", "output") else "query_response"
    if fmt == "alpaca":
        return _Columns(fmt, instruction=query, response=response, system=system)
    return _Columns(fmt, query=query, response=response, system=system)


def detect_format(columns: set[str]) -> str | None:
    """'messages', 'sharegpt', 'alpaca' or 'query_response', as ms-swift would read these columns; None
    when ms-swift would find no usable conversation in them."""
    cols = _resolve(set(columns))
    return cols.format if cols else None


def _ambiguities(columns: set[str]) -> list[str]:
    """Synonym clashes that make ms-swift ignore columns (see `_pick`)."""
    notes = []
    for target, synonyms in (("messages", MESSAGES_COLUMNS), ("query", QUERY_SYNONYMS),
                             ("response", RESPONSE_SYNONYMS), ("system", SYSTEM_SYNONYMS)):
        found = _matches(columns, synonyms)
        if len(found) > 1:
            kept = f"only '{target}' is used" if target in columns else "ms-swift uses none of them"
            notes.append(f"columns {', '.join(repr(c) for c in found)} all mean '{target}': {kept}")
    return notes


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


# --- Rows -> messages -----------------------------------------------------------------------------
def _norm_role(role: Any) -> Any:
    if not isinstance(role, str):
        return role
    r = role.replace("-", "_")
    if role in USER_ROLES:
        return "user"
    if role in ASSISTANT_ROLES:
        return "assistant"
    if r in TOOL_CALL_ROLES:
        return "tool_call"
    if r in TOOL_RESPONSE_ROLES:
        return "tool_response"
    return role


def _first_value(message: dict, keys: Iterable[str]) -> Any:
    for k in keys:
        if k in message:
            return message[k]
    return None


def _load_messages(raw: Any) -> list:
    # ms-swift repairs a messages column stored as a string (csv) with json.loads, then literal_eval.
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            try:
                raw = ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                raise _Drop("messages is a string that is not a JSON list") from None
    if raw is None:
        raise _Drop("messages is missing")
    if not isinstance(raw, list):
        raise _Drop(f"messages is a {type(raw).__name__}, not a list")
    if not raw:
        raise _Drop("messages is empty")
    if not all(isinstance(m, dict) for m in raw):
        raise _Drop("every message must be an object with role and content")
    return raw


def _pairs_to_messages(raw: list[dict]) -> list[dict]:
    """Old ShareGPT rows: [{"human": q, "gpt": r}, ...] (no role/from keys)."""
    out = []
    for m in raw:
        user, assistant = _first_value(m, USER_ROLES), _first_value(m, ASSISTANT_ROLES)
        if user is None or assistant is None:
            raise _Drop("a message has neither role/from nor user/assistant keys")
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return out


def _messages_row(row: dict, cols: _Columns) -> list[dict]:
    if cols.messages is None:
        raise _Drop("no messages column ms-swift can use (several columns mean 'messages')")
    raw = _load_messages(row.get(cols.messages))
    first = raw[0]
    if not any(k in first for k in ROLE_KEYS + CONTENT_KEYS):
        messages = _pairs_to_messages(raw)
    else:
        messages = [{"role": _norm_role(_first_value(m, ROLE_KEYS)), "content": _first_value(m, CONTENT_KEYS)}
                    for m in raw]
    return _with_system(messages, row, cols)


def _with_system(messages: list[dict], row: dict, cols: _Columns) -> list[dict]:
    system = row.get(cols.system) if cols.system else None
    if system in (None, "") or (messages and messages[0]["role"] == "system"):
        return messages
    if not isinstance(system, str):
        raise _Drop(f"system is a {type(system).__name__}, not a string")
    return [{"role": "system", "content": system}] + messages


def _text_field(row: dict, column: str | None, what: str) -> str:
    value = row.get(column) if column else None
    if isinstance(value, (list, tuple)) and what == "response":
        # ms-swift takes the first of several responses (a random one with RANDOM_DATASET_RESPONSE).
        if not value:
            raise _Drop(f"empty {what} list (column '{column}')")
        value = value[0]
    if value is None:
        raise _Drop(f"missing {what} (column '{column}')" if column else f"missing {what}")
    if not isinstance(value, str):
        raise _Drop(f"{what} is a {type(value).__name__}, not a string (column '{column}')")
    if not value.strip():
        raise _Drop(f"empty {what} (column '{column}')")
    return value


def _alpaca_query(row: dict, cols: _Columns) -> str:
    instruction = row.get(cols.instruction) if cols.instruction else None
    input_ = row.get(cols.input) if cols.input else None
    for value, name in ((instruction, cols.instruction), (input_, cols.input)):
        if value is not None and not isinstance(value, str):
            raise _Drop(f"{name} is a {type(value).__name__}, not a string")
    # AlpacaPreprocessor.concat_inst_input: both -> "instruction\ninput", else whichever is set.
    query = f"{instruction}\n{input_}" if instruction and input_ else (instruction or input_)
    if not query or not query.strip():
        raise _Drop("empty instruction and input")
    return query


def _to_messages(row: dict, cols: _Columns) -> list[dict]:
    if cols.format in ("messages", "sharegpt"):
        messages = _messages_row(row, cols)
    else:
        query = _alpaca_query(row, cols) if cols.format == "alpaca" else _text_field(row, cols.query, "query")
        response = _text_field(row, cols.response, "response")
        messages = _with_system([{"role": "user", "content": query},
                                 {"role": "assistant", "content": response}], row, cols)
    _check_messages(messages)
    return messages


_KNOWN_ROLES = frozenset({"system", "user", "assistant", "tool_call", "tool_response"})


def _check_messages(messages: list[dict]) -> None:
    """The conversation shapes ms-swift's templates can train on; anything else is dropped."""
    for n, m in enumerate(messages, start=1):
        role, content = m["role"], m["content"]
        if role not in _KNOWN_ROLES:
            raise _Drop(f"message {n} has unknown role {role!r}")
        if content is None:
            raise _Drop(f"message {n} ({role}) has no content")
        if not isinstance(content, str):
            raise _Drop(f"message {n} ({role}): content is a {type(content).__name__}, not a string")
        if role == "system" and n != 1:
            raise _Drop(f"message {n} is a system message; only the first may be")
    turns = [m for m in messages if m["role"] != "system"]
    if not turns:
        raise _Drop("only a system message")
    if turns[0]["role"] != "user":
        raise _Drop(f"conversation starts with '{turns[0]['role']}', not 'user'")
    if turns[-1]["role"] != "assistant":
        raise _Drop(f"last message is '{turns[-1]['role']}', not 'assistant' (nothing to train on)")
    if not turns[0]["content"].strip():
        raise _Drop("empty user message")
    if not turns[-1]["content"].strip():
        raise _Drop("empty assistant message")


def _join(messages: list[dict]) -> str:
    return MESSAGE_SEP.join(m["content"] for m in messages if isinstance(m["content"], str))


def row_text(row: dict, fmt: str) -> str:
    """All message text of a row (system, user, assistant), MESSAGE_SEP between messages; "" for a row
    ms-swift would drop. Used for token counting."""
    cols = _resolve(set(row))
    if cols is None or cols.format != fmt:
        return ""
    try:
        return _join(_to_messages(row, cols))
    except _Drop:
        return ""


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


def _unknown_columns(path: Path, key: str | None, columns: set[str]) -> UserError:
    found = ", ".join(sorted(columns)) or "(none)"
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
        notes.append(f"columns not used as conversation text: {', '.join(unused)}")
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


def inspect_dataset(path: Path, *, max_length: int | None = None,
                    count_tokens: Callable[[str], int] | None = None, key: str | None = None) -> DatasetReport:
    """Check a local dataset as ms-swift will read it; UserError (all problems at once) when unusable.

    too_long is None unless both max_length and count_tokens are given; token counts are estimates
    (see PER_MESSAGE_OVERHEAD)."""
    path = Path(path)
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


# --- Identity template ----------------------------------------------------------------------------
def _env() -> jinja2.Environment:
    # StrictUndefined: a misspelt placeholder must fail, not render as "". No autoescape: plain text.
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _template_row_problems(path: Path, line: int, row: dict, seen: dict[str, int]) -> list[Problem]:
    where = {"file": str(path), "line": line}
    problems = []
    for name in row.keys() - set(IDENTITY_FIELDS):
        guess = did_you_mean(name, IDENTITY_FIELDS)
        problems.append(Problem(f"unknown field '{name}'", **where,
                                fix=f"did you mean '{guess}'?" if guess else f"fields: {', '.join(IDENTITY_FIELDS)}"))
    for name in IDENTITY_FIELDS:
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(f"field '{name}' must be a non-empty string", **where))
    for name, allowed in (("lang", IDENTITY_LANGS), ("kind", IDENTITY_KINDS), ("split", IDENTITY_SPLITS)):
        value = row.get(name)
        if isinstance(value, str) and value and value not in allowed:
            problems.append(Problem(f"{name} '{value}' is not allowed", **where,
                                    fix=f"use one of: {', '.join(allowed)}"))
    row_id = row.get("id")
    if isinstance(row_id, str) and row_id in seen:
        problems.append(Problem(f"id '{row_id}' repeats line {seen[row_id]}", **where, fix="give each row its own id"))
    elif isinstance(row_id, str):
        seen[row_id] = line
    for name in ("query", "response"):
        try:
            _env().parse(row.get(name) or "")
        except jinja2.TemplateSyntaxError as err:
            problems.append(Problem(f"{name}: template syntax error: {err.message}", **where))
    return problems


def _template_rows(path: Path) -> list[tuple[int, dict]]:
    path = Path(path)
    if not path.is_file():
        raise UserError([Problem("identity template not found", file=str(path),
                                 fix="point at a .jsonl template such as datasets/self_cognition.jsonl")])
    if path.suffix != ".jsonl":
        raise UserError([Problem("the identity template must be a .jsonl file", file=str(path))])
    rows = list(read_rows(path))
    seen: dict[str, int] = {}
    problems = [p for line, row in rows for p in _template_row_problems(path, line, row, seen)]
    if not rows:
        problems.append(Problem("the identity template has no rows", file=str(path)))
    if problems:
        raise UserError(problems)
    return rows


def load_identity_template(path: Path) -> list[dict]:
    """The template's rows, each validated (fields, allowed lang/kind/split, unique ids, jinja syntax)."""
    return [row for _, row in _template_rows(path)]


def _check_identity_values(langs: set[str], name: dict[str, str], author: dict[str, str]) -> None:
    problems = []
    for what, values in (("name", name), ("author", author)):
        for lang in sorted(langs):
            value = values.get(lang)
            if not isinstance(value, str) or not value.strip():
                problems.append(Problem(f"no {lang} form given for the identity {what}", key=f"{what}.{lang}",
                                        fix=f"set {what}.{lang} (the template has {lang} rows)"))
    if problems:
        raise UserError(problems)


def _render_field(path: Path, line: int, row: dict, name: str, context: dict[str, str]) -> str:
    env = _env()
    source = row[name]
    undefined = jinja2.meta.find_undeclared_variables(env.parse(source)) - context.keys()
    if undefined:
        names = ", ".join(sorted(undefined))
        raise UserError([Problem(f"{name}: undefined placeholder {names}", file=str(path), line=line,
                                 fix="use only {{ name }} and {{ author }}")])
    try:
        return env.from_string(source).render(**context)
    except jinja2.UndefinedError as err:  # e.g. {{ name.first }}: an attribute a string lacks
        raise UserError([Problem(f"{name}: {err.message}", file=str(path), line=line,
                                 fix="use only {{ name }} and {{ author }}")]) from None


def _render_rows(path: Path, name: dict[str, str], author: dict[str, str]) -> list[dict]:
    rows = _template_rows(path)
    _check_identity_values({row["lang"] for _, row in rows}, name, author)
    rendered = []
    for line, row in rows:
        context = {"name": name[row["lang"]], "author": author[row["lang"]]}
        out = dict(row)
        out["query"] = _render_field(path, line, row, "query", context)
        out["response"] = _render_field(path, line, row, "response", context)
        rendered.append(out)
    return rendered


def _jsonl(rows: Iterable[dict]) -> bytes:
    # json.dumps escapes quotes and backslashes in rendered names; never substitute into JSON text.
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def write_atomic(target: Path, data: bytes) -> None:
    """Temp file in the same directory + os.replace: readers see the old file or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_identity(template_path: Path, out_dir: Path, *, name: dict[str, str],
                    author: dict[str, str]) -> IdentityFiles:
    """Render the identity template for one name/author ('zh'/'en' forms) into a training file (train
    rows, ms-swift messages format) and a probes file (all rows, rendered, for verification)."""
    template_path, out_dir = Path(template_path), Path(out_dir)
    rows = _render_rows(template_path, name, author)
    train_path, probes_path = out_dir / IDENTITY_TRAIN_FILE, out_dir / IDENTITY_PROBES_FILE
    for target in (train_path, probes_path):
        if target.resolve() == template_path.resolve():
            raise UserError([Problem("the output would overwrite the identity template", file=str(template_path),
                                     fix="render into another directory")])
    train = [r for r in rows if r["split"] == "train"]
    train_bytes = _jsonl({"messages": [{"role": "user", "content": r["query"]},
                                       {"role": "assistant", "content": r["response"]}]} for r in train)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(train_path, train_bytes)
    write_atomic(probes_path, _jsonl({k: r[k] for k in IDENTITY_FIELDS} for r in rows))
    return IdentityFiles(train_path=train_path, probes_path=probes_path, train_rows=len(train),
                         heldout_rows=len(rows) - len(train), sha256=hashlib.sha256(train_bytes).hexdigest())
