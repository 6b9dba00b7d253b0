"""Rebuild ms_swift_sft_examples.jsonl: every `swift sft` command in ms-swift's examples/**/*.sh.

Usage: python tests/corpus/refresh.py GIT_DIR [REV]

GIT_DIR is a clone (bare or not) of github.com/modelscope/ms-swift; REV defaults to HEAD. Each
command is one logical line (backslash continuations joined) with its environment prefix. The plain
variable assignments and `export`s of the script that come before it are prepended as lines of their
own where the command uses them (`NPROC_PER_NODE=$nproc_per_node`) or they are exported, so each
entry imports on its own. Commented-out commands are skipped.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "ms_swift_sft_examples.jsonl"
ASSIGNMENT = re.compile(r"^(export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$")
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
WRAPPERS = {"nohup", "time", "exec", "env"}


def git(git_dir: str, *args: str) -> str:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True,
                          text=True).stdout


def logical_lines(text: str) -> list[str]:
    """Physical lines -> logical lines: a trailing backslash continues the line (as the shell reads it)."""
    out, current = [], []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if current and stripped.startswith("#"):
            out.append(" ".join(current))  # a comment ends a continued command
            current = []
            continue
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        out.append(" ".join(part for part in current if part))
        current = []
    if current:
        out.append(" ".join(current))
    return out


def is_swift_sft(line: str) -> bool:
    if line.startswith("#"):
        return False
    try:
        words = shlex.split(line, comments=False)
    except ValueError:
        return False
    while words and (ASSIGNMENT.match(words[0]) or "=" in words[0].split("/")[0] or words[0] in WRAPPERS):
        if "=" not in words[0] and words[0] not in WRAPPERS:
            break
        words = words[1:]
    return words[:2] == ["swift", "sft"]


def commands(text: str) -> list[str]:
    found: list[str] = []
    preamble: list[tuple[str, str, bool]] = []  # (name, line, exported)
    for line in logical_lines(text):
        match = ASSIGNMENT.match(line)
        if match:
            preamble.append((match.group(2), line, bool(match.group(1))))
            continue
        if not is_swift_sft(line):
            continue
        used = {m.group(1) or m.group(2) for m in VARIABLE.finditer(line)}
        for _ in range(3):  # assignments that use earlier ones
            used |= {m.group(1) or m.group(2) for name, text_, _e in preamble if name in used
                     for m in VARIABLE.finditer(text_)}
        lines = [text_ for name, text_, exported in preamble if exported or name in used]
        found.append("\n".join(lines + [line]))
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    git_dir, rev = argv[0], argv[1] if len(argv) > 1 else "HEAD"
    files = sorted(f for f in git(git_dir, "ls-tree", "-r", "--name-only", rev).splitlines()
                   if f.startswith("examples/") and f.endswith(".sh"))
    rows = [{"file": f, "command": c} for f in files for c in commands(git(git_dir, "show", f"{rev}:{f}"))]
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    commit = git(git_dir, "rev-parse", rev).strip()
    print(f"{len(rows)} swift sft command(s) from {len({r['file'] for r in rows})} file(s) at {commit} -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
