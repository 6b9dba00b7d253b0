"""YAML loading that remembers where every value came from.

Pydantic reports errors by key path; users need file:line:column. We compose the YAML
node tree ourselves and keep a map from key path to the position of its node, so every
error can point at the exact line. Duplicate keys, which PyYAML would silently merge,
are reported too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sys

import yaml

from swiftkit import userfiles
from swiftkit.errors import Problem, UserError

KeyPath = tuple  # of str | int


@dataclass
class YamlDoc:
    data: Any
    file: str
    positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    overridden: set[KeyPath] = field(default_factory=set)  # keys set on the command line (--set)

    def from_command_line(self, path: KeyPath) -> bool:
        return any(tuple(path)[:len(o)] == o for o in self.overridden)

    def source(self, path: KeyPath) -> str:
        return "command line (--set)" if self.from_command_line(path) else self.file

    def where(self, path: KeyPath, *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the value at `path`, else of its nearest parent."""
        if self.from_command_line(path):
            return None, None
        table = self.key_positions if key else self.positions
        path = tuple(path)
        while path:
            if path in table:
                return table[path]
            if path in self.positions:
                return self.positions[path]
            path = path[:-1]
        return self.positions.get((), (None, None))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


# A recipe is a few hundred values: these bounds only stop hostile input (an alias "billion laughs"
# that expands exponentially, nesting that would exhaust the stack) with a clear error.
MAX_VALUES = 50_000
MAX_DEPTH = 40


PLAIN_FIX = "a recipe is a small mapping of settings: write it out plainly"


class _TooBig(Exception):
    def __init__(self, message: str, node: yaml.Node, fix: str = PLAIN_FIX, key: str | None = None):
        super().__init__(message)
        self.node, self.fix, self.key = node, fix, key


def _scalar(node: yaml.Node, loader: yaml.SafeLoader, path: KeyPath) -> Any:
    """A key or scalar value. PyYAML's constructors raise ValueError for a value that matches a type's
    pattern but not its range: an integer longer than Python converts, a date such as 2024-13-45."""
    try:
        return loader.construct_object(node, deep=True)
    except ValueError as exc:
        key = dotted(path) or None
        if "integer string conversion" in str(exc):
            raise _TooBig(f"a number with more than {sys.get_int_max_str_digits()} digits", node,
                          "write the number the setting needs, or quote it if it is text", key) from None
        raise _TooBig(f"cannot read this value: {exc}", node, "correct it, or quote it if it is text", key) from None


# The tags a recipe's values may carry: YAML's plain scalars, lists and mappings. Others (!!binary, !!set,
# !!omap, !!python/object:...) make bytes, sets or objects out of what looks like a setting.
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp",
                                                            "seq", "map", "merge"))


def _check_tag(node: yaml.Node, path: KeyPath) -> None:
    if node.tag not in _PLAIN_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise _TooBig(f"the tag {tag} is not allowed in a recipe", node,
                      "write the value plainly: text, a number, true/false, a list or a mapping",
                      dotted(path) or None)


def _convert(node: yaml.Node, path: KeyPath, doc: YamlDoc, loader: yaml.SafeLoader, problems: list) -> Any:
    _check_tag(node, path)
    if len(path) > MAX_DEPTH:
        raise _TooBig(f"the recipe is nested deeper than {MAX_DEPTH} levels", node)
    if len(doc.positions) >= MAX_VALUES:
        raise _TooBig(f"the recipe expands to more than {MAX_VALUES} values (aliases that repeat aliases?)", node)
    doc.positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict = {}
        for key_node, value_node in node.value:
            _check_tag(key_node, path)
            key = _scalar(key_node, loader, path)
            if isinstance(key, (list, dict)):
                key = str(key)
            if key in out:
                line, col = _mark(key_node)
                problems.append(Problem(f"duplicate key '{key}' (the earlier value would be silently replaced)",
                                        file=doc.file, line=line, column=col, key=dotted(path + (key,)),
                                        fix="keep one of the two entries"))
            doc.key_positions[path + (key,)] = _mark(key_node)
            out[key] = _convert(value_node, path + (key,), doc, loader, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), doc, loader, problems) for i, item in enumerate(node.value)]
    return _scalar(node, loader, path)


def load_yaml(path: Path, text: str | None = None) -> YamlDoc:
    """Parse YAML into plain data plus positions; syntax errors become a UserError with line:column."""
    display = str(path)
    if text is None:
        try:
            # userfiles: a FIFO, a device or a huge file is refused before it is opened, not read forever.
            text = userfiles.read_text(path, "recipe")
        except FileNotFoundError:
            raise UserError.one("recipe file not found", file=display,
                                fix="check the path; `swiftkit presets` lists the bundled recipes") from None
        except OSError as exc:
            raise UserError.one(f"cannot read recipe: {exc}", file=display) from None
    doc = YamlDoc(data=None, file=display)
    problems: list[Problem] = []
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses control characters: a YAMLError below
        node = loader.get_single_node()
        if node is not None:
            doc.data = _convert(node, (), doc, loader, problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        raise UserError.one(f"YAML syntax error: {what}", file=display, line=line, column=col,
                            fix="check indentation and quoting on this line (a ':' or '#' inside a value needs quotes)") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise UserError.one(f"a control character (code {exc.character!r}) YAML does not allow", file=display,
                            line=line, fix="remove it, or write it as an escape inside a double-quoted string") \
            from None
    except yaml.YAMLError as exc:
        raise UserError.one(f"YAML error: {exc}", file=display) from None
    except _TooBig as exc:
        line, col = _mark(exc.node)
        raise UserError.one(str(exc), file=display, line=line, column=col, key=exc.key, fix=exc.fix) from None
    except RecursionError:
        raise UserError.one(f"the recipe is nested too deeply to read (more than {MAX_DEPTH} levels)", file=display,
                            fix=PLAIN_FIX) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise UserError(problems)
    return doc


def dotted(path: KeyPath) -> str:
    """('datasets', 1, 'path') -> 'datasets[1].path'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
