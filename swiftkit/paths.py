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


def swift_command_problem(checked_version: str):
    """A Problem when the command that starts ms-swift cannot be started, or starts another ms-swift than
    the one whose flags swiftkit checked the recipe against (checked_version); None when all is well."""
    import shutil
    import subprocess
    import sys

    from .errors import Problem

    argv = swift_command()
    exe = argv[0]
    where = "SWIFTKIT_SWIFT" if os.environ.get("SWIFTKIT_SWIFT") else "PATH"
    found = exe if os.sep in exe else shutil.which(exe)
    if not found or not Path(found).is_file() or not os.access(found, os.X_OK):
        return Problem(f"cannot start ms-swift: {exe} (from {where}) does not exist or is not executable",
                       fix="install ms-swift in this environment (pip install 'ms-swift>=4,<5'), or set "
                           "SWIFTKIT_SWIFT to the command that starts it, e.g. 'python3 -m swift.cli.main'")
    python = _interpreter(Path(found)) if len(argv) == 1 else Path(found)
    if python is None or python.resolve() == Path(sys.executable).resolve():
        return None  # this Python's own ms-swift: the one the flags were checked against
    try:
        out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('ms-swift'))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    theirs = out.stdout.strip() if out.returncode == 0 else None
    if theirs and theirs.split(".")[0] != checked_version.split(".")[0]:
        return Problem(f"{found} (from {where}) starts ms-swift {theirs} (Python {python}), but this recipe was "
                       f"checked against ms-swift {checked_version}, installed beside swiftkit: flags differ "
                       "between major versions",
                       fix=f"put this environment's swift first on PATH, or set SWIFTKIT_SWIFT='{sys.executable} "
                           "-m swift.cli.main'")
    return None


def _interpreter(script: Path) -> Path | None:
    """The Python a console script runs under (its #! line), or None when it is not a Python script."""
    try:
        with open(script, "rb") as f:
            first = f.readline(512).decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!") or "python" not in first:
        return None
    words = first[2:].split()
    if Path(words[0]).name == "env" and len(words) > 1:
        import shutil

        found = shutil.which(words[1])
        return Path(found) if found else None
    return Path(words[0])


def swift_config_dir() -> Path | None:
    """The installed ms-swift's built-in DeepSpeed and FSDP configs (swift/config/zero2.json, ...)."""
    import importlib.util

    spec = importlib.util.find_spec("swift")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return Path(locations[0]) / "config" if locations else None


def bundled_general_prompts() -> Path:
    """The replay pool: datasets/general_prompts.jsonl."""
    return DATASETS_DIR / "general_prompts.jsonl"
