"""Paths and constants in one place; every one can be overridden through the environment."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"


def cache_dir() -> Path:
    """Where the flag catalog is cached (SWIFTKIT_CACHE_DIR, else XDG cache, else ~/.cache)."""
    env = os.environ.get("SWIFTKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "swiftkit"
