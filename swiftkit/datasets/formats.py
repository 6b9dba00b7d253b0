"""What ms-swift 4.6 reads from a local dataset: the column sets of its preprocessors, and how a row
becomes the messages it trains on (or is dropped, with the reason)."""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any, Iterable

from swiftkit.errors import quote, shown



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

# Separates messages in `row_text`: a control character that real text does not contain, so the
# counter can add the per-message overhead from the text alone.
MESSAGE_SEP = "\x1e"


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
            notes.append(f"columns {', '.join(quote(c) for c in found)} all mean '{target}': {kept}")
    return notes



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
            raise _Drop(f"empty {what} list (column {quote(column)})")
        value = value[0]
    if value is None:
        raise _Drop(f"missing {what} (column {quote(column)})" if column else f"missing {what}")
    if not isinstance(value, str):
        raise _Drop(f"{what} is a {type(value).__name__}, not a string (column {quote(column)})")
    if not value.strip():
        raise _Drop(f"empty {what} (column {quote(column)})")
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
            raise _Drop(f"message {n} has unknown role {quote(role)}")
        if content is None:
            raise _Drop(f"message {n} ({shown(role)}) has no content")
        if not isinstance(content, str):
            raise _Drop(f"message {n} ({shown(role)}): content is a {type(content).__name__}, not a string")
        if role == "system" and n != 1:
            raise _Drop(f"message {n} is a system message; only the first may be")
    turns = [m for m in messages if m["role"] != "system"]
    if not turns:
        raise _Drop("only a system message")
    if turns[0]["role"] != "user":
        raise _Drop(f"conversation starts with {quote(turns[0]['role'])}, not 'user'")
    if turns[-1]["role"] != "assistant":
        raise _Drop(f"last message is {quote(turns[-1]['role'])}, not 'assistant' (nothing to train on)")
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


