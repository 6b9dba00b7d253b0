"""Paths and constants in one place; every one can be overridden through the environment."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """Where the flag catalog is cached (SWIFTKIT_CACHE_DIR, else XDG cache, else ~/.cache)."""
    env = os.environ.get("SWIFTKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "swiftkit"


# The checkout that holds recipes/ and datasets/ (swiftkit is installed editable from it).
PROJECT_DIR = Path(os.environ.get("SWIFTKIT_PROJECT_DIR", PACKAGE_DIR.parent))
RECIPES_DIR = PROJECT_DIR / "recipes"
DATASETS_DIR = PROJECT_DIR / "datasets"


def bundled_identity_template() -> Path:
    return DATASETS_DIR / "self_cognition.jsonl"


def bundled_general_probes() -> Path:
    return DATASETS_DIR / "general_probes.jsonl"


def swift_command() -> list[str]:
    """How to start ms-swift: SWIFTKIT_SWIFT (e.g. "python3 -m swift.cli.main"), else `swift` on PATH,
    else this Python's `-m swift.cli.main` (a --target install has no console script)."""
    import shlex
    import shutil
    import sys

    env = os.environ.get("SWIFTKIT_SWIFT")
    if env:
        return shlex.split(env)
    here = Path(sys.executable).parent / "swift"
    if here.is_file():
        return [str(here)]
    found = shutil.which("swift")
    return [found] if found else [sys.executable, "-m", "swift.cli.main"]


def swift_command_problem():
    """A Problem when the command that starts ms-swift cannot be started (checked before a run)."""
    import shutil

    from .errors import Problem

    argv = swift_command()
    exe = argv[0]
    found = (Path(exe).is_file() and os.access(exe, os.X_OK)) if os.sep in exe else shutil.which(exe) is not None
    if found:
        return None
    where = "SWIFTKIT_SWIFT" if os.environ.get("SWIFTKIT_SWIFT") else "PATH"
    return Problem(f"cannot start ms-swift: {exe} (from {where}) does not exist or is not executable",
                   fix="install ms-swift in this environment (pip install 'ms-swift>=4,<5'), or set SWIFTKIT_SWIFT "
                       "to the command that starts it, e.g. 'python3 -m swift.cli.main'")
