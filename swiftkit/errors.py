"""Every error a user can fix, in one place.

A `Problem` says what is wrong, where (file, line:column, dotted key) and how to fix it.
`UserError` carries one or more problems and maps to exit code 2; the CLI prints the
problems and nothing else (no traceback). Anything else that escapes is a bug or a
runtime failure (exit 1).
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class Problem:
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    key: str | None = None
    fix: str | None = None

    def where(self) -> str:
        parts = []
        if self.file:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            parts.append(loc)
        if self.key:
            parts.append(self.key)
        return ": ".join(parts)

    def format(self) -> str:
        where = self.where()
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return printable(text)


@dataclass
class UserError(Exception):
    """Input the user can correct: exit code 2, message only."""

    problems: list[Problem] = field(default_factory=list)
    headline: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.format())

    @classmethod
    def one(cls, message: str, **where) -> "UserError":
        return cls([Problem(message, **where)])

    def format(self) -> str:
        lines = []
        if self.headline:
            lines.append(self.headline)
        lines.extend(p.format() for p in self.problems)
        return "\n".join(lines)


class DiskSpaceError(UserError):
    """Not enough free disk for a fetched model or a conversion: exit 9, as a full disk in training is."""


def unique(problems: Iterable[Problem]) -> list[Problem]:
    """Drop repeats of the same message about the same key (one cause can surface several times)."""
    seen: set[tuple] = set()
    out = []
    for problem in problems:
        if (problem.key, problem.message) not in seen:
            seen.add((problem.key, problem.message))
            out.append(problem)
    return out


def did_you_mean(word: str, choices: Iterable[str], n: int = 1) -> str | None:
    """The closest choice to `word`, or None when nothing is close."""
    matches = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=0.6)
    return matches[0] if matches else None


def nearby_name(path) -> str | None:
    """A file or dir beside `path` whose name is close to its name: the likely typo'd target."""
    from pathlib import Path

    parent = Path(path).parent
    if not parent.is_dir():
        return None
    return did_you_mean(Path(path).name, [c.name for c in parent.iterdir()])


def choice_fix(word: str, choices: Iterable[str], what: str = "one of") -> str:
    choices = list(choices)
    guess = did_you_mean(word, choices)
    if guess:
        return f"did you mean '{guess}'?"
    shown = ", ".join(map(str, choices[:12])) + (", ..." if len(choices) > 12 else "")
    return f"use {what}: {shown}"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0, 9), *range(11, 32), 127, *range(0x80, 0xA0)]}
# Characters that change how a terminal shows the text around them without showing themselves: bidirectional
# embeddings, overrides and isolates (a path can read "txt.exe" as "exe.txt"), zero-width characters, the
# word joiner, the byte-order mark, the Arabic letter mark.
_INVISIBLE = {c: f"\\u{c:04x}" for c in [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2065),
                                            *range(0x2066, 0x206A), 0xFEFF, 0x061C, 0x180E]}
_ESCAPES = {**_CONTROL, **_INVISIBLE}


def printable(text: str) -> str:
    """Text safe for a terminal: control characters from a user's data (an escape sequence, a NUL, a bell) and
    invisible format characters (bidirectional overrides, zero-width ones) shown escaped, never interpreted;
    newlines and tabs kept."""
    return str(text).translate(_ESCAPES)


QUOTE_LIMIT = 24
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A value read from a user's data, as an error may show it: escaped, in quotes, cut after `limit` characters
    (an error names what it found; it never reproduces a line of unknown content)."""
    if _hidden.get():
        return "(not shown)"
    text = printable(str(value))
    return f"'{text[:limit]}...'" if len(text) > limit else f"'{text}'"


def shown(value: object, limit: int = QUOTE_LIMIT) -> str:
    """As quote(), but a plain name (a column, a role) stays bare, as it reads best in a list."""
    text = str(value)
    return text if _PLAIN.fullmatch(text) and len(text) <= limit and not _hidden.get() else quote(value, limit)


_hidden: "contextvars.ContextVar[bool]" = contextvars.ContextVar("swiftkit_quotes_hidden", default=False)


def quotes_are_hidden() -> bool:
    return _hidden.get()


@contextlib.contextmanager
def quotes_hidden():
    """While active, quote() shows nothing of the data: for a file reached through a link to outside the
    recipe's folder, whose content is not the user's to see in an error (a link to /etc/shadow)."""
    token = _hidden.set(True)
    try:
        yield
    finally:
        _hidden.reset(token)
