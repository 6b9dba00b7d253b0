from __future__ import annotations

from pathlib import Path

import click
import yaml

from .. import paths
from ..errors import EXIT_OK


def bundled_recipes() -> list[Path]:
    return sorted(paths.RECIPES_DIR.rglob("*.yaml"))


def presets() -> int:
    """One line per bundled recipe: its path and description."""
    for path in bundled_recipes():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rel = path.relative_to(paths.PROJECT_DIR)
        click.echo(f"{str(rel):42} {data.get('description') or ''}")
    return EXIT_OK
