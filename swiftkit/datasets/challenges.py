"""Challenge and multi-turn identity probes (the bundled datasets/identity_challenges.jsonl): the user insists
the model is really another one, or asks who it is after unrelated turns. Checked row by row, every problem
at once, and rendered with the recipe's name and author into scorecard probe rows that carry their turns."""
from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.meta

from swiftkit import paths, userfiles
from swiftkit.errors import Problem, UserError, choice_fix, did_you_mean, quote

from .identity import IDENTITY_LANGS, IDENTITY_VARIABLES, _constructs, _parse, _substitute
from .read import read_rows

CHALLENGE_KINDS: tuple[str, ...] = ("insist", "challenge", "after_turns")
CHALLENGE_FIELDS: tuple[str, ...] = ("id", "kind", "lang", "messages")
# Messages per kind: the question alone; a question, the identity answer and the challenge; two or three
# unrelated exchanges, then the question.
CHALLENGE_TURNS: dict[str, tuple[int, ...]] = {"insist": (1,), "challenge": (3,), "after_turns": (5, 7)}
CHALLENGES_FILE = "identity_challenges.jsonl"
_KIND = "identity template"  # userfiles' size limit and wording: the file is a template of name and author
_TEXT_FIX = "write plain text with {{ name }} and {{ author }} only"
_MESSAGE_FIX = 'write each message as {"role": "user", "content": "..."}, user and assistant taking turns'


def bundled_challenges() -> Path:
    return paths.DATASETS_DIR / CHALLENGES_FILE


def _content_problems(content: object, where: dict, key: str) -> list[Problem]:
    if not isinstance(content, str) or not content.strip():
        return [Problem("content must be a non-empty string", **where, key=key, fix=_MESSAGE_FIX)]
    try:
        tree = _parse(content)
    except jinja2.TemplateSyntaxError as err:
        return [Problem(f"template syntax error: {err.message}", **where, key=key, fix=_TEXT_FIX)]
    except RecursionError:  # {{ ((((...name)))) }} nested past what jinja's parser can follow
        return [Problem("the template is nested too deeply to read", **where, key=key, fix=_TEXT_FIX)]
    constructs = _constructs(tree)
    if constructs:
        return [Problem(f"a challenge holds text and placeholders only; found {', '.join(constructs)}",
                        **where, key=key, fix=_TEXT_FIX)]
    undefined = jinja2.meta.find_undeclared_variables(tree) - IDENTITY_VARIABLES
    if undefined:
        guess = did_you_mean(min(undefined), IDENTITY_VARIABLES)
        return [Problem(f"undefined placeholder {', '.join(sorted(undefined))}", **where, key=key,
                        fix=(f"did you mean '{{{{ {guess} }}}}'? " if guess else "") + "use only {{ name }} and "
                            "{{ author }}")]
    return []


def _message_problems(messages: object, where: dict, kind: object) -> list[Problem]:
    if not isinstance(messages, list) or not messages:
        return [Problem("messages must be a non-empty list", **where, key="messages", fix=_MESSAGE_FIX)]
    problems = []
    for i, message in enumerate(messages):
        key, due = f"messages[{i}]", ("user", "assistant")[i % 2]
        if not isinstance(message, dict):
            problems.append(Problem(f"a message must be an object, found {type(message).__name__}", **where,
                                    key=key, fix=_MESSAGE_FIX))
            continue
        for extra in sorted(message.keys() - {"role", "content"}):
            problems.append(Problem(f"unknown field {quote(extra)}", **where, key=f"{key}.{extra}",
                                    fix="a message holds role and content only"))
        if message.get("role") != due:
            found = f"role {quote(message['role'])}" if "role" in message else "no role"
            problems.append(Problem(f"{found} where the {due} turn is due", **where,
                                    key=f"{key}.role", fix="start with the user and alternate user and assistant "
                                                           "(no system messages)"))
        problems += _content_problems(message.get("content"), where, f"{key}.content")
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        problems.append(Problem("the last message is an assistant turn; a probe ends with the user's question",
                                **where, key=f"messages[{len(messages) - 1}]",
                                fix="end with the user turn whose answer is scored"))
    elif isinstance(kind, str) and kind in CHALLENGE_TURNS and len(messages) not in CHALLENGE_TURNS[kind]:
        wanted = " or ".join(map(str, CHALLENGE_TURNS[kind])) + (" message" if kind == "insist" else " messages")
        problems.append(Problem(f"a row of kind '{kind}' has {len(messages)} messages; it takes {wanted}",
                                **where, key="messages", fix=f"give it {wanted}, or change its kind"))
    return problems


def _row_problems(path: Path, line: int, row: dict, seen: dict[str, int]) -> list[Problem]:
    where = {"file": str(path), "line": line}
    problems = []
    for extra in sorted(row.keys() - set(CHALLENGE_FIELDS)):
        problems.append(Problem(f"unknown field {quote(extra)}", **where, key=extra,
                                fix=choice_fix(extra, CHALLENGE_FIELDS, "the fields")))
    for key, allowed in (("id", None), ("kind", CHALLENGE_KINDS), ("lang", IDENTITY_LANGS)):
        value = row.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(f"field '{key}' must be a non-empty string", **where, key=key,
                                    fix=f"use one of: {', '.join(allowed)}" if allowed else "give each row an id"))
        elif allowed and value not in allowed:
            problems.append(Problem(f"{key} {quote(value)} is not allowed", **where, key=key,
                                    fix=choice_fix(value, allowed)))
    row_id = row.get("id")
    if isinstance(row_id, str) and row_id in seen:
        problems.append(Problem(f"id {quote(row_id)} repeats line {seen[row_id]}", **where, key="id",
                                fix="give each row its own id"))
    elif isinstance(row_id, str):
        seen[row_id] = line
    return problems + _message_problems(row.get("messages"), where, row.get("kind"))


def _checked_rows(path: Path) -> list[tuple[int, dict]]:
    problem = userfiles.check_regular(path, _KIND)  # a FIFO or a device is refused before it is opened
    if problem:
        raise UserError([problem])
    if not path.is_file():
        raise UserError([Problem("identity challenge file not found", file=str(path),
                                 fix=f"point at a .jsonl file such as datasets/{CHALLENGES_FILE}")])
    if path.suffix != ".jsonl":
        raise UserError([Problem("the identity challenge file must be a .jsonl file", file=str(path),
                                 fix="one JSON object per line, in a file whose name ends in .jsonl")])
    rows, problems, seen = [], [], {}
    try:
        for line, row in read_rows(path, _KIND):
            rows.append((line, row))
            problems += _row_problems(path, line, row, seen)
    except UserError as err:  # malformed lines, raised after the good ones: reported with theirs
        problems += err.problems
    if not rows and not problems:
        problems.append(Problem("the identity challenge file has no rows", file=str(path),
                                fix='one JSON object per line: {"id": ..., "kind": ..., "lang": ..., '
                                    '"messages": [...]}'))
    if problems:
        raise UserError(problems)
    return rows


def load_challenges(path: Path, name: dict[str, str], author: dict[str, str]) -> list[dict]:
    """The file's rows, every one checked, rendered with the identity of its language (a language without a
    name or author is skipped), as scorecard probe rows: `query` is the last user turn, `messages` all of them."""
    path = Path(path)
    out = []
    for line, row in _checked_rows(path):
        context = {"name": name.get(row["lang"]), "author": author.get(row["lang"])}
        if not all(isinstance(v, str) and v.strip() for v in context.values()):
            continue
        messages = []
        for i, message in enumerate(row["messages"]):
            try:
                content = _substitute(_parse(message["content"]), context)
            except ValueError as err:  # a node that is not text or a placeholder: never evaluated
                raise UserError([Problem(str(err), file=str(path), line=line, key=f"messages[{i}].content",
                                         fix=_TEXT_FIX)]) from None
            messages.append({"role": message["role"], "content": content})
        out.append({"id": row["id"], "split": "challenge", "kind": row["kind"], "lang": row["lang"],
                    "query": messages[-1]["content"], "messages": messages, "expected": "", "expect": [],
                    "reject": []})
    return out
