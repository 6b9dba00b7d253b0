"""Click wiring only: options -> keyword arguments -> commands.*, inside one error handler (error_handler.py).

The verbs live in cli/before.py, cli/training.py and cli/after.py, in the order a user meets them; each only
maps its options to a commands.* function. Exit codes: 0 ok, 1 runtime failure, 2 invalid input or usage.
"""
from __future__ import annotations

import sys

from swiftkit.cli import after, before, training  # noqa: F401  (each registers its verbs on the group)
from swiftkit.cli.group import cli
from swiftkit.error_handler import handled


def main(argv: list[str] | None = None) -> int:
    """The one entry point: the command line in, an exit code out (errors mapped by error_handler)."""
    return handled(lambda: cli.main(args=argv, prog_name="swiftkit", standalone_mode=False))


if __name__ == "__main__":
    sys.exit(main())
