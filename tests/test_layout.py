"""The package's layout: no import cycle between modules or between stage packages, a one-line docstring in
every package, modules of a sane size, and tests/ mirroring swiftkit/ with a name each."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "swiftkit"
STAGES = ("recipe", "flags", "gguf", "checks", "plan", "importer", "launch", "run", "results", "verify", "replay",
          "serve", "report")
# Imported by every stage: the package's version and every error a user can see.
EVERYWHERE = {"swiftkit", "swiftkit.errors"}
# Data, not logic: tables that grow with what they describe.
DATA_MODULES = {"swiftkit.plan.known_models", "swiftkit.plan.cards", "swiftkit.importer.table"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every swiftkit module `name` imports, at the top or inside a function (a lazy import is still an edge)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                found.add(full if full in known else module)
    return (found & known) - {name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def unit(name: str) -> str:
    """A stage package, or a top-level module (render, errors, ...), or the package's own __init__."""
    return ".".join(name.split(".")[:2])


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of names around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_between_modules():
    found = cycle(graph())
    assert found is None, "import cycle between modules: " + " -> ".join(found)


def test_no_import_cycle_between_stage_packages():
    edges: dict[str, set[str]] = {}
    for name, targets in graph().items():
        edges.setdefault(unit(name), set()).update(unit(t) for t in targets if unit(t) != unit(name))
    found = cycle(edges)
    assert found is None, "import cycle between stage packages: " + " -> ".join(found)


def test_the_cycle_finder_names_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_every_stage_package_says_what_it_owns_and_may_import():
    for stage in STAGES:
        init = PACKAGE / stage / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and "May import:" in doc, f"{init}: a one-line docstring saying what it owns and may import"
        allowed = {f"swiftkit.{w.split()[0].strip(' .')}" for w in doc.split("May import:")[1].split(",")}
        for name, targets in graph().items():
            if unit(name) != f"swiftkit.{stage}":
                continue
            for target in targets:
                outside = unit(target)
                assert outside in allowed | EVERYWHERE | {unit(name)}, \
                    f"{name} imports {target}, which swiftkit/{stage}/__init__.py does not allow"


def test_modules_stay_small_unless_they_are_data():
    for name, path in modules().items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        assert name in DATA_MODULES or lines <= 420, f"{path.relative_to(ROOT)}: {lines} lines; split it by concern"


def test_test_files_have_unique_names_and_mirror_the_package():
    tests = list((ROOT / "tests").rglob("test_*.py"))
    names = [p.name for p in tests]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for path in tests:
        folder = path.parent.relative_to(ROOT / "tests")
        if folder.parts:
            assert (PACKAGE / folder).is_dir(), f"{path.relative_to(ROOT)}: tests/{folder} mirrors no package"
