"""`python -m swiftkit.cli`: the same as the `swiftkit` command."""
import sys

from swiftkit.cli import main

sys.exit(main())
