from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

import click

from swiftkit import userfiles
from swiftkit.errors import EXIT_OK, Problem, UserError, printable
from swiftkit.importer.command import import_command
from swiftkit.importer.recipe_yaml import DEFAULT_SCHEMA, to_yaml


def import_(source: str | None, argv: list[str], *, schema: str = DEFAULT_SCHEMA) -> int:
    """Print a recipe for a `swift sft` command: from argv (the words after `--`), FILE, or stdin ('-' or none).

    The recipe goes to stdout so it can be redirected into a file; notes go to stderr as well,
    where they are seen even then."""
    text = _read_input(source, argv)
    try:
        result = import_command(text)
    except UserError as err:
        if source in (None, "-"):
            raise
        # The script's problems carry the line they are on; the file is known only here.
        raise UserError([p if p.file else dataclasses.replace(p, file=source) for p in err.problems],
                        headline=err.headline) from None
    click.echo(to_yaml(result, schema), nl=False)
    for note in result.notes:
        click.echo(printable(f"note: {note}"), err=True)
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
        return _read_stdin()
    return _read_file(Path(source))


def _read_stdin() -> str:
    # At most the limit of a script: `swiftkit import - < /dev/zero` ends with an error, not out of memory.
    limit = userfiles.LIMITS["import script"]
    text = sys.stdin.read(limit + 1)
    if len(text) > limit:
        raise UserError.one(f"stdin holds more than {userfiles.human(limit)}; an import script is at most that",
                            fix="give the script that runs swift sft, not its data")
    return text


def _read_file(path: Path) -> str:
    try:
        # userfiles: a FIFO or a device is refused before it is opened; the encoding error has its line.
        return userfiles.read_text(path, "import script")
    except FileNotFoundError:
        raise UserError.one(f"file not found: {path}", fix="give the script or text file holding the swift sft "
                                                            "command, or '-' to read stdin") from None
    except OSError as exc:
        raise UserError([Problem(f"cannot read the import script: {exc.strerror or exc}", file=str(path),
                                 fix="check the path and its permissions")]) from None
