from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from swiftkit.errors import EXIT_OK, UserError
from swiftkit.importer.command import import_command
from swiftkit.importer.recipe_yaml import DEFAULT_SCHEMA, to_yaml


def import_(source: str | None, argv: list[str], *, schema: str = DEFAULT_SCHEMA) -> int:
    """Print a recipe for a `swift sft` command: from argv (the words after `--`), FILE, or stdin ('-' or none).

    The recipe goes to stdout so it can be redirected into a file; notes go to stderr as well,
    where they are seen even then."""
    result = import_command(_read_input(source, argv))
    click.echo(to_yaml(result, schema), nl=False)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    return EXIT_OK


def _read_input(source: str | None, argv: list[str]) -> str:
    if argv:
        if source not in (None, "-"):
            raise UserError.one(f"got both a file ({source}) and a command after --",
                                fix="give one: `swiftkit import FILE` or `swiftkit import -- swift sft ...`")
        return shlex.join(argv)  # quoting survives the round trip through the shell's split
    if source in (None, "-"):
        if source is None and sys.stdin.isatty():
            raise UserError.one("nothing to import: no FILE, no command after --, and stdin is a terminal",
                                fix="`swiftkit import train.sh`, `swiftkit import - < train.sh` or "
                                    "`swiftkit import -- swift sft --model ...`")
        return sys.stdin.read()
    return _read_file(Path(source))


def _read_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError.one(f"file not found: {path}", fix="give the script or text file holding the swift sft "
                                                            "command, or '-' to read stdin") from None
    except IsADirectoryError:
        raise UserError.one(f"{path} is a directory", fix="give the script file that runs swift sft") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError.one(f"cannot read {path}: {exc}") from None
