"""Pure: shell text -> the `swift sft` command in it, its environment, and its flags.

Part of `swiftkit import` (importer/command.py). Handles what scripts around a training command hold:
`\\`-continuations, comments, redirections, `VAR=value` prefixes and `export`s, wrappers such as
`nohup`, `$VAR` expansion, and integer arithmetic in `$(expr ...)` and `$((...))`.
"""
from __future__ import annotations

import ast
import dataclasses
import operator
import re
import shlex
import sys
from dataclasses import dataclass, field

from swiftkit.errors import UserError, quote
from swiftkit.flags.catalog import REMOVED, RENAMED
from swiftkit.importer.table import PLACEHOLDER

ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.S)
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
REDIRECT = re.compile(r"(?:\d*|&)(?:>>|>&|>|<&|<)")
INTEGER = re.compile(r"[-+]?\d+")
PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
# `$((16 / $N))` and `$(expr 16 / $N)`: integer arithmetic the shell does before ms-swift sees the value
ARITHMETIC = re.compile(r"\$\(\(([^()]*)\)\)|\$\(\s*expr\s+([^()]*)\)")
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")  # `swift sft config.yaml`
# Words before the program that do not change it: wrappers, and shell keywords that start a command
# (`if ...; then swift sft ...`).
WRAPPERS = {"nohup", "time", "exec", "command", "env", "then", "do", "else", "{", "!"}


@dataclass
class SftCommand:
    env: dict[str, str]  # assignments in effect for the command (prefix and earlier `export`s)
    args: list[str]  # the words after `sft`
    variables: dict[str, str] = field(default_factory=dict)  # every assignment, exported or not
    others: int = 0  # further `swift sft` commands in the script (ignored)


# -- shell text -> simple commands --------------------------------------------------------------

def split_commands(text: str) -> list[str]:
    """Shell text -> one string per simple command, quotes intact for shlex.

    Done by hand because shlex's comment handling is not the shell's: it would cut
    `org/name#500` at the '#'. Continuations, comments and redirections are removed;
    newlines, `;`, `|`, `&&`, `||` and `&` end a command."""
    return [command for _, command in split_commands_with_lines(text)]


def split_commands_with_lines(text: str) -> list[tuple[int, str]]:
    """split_commands, each command with the line it starts on (for errors that point into the script)."""
    text = text.replace("\r\n", "\n")
    commands, current, i = [], "", 0
    start, lines = _LineCounter(text), []
    while i < len(text):
        if not current.strip():
            start.at(i)  # the command starts at its first character
        c, word_start = text[i], not current or current[-1] in " \t"
        if c == "\\":
            current += "" if text[i + 1:i + 2] == "\n" else text[i:i + 2]
            i += 2
        elif c in "'\"":
            end = _quote_end(text, i)
            current += text[i:end].replace("\\\n", "") if c == '"' else text[i:end]
            i = end
        elif c == "#" and word_start:
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif word_start and REDIRECT.match(text, i):
            i = _skip_word(text, _skip_blanks(text, REDIRECT.match(text, i).end()))
        elif c in "\n;|&":
            commands.append(current)
            lines.append(start.line)
            current, i = "", i + (2 if text[i:i + 2] in ("&&", "||") else 1)
        else:
            current += c
            i += 1
    commands.append(current)
    lines.append(start.line)
    return [(line, c.strip()) for line, c in zip(lines, commands) if c.strip()]


class _LineCounter:
    """The line of a position in `text`, counted on from the last one asked (positions only grow)."""

    def __init__(self, text: str):
        self.text, self.pos, self.line = text, 0, 1

    def at(self, pos: int) -> None:
        self.line += self.text.count("\n", self.pos, pos)
        self.pos = pos


def _quote_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote == '"':
            i += 2
        elif text[i] == quote:
            return i + 1
        else:
            i += 1
    line = text.count("\n", 0, start) + 1
    raise UserError.one(f"unterminated {quote} quote starting on line {line} of the command",
                        fix="close the quote (a value with spaces needs matching quotes)")


def _skip_blanks(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _skip_word(text: str, i: int) -> int:
    while i < len(text) and text[i] not in " \t\n;|&":
        i = _quote_end(text, i) if text[i] in "'\"" else i + (2 if text[i] == "\\" else 1)
    return i


# -- finding the swift sft command ------------------------------------------------------------------

def find_sft_command(text: str) -> SftCommand:
    """The first `swift sft` of a script, with the environment it runs in."""
    variables: dict[str, str] = {}  # every assignment, for $VAR in flag values
    exported: dict[str, str] = {}  # what child processes (ms-swift) see
    found: list[str] = []
    sft: SftCommand | None = None
    for line, raw in split_commands_with_lines(text):
        try:
            prefix, words = _leading_assignments(_split_words(arithmetic(raw, variables)), variables)
        except UserError as err:  # the script's line, for a script of many
            raise UserError([p if p.line else dataclasses.replace(p, line=line) for p in err.problems]) from None
        if not words or words[0] == "export":
            _assign(prefix, words[1:], variables, exported)
            continue
        words = _strip_wrappers(words, prefix, variables)
        launch = _swift_verb(words)
        found.append(shlex.join(words[:3]) + (" ..." if len(words) > 3 else ""))
        if launch and launch[0] == "sft":
            if sft is None:
                sft = SftCommand({**exported, **prefix}, launch[1], variables={**variables, **prefix})
            else:
                sft.others += 1
    if sft is None:
        raise _no_sft(found)
    return sft


def _split_words(raw: str) -> list[str]:
    try:
        return shlex.split(raw)
    except ValueError as exc:
        raise UserError.one(f"cannot split the command into words: {exc}: {raw[:80]}",
                            fix="check its quotes") from None


def _leading_assignments(words: list[str], variables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """`A=1 B=$A cmd ...` -> ({A: 1, B: 1}, [cmd, ...]); values expanded from earlier assignments."""
    env: dict[str, str] = {}
    while words and ASSIGNMENT.match(words[0]):
        name, value = ASSIGNMENT.match(words[0]).groups()
        env[name] = expand(value, {**variables, **env})
        words = words[1:]
    return env, words


def _assign(prefix: dict[str, str], export: list[str], variables: dict[str, str],
            exported: dict[str, str]) -> None:
    """`A=1` sets a shell variable; `export A=1` and `export A` also hand it to child processes."""
    variables.update(prefix)
    for word in export:
        name, eq, value = word.partition("=")
        if eq:
            variables[name] = expand(value, variables)
        if name in variables:
            exported[name] = variables[name]


def _strip_wrappers(words: list[str], env: dict[str, str], variables: dict[str, str]) -> list[str]:
    # `nohup swift sft ...`, `env A=1 swift sft ...`
    while words and words[0] in WRAPPERS:
        more, words = _leading_assignments(words[1:], variables)
        env.update(more)
    return words


def expand(value: str, variables: dict[str, str], unknown: set[str] | None = None) -> str:
    """`$NAME` and `${NAME}` set earlier in the script -> their values; others are kept as written."""
    def one(match: re.Match) -> str:
        var = match.group(1) or match.group(2)
        if var in variables:
            return variables[var]
        if unknown is not None:
            unknown.add(var)
        return match.group(0)

    return VARIABLE.sub(one, value)


def _swift_verb(words: list[str]) -> tuple[str, list[str]] | None:
    """(verb, its arguments) for `swift VERB`, `python -m swift.cli.main VERB`, `python -m swift.cli.VERB`
    and `python .../swift/cli/VERB.py` (what `swift` itself runs); None for any other command."""
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "swift":
        return (words[1], words[2:]) if len(words) > 1 else ("", [])
    if not PYTHON.match(program):
        return None
    rest = [w for w in words[1:] if w not in ("-u", "-B", "-O", "-OO")]
    if len(rest) >= 2 and rest[0] == "-m" and rest[1].startswith("swift.cli."):
        module = rest[1][len("swift.cli."):]
        return _main_or_verb(module, rest[2:])
    if rest and re.search(r"(^|/)swift/cli/\w+\.py$", rest[0]):
        return _main_or_verb(rest[0].rsplit("/", 1)[-1][:-3], rest[1:])
    return None


def _main_or_verb(module: str, rest: list[str]) -> tuple[str, list[str]]:
    if module == "main":
        return (rest[0], rest[1:]) if rest else ("", [])
    return module, rest


def _no_sft(found: list[str]) -> UserError:
    expected = ("expected a `swift sft ...` command (or `python -m swift.cli.main sft ...`), "
                "optionally after other lines of a script")
    if not found:
        return UserError.one(f"no command found in the input: {expected}",
                             fix="paste the training command, e.g. `swift sft --model Qwen/Qwen2.5-7B-Instruct ...`")
    shown = "; ".join(f"`{f}`" for f in found[:4]) + ("; ..." if len(found) > 4 else "")
    swift = next((f for f in found if f.startswith("swift ") or "swift.cli" in f), None)
    fix = ("swiftkit import reads the training command; a recipe renders infer and export itself"
           if swift else "paste the script or line that runs `swift sft`")
    return UserError.one(f"no `swift sft` command in the input (found {shown}): {expected}", fix=fix)


# -- words -> flags -------------------------------------------------------------------------------

Flags = dict[str, list[str]]


def parse_flags(args: list[str], notes: list[str]) -> Flags:
    """`--name v1 v2`, `--name=v`, `--dash-name` -> {name: [values]}; later repeats win, as in argparse."""
    flags: Flags = {}
    name: str | None = None
    for word in args:
        if word.startswith("--") and len(word) > 2:
            key, eq, value = word[2:].partition("=")
            name = key.replace("-", "_")
            if name in flags:
                notes.append(f"--{name} is given twice; the last one wins (as in ms-swift)")
            flags[name] = [value] if eq else []
        elif name is None and word.lower().endswith(CONFIG_SUFFIXES):
            raise UserError.one(f"`swift sft {word}` reads its options from a config file, which the command "
                                "does not contain", fix=f"paste the options of {word} as flags: "
                                "`swift sft --model ... --dataset ...`")
        elif name is None:
            notes.append(f"dropped {word!r}: `swift sft` takes no positional arguments")
        else:
            flags[name].append(word)
    return flags


def expand_variables(flags: Flags, variables: dict[str, str], notes: list[str]) -> Flags:
    """Flag values with the script's variables filled in; unset ones are kept with a note."""
    unknown: set[str] = set()
    out = {name: [expand(v, variables, unknown) for v in values] for name, values in flags.items()}
    if unknown:
        notes.append(f"kept {', '.join('$' + v for v in sorted(unknown))} verbatim: not set in the script; "
                     "replace with the value")
    return out


def translate_renamed(flags: Flags, notes: list[str]) -> Flags:
    """Old spellings -> ms-swift 4 names (swift_flags.RENAMED); removed flags dropped (REMOVED)."""
    out: Flags = {}
    for name, values in flags.items():
        if name in REMOVED:
            notes.append(f"dropped --{name}: {REMOVED[name]}")
        elif name in RENAMED:
            new, why = RENAMED[name]
            notes.append(why)
            out[new] = values
        else:
            out[name] = values
    return out


def refuse_unreadable(flags: Flags) -> None:
    """Values only the shell (or a person) can fill in: importing them would make a recipe of a guess."""
    for name, values in flags.items():
        for value in values:
            if INTEGER.fullmatch(value) and len(value.lstrip("+-")) > sys.get_int_max_str_digits():
                raise UserError.one(f"--{name} {quote(value)}: a number of {len(value.lstrip('+-'))} digits, "
                                    f"more than Python reads (at most {sys.get_int_max_str_digits()})",
                                    fix="write the value the setting needs")
            if PLACEHOLDER.match(value):
                raise UserError.one(f"--{name} {value} is a placeholder, not a value",
                                    fix=f"replace {value} with the real value, then import again")
            if value.startswith(("$(", "`")):
                raise UserError.one(f"--{name} {quote(value)}: the command substitution is not something the import "
                                    "can evaluate (integer arithmetic of set variables is)",
                                    fix="replace it with the value the shell computes")


# -- $((...)) and $(expr ...) ----------------------------------------------------------------------

# The shell computes in signed 64-bit integers; a value outside them it wraps around, which no setting means.
SHELL_INT = (-2**63, 2**63 - 1)
# A setting's arithmetic is a few names and numbers; this bound keeps hostile text (`1+1+...` a hundred
# thousand times) from costing the parser its stack. (Parentheses inside `$((...))` are not evaluated at all.)
MAX_ARITHMETIC_CHARS = 1000


def _power(a: int, b: int) -> int:
    if b < 0:
        raise ValueError("a negative exponent")  # bash refuses it too
    if abs(a) > 1 and b >= 64:  # beyond 64 bits whatever the base: never build the number
        raise OverflowError
    return a ** b


def _divide(a: int, b: int) -> int:
    # The shell truncates toward zero (C), Python's // floors; int(a / b) would round through a float.
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _remainder(a: int, b: int) -> int:
    return a - b * _divide(a, b)  # the sign of the dividend, as in the shell: $((-7 % 3)) is -1


OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: _divide, ast.FloorDiv: _divide, ast.Mod: _remainder, ast.Pow: _power}


def arithmetic(raw: str, variables: dict[str, str]) -> str:
    """Integer arithmetic of set variables and numbers -> its value, as the shell computes it (integer
    division truncates); anything else is left as written (the importer refuses what it cannot read)."""
    def one(match: re.Match) -> str:
        inner, expr = match.group(1), match.group(2)
        text = expand(inner if inner is not None else expr.replace("\\*", "*"), variables)
        if inner is not None:  # `$((a / b))`: bare names are variables too
            text = re.sub(r"[A-Za-z_]\w*", lambda m: variables.get(m.group(0), m.group(0)), text)
        value = _evaluate(match.group(0), text)
        return match.group(0) if value is None else str(value)

    return ARITHMETIC.sub(one, raw)


def _evaluate(written: str, text: str) -> int | None:
    if not re.fullmatch(r"[\d\s+\-*/%()]+", text):
        return None
    _check_size(written, text)
    try:
        return _node(ast.parse(text.strip(), mode="eval").body)
    except OverflowError:
        raise UserError.one(f"{quote(written)} is beyond the shell's 64-bit integers (the shell would wrap it "
                            "around to another number)", fix="write the value the setting needs") from None
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return None


def _check_size(written: str, text: str) -> None:
    """Refuse, before parsing, arithmetic longer than any setting's."""
    if len(text) > MAX_ARITHMETIC_CHARS:
        raise UserError.one(f"the arithmetic {quote(written)} is {len(text)} characters long (at most "
                            f"{MAX_ARITHMETIC_CHARS}): more than a setting needs", fix="write the value the setting needs")


def _node(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return _in_range(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _in_range(-_node(node.operand) if isinstance(node.op, ast.USub) else _node(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        return _in_range(OPERATORS[type(node.op)](_node(node.left), _node(node.right)))
    raise ValueError("not integer arithmetic")


def _in_range(value: int) -> int:
    # Every step checked, so a chain of multiplications never grows past 64 bits before it is refused.
    if not SHELL_INT[0] <= value <= SHELL_INT[1]:
        raise OverflowError
    return value
