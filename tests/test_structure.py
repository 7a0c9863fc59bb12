"""The package's structure: no import circle between its modules, function-local imports counted."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wanbench"


def imports(path, modules):
    """The package modules one file imports, anywhere in it (module level or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0 and not base.startswith("wanbench"):
                continue
            base = base.removeprefix("wanbench").lstrip(".")
            names = [base] if base else [a.name for a in node.names]
        else:
            continue
        for name in names:
            top = name.removeprefix("wanbench.").split(".")[0]
            if top in modules and top != path.stem:
                found.add(top)
    return found


def graph(package=PACKAGE):
    modules = {p.stem for p in package.glob("*.py")}
    return {p.stem: imports(p, modules) for p in package.glob("*.py")}


def circle(edges):
    """One import circle as [a, b, ..., a], or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = "done"
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_package_has_no_import_circle():
    found = circle(graph())
    assert found is None, "import circle: " + " -> ".join(found or [])


def test_a_circle_through_a_function_local_import_is_found(tmp_path):
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .c import x\n    return x\n")
    (tmp_path / "c.py").write_text("import wanbench.a\nx = 1\n")
    assert circle(graph(tmp_path)) == ["a", "b", "c", "a"]
    (tmp_path / "c.py").write_text("x = 1\n")
    assert circle(graph(tmp_path)) is None
