from __future__ import annotations

import json

import click

from swiftkit.errors import EXIT_OK
from swiftkit.recipe.models import Recipe


def recipe_schema() -> dict:
    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "swiftkit recipe"
    return schema


def schema() -> int:
    """Print the JSON Schema of a recipe (for editors: yaml-language-server)."""
    click.echo(json.dumps(recipe_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK
