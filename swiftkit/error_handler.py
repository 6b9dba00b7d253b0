"""Exceptions -> exit codes and messages, in one place: a user's mistake prints its message only (exit 2), a
full disk while fetching or converting a model exits 9 as a full disk does in training, an interrupt 130, and
anything unexpected prints one line that points to the file holding the traceback (exit 1)."""
from __future__ import annotations

import sys
import traceback
from typing import Any, Callable

import click

from swiftkit.errors import EXIT_FAILURE, EXIT_USAGE, DiskSpaceError, UserError

EXIT_DISK_FULL = 9  # logparse.EXIT_CODES["disk_full"]


def handled(call: Callable[[], Any]) -> int:
    try:
        result = call()
    except UserError as exc:
        click.echo(exc.format(), err=True)
        return EXIT_DISK_FULL if isinstance(exc, DiskSpaceError) else EXIT_USAGE
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - last resort: the message, and the traceback in a file
        from swiftkit.paths import cache_dir

        log = cache_dir() / "last-error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc(), encoding="utf-8")
        click.echo(f"swiftkit: unexpected error: {sys.exc_info()[1]}\n  traceback: {log}", err=True)
        return EXIT_FAILURE
    return result if isinstance(result, int) else 0
