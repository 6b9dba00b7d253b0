"""Writing a recipe as YAML: keys in the schema's order, the notes as comments on top.

What `swiftkit import` prints (importer/command.py builds the recipe dict; recipe/yamlfile.py reads recipes):
the editor's schema modeline, each note wrapped as a `# note:` comment, then the keys in the order
Recipe and its section models declare them, lists indented under their key, multi-line strings as
`|` blocks.
"""
from __future__ import annotations

import textwrap
from typing import Any, Protocol

import yaml
from pydantic import BaseModel

from swiftkit.recipe.models import Recipe



class Imported(Protocol):
    """What to write (command.py's ImportResult): the recipe and the notes about how it was made."""

    recipe: dict[str, Any]
    notes: list[str]


DEFAULT_SCHEMA = "./recipe.schema.json"


def ordered(recipe: dict[str, Any]) -> dict[str, Any]:
    """Keys in the schema's order (Recipe and its section models), for a diff-friendly, familiar layout."""
    return _ordered(recipe, Recipe)


def _ordered(data: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        if key not in data:
            continue
        sub = section_model(info.annotation)
        out[key] = _ordered(data[key], sub) if sub and isinstance(data[key], dict) else data[key]
    out.update({k: v for k, v in data.items() if k not in out})  # unknown keys last (validation names them)
    return out


def section_model(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


class _Dumper(yaml.SafeDumper):
    # Lists indented under their key, as the bundled recipes write them.
    def increase_indent(self, flow: bool = False, indentless: bool = False):  # noqa: ARG002
        return super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None  # a multi-line system prompt stays readable
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flow = all(isinstance(v, (int, float)) for v in value)  # visible_devices: [0, 1]
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def to_yaml(result: Imported, schema: str = DEFAULT_SCHEMA) -> str:
    """The recipe as a YAML document: the editor modeline, the notes as comments, then the keys."""
    head = [f"# yaml-language-server: $schema={schema}"]
    for note in result.notes:
        head += textwrap.wrap(note, 110, initial_indent="# note: ", subsequent_indent="#       ",
                              break_on_hyphens=False, break_long_words=False)
    body = yaml.dump(result.recipe, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=110)
    return "\n".join(head) + "\n" + body
