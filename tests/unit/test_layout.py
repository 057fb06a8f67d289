"""The layout stays readable: no import cycles, no hidden imports, no giant functions."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "linkeval"
MAX_LINES = 300


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _target(node: ast.AST, modules: dict) -> list[str]:
    names = []
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("linkeval"):
        for alias in node.names:
            full = f"{node.module}.{alias.name}"
            names.append(full if full in modules else node.module)
    elif isinstance(node, ast.Import):
        names += [a.name for a in node.names if a.name.startswith("linkeval")]
    return names


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {
        name: {t for node in tree.body for t in _target(node, modules) if t != name}
        for name, tree in modules.items()
    }
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in graph.get(name, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, name, nxt]))
            if state.get(nxt) is None:
                visit(nxt, [*path, name])
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])


def test_no_linkeval_import_is_hidden_inside_a_function():
    hidden = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if _target(inner, {}) and not isinstance(inner, ast.FunctionDef):
                        hidden.append(f"{name}.{node.name}")
    assert hidden == []


def test_no_function_or_class_is_over_300_lines():
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert long == []
