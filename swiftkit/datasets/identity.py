"""The identity (self-cognition) data: the bundled template of questions and answers, checked and
rendered with the recipe's name and author (jinja2) into the run's train and probe files."""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import jinja2
import jinja2.meta
import jinja2.nodes
import jinja2.sandbox

from swiftkit import userfiles
from swiftkit.errors import Problem, UserError, did_you_mean

from .read import read_rows

IDENTITY_FIELDS: tuple[str, ...] = ("id", "lang", "kind", "split", "query", "response")
IDENTITY_LANGS: tuple[str, ...] = ("zh", "en")
IDENTITY_KINDS: tuple[str, ...] = (
    "name", "author", "intro", "base_model", "online", "capability", "limits", "greeting",
)
IDENTITY_SPLITS: tuple[str, ...] = ("train", "heldout")
IDENTITY_VARIABLES: frozenset[str] = frozenset({"name", "author"})
IDENTITY_TRAIN_FILE = "identity.train.jsonl"
IDENTITY_PROBES_FILE = "identity.probes.jsonl"


@dataclass(frozen=True)
class IdentityFiles:
    train_path: Path
    probes_path: Path
    train_rows: int
    heldout_rows: int
    sha256: str



# --- Identity template ----------------------------------------------------------------------------
def _env() -> jinja2.Environment:
    # A template is a file people share. It is only ever parsed, never compiled or run: rendering walks the
    # parsed tree (_substitute), which holds nothing but text and placeholders once _constructs found nothing
    # else. The environment is jinja2's immutable sandbox all the same, should a later change compile one.
    return jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                                         keep_trailing_newline=True)


_ENV = _env()


@functools.lru_cache(maxsize=8192)
def _parse(source: str) -> jinja2.nodes.Template:
    """The parsed field (validation and rendering parse each field once; the tree is only read)."""
    return _ENV.parse(source)


# What a template may hold: text and the documented placeholders, nothing else (no attributes, items,
# calls, filters, tests, blocks, assignments, loops): a template is data, never a program.
_ALLOWED_NODES = (jinja2.nodes.Template, jinja2.nodes.Output, jinja2.nodes.TemplateData, jinja2.nodes.Name)
_NODE_WORDS = {"Getattr": "an attribute", "Getitem": "an item lookup", "Call": "a call", "Filter": "a filter",
               "Test": "a test", "For": "a loop", "If": "an if block", "Assign": "an assignment",
               "AssignBlock": "an assignment", "Macro": "a macro", "Import": "an import",
               "FromImport": "an import", "Include": "an include", "Extends": "an extends",
               "Const": "a literal", "CondExpr": "an if expression"}


def _constructs(tree: jinja2.nodes.Template) -> list[str]:
    """What a parsed template holds beyond plain text, {{ name }} and {{ author }}, in words."""
    found: list[str] = []
    for node in tree.find_all(jinja2.nodes.Node):
        if isinstance(node, jinja2.nodes.Name) and node.ctx != "load":
            word = "an assignment"
        elif isinstance(node, _ALLOWED_NODES):
            continue  # an unknown placeholder is named as undefined when rendered
        else:
            word = _NODE_WORDS.get(type(node).__name__, f"an expression ({type(node).__name__})")
        if word not in found:
            found.append(word)
    return found


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
            tree = _parse(row.get(name) or "")
        except jinja2.TemplateSyntaxError as err:
            problems.append(Problem(f"{name}: template syntax error: {err.message}", **where))
            continue
        except RecursionError:  # {{ ((((...name)))) }} nested past what jinja's parser can follow
            problems.append(Problem(f"{name}: the template is nested too deeply to read", **where,
                                    fix="write plain text with {{ name }} and {{ author }} only"))
            continue
        constructs = _constructs(tree)
        if constructs:
            problems.append(Problem(f"{name}: an identity template holds text and placeholders only; found "
                                    f"{', '.join(constructs)}", **where,
                                    fix="write plain text with {{ name }} and {{ author }} only"))
    return problems


def _template_rows(path: Path) -> list[tuple[int, dict]]:
    path = Path(path)
    # A FIFO or a device is refused from its stat, before anything opens it (opening a FIFO blocks).
    problem = userfiles.check_regular(path, "identity template", key="identity.template")
    if problem:
        raise UserError([problem])
    if not path.is_file():
        raise UserError([Problem("identity template not found", file=str(path),
                                 fix="point at a .jsonl template such as datasets/self_cognition.jsonl")])
    if path.suffix != ".jsonl":
        raise UserError([Problem("the identity template must be a .jsonl file", file=str(path))])
    rows = list(read_rows(path, "identity template"))
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
    tree = _parse(row[name])
    undefined = jinja2.meta.find_undeclared_variables(tree) - context.keys()
    if undefined:
        names = ", ".join(sorted(undefined))
        raise UserError([Problem(f"{name}: undefined placeholder {names}", file=str(path), line=line,
                                 fix="use only {{ name }} and {{ author }}")])
    try:
        return _substitute(tree, context)
    except ValueError as err:  # a node that is not text or a placeholder: never evaluated
        raise UserError([Problem(f"{name}: {err}", file=str(path), line=line,
                                 fix="write plain text with {{ name }} and {{ author }} only")]) from None


def _substitute(tree: jinja2.nodes.Template, context: dict[str, str]) -> str:
    """The text of a template that holds text and placeholders only, with each placeholder's value put in: the
    same string jinja2 renders, with nothing compiled and nothing called."""
    parts = []
    for output in tree.body:
        if not isinstance(output, jinja2.nodes.Output):
            raise ValueError(f"{type(output).__name__} is not allowed in an identity template")
        for node in output.nodes:
            if isinstance(node, jinja2.nodes.TemplateData):
                parts.append(node.data)
            elif isinstance(node, jinja2.nodes.Name) and node.ctx == "load":
                parts.append(str(context[node.name]))
            else:
                raise ValueError(f"{type(node).__name__} is not allowed in an identity template")
    return "".join(parts)


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


def _system(text: str | None) -> list[dict]:
    return [] if text is None else [{"role": "system", "content": text}]


def render_identity(template_path: Path, out_dir: Path, *, name: dict[str, str], author: dict[str, str],
                    systems: list[str | None] | None = None) -> IdentityFiles:
    """Render the identity template for one name/author ('zh'/'en' forms) into a training file (train
    rows, ms-swift messages format) and a probes file (all rows, rendered, for verification). `systems`: the
    system prompt of each train row in turn (None: none in the row, so train.system applies; "": an empty
    one, which ms-swift's templates leave out)."""
    template_path, out_dir = Path(template_path), Path(out_dir)
    rows = _render_rows(template_path, name, author)
    train_path, probes_path = out_dir / IDENTITY_TRAIN_FILE, out_dir / IDENTITY_PROBES_FILE
    for target in (train_path, probes_path):
        if target.resolve() == template_path.resolve():
            raise UserError([Problem("the output would overwrite the identity template", file=str(template_path),
                                     fix="render into another directory")])
    train = [r for r in rows if r["split"] == "train"]
    turns = systems or [None]
    train_bytes = _jsonl({"messages": _system(turns[i % len(turns)]) + [
        {"role": "user", "content": r["query"]}, {"role": "assistant", "content": r["response"]}]}
        for i, r in enumerate(train))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(train_path, train_bytes)
    write_atomic(probes_path, _jsonl({k: r[k] for k in IDENTITY_FIELDS} for r in rows))
    return IdentityFiles(train_path=train_path, probes_path=probes_path, train_rows=len(train),
                         heldout_rows=len(rows) - len(train), sha256=hashlib.sha256(train_bytes).hexdigest())
