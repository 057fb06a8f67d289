"""The layout stays readable: no import cycles, no unlisted lazy imports, no giant functions."""

from __future__ import annotations

import ast
import subprocess
import sys
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
    # Every import counts, those inside functions (LAZY) too: a lazy import still needs the
    # module it names, and a cycle through one would fail on first use instead of at import.
    graph = {
        name: {t for node in ast.walk(tree) for t in _target(node, modules) if t != name}
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


# The only linkeval imports inside functions, and why: `linkeval report` and its worker
# processes (which import the CLI again as their main module) need page names and headers, not
# SciPy, statsmodels and matplotlib; they import the cleaning, the statistics and the sections
# only when a command, or the index built after the notebooks, uses them (summed peak memory
# of a report batch, benchmarks/bench_reports.py). `linkeval/__init__.py` is lazy through
# lazy_loader and its stub `__init__.pyi`, not through imports in functions.
LAZY = {
    "linkeval.cli.main": {"linkeval.commands"},
    "linkeval.commands.cmd_synth": {"linkeval.synthetic"},
    "linkeval.commands.cmd_check": {"linkeval.cleaning"},
    "linkeval.commands._clean": {"linkeval.cleaning.study"},
    "linkeval.commands._report": {"linkeval.report.batch"},
    "linkeval.commands.cmd_demo": {"linkeval.synthetic"},
    "linkeval.report.batch._run": {"linkeval.report.notebook"},
    "linkeval.report.index.headline_figures": {"linkeval.stats.change", "linkeval.stats.pooling"},
    "linkeval.report.index._groupings": {"linkeval.report.sections"},
    "linkeval.report.index._context_text": {"linkeval.report.sections"},
}


def test_linkeval_imports_inside_functions_are_only_the_listed_lazy_ones():
    hidden: dict[str, set[str]] = {}
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if not isinstance(inner, ast.FunctionDef):
                        for target in _target(inner, {}):
                            hidden.setdefault(f"{name}.{node.name}", set()).add(target)
    assert hidden == LAZY


def test_the_cli_and_the_report_batch_import_no_statistics_or_plotting():
    script = (
        "import sys, linkeval, linkeval.cli, linkeval.report.batch\n"
        "heavy = {'scipy', 'statsmodels', 'matplotlib', 'seaborn', 'linkeval.stats.change'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_a_report_worker_holds_no_pandas_or_pyarrow(tmp_path):
    """A local report worker drives a kernel and renders HTML; the kernels do the analysis. It
    is started as `linkeval report` starts it (spawn, from the console script, whose imports
    it repeats), imports papermill and nbconvert, renders a page, and holds none of the data
    stack (0.06 GB in a batch, not 0.17 GB)."""
    script = tmp_path / "linkeval_script.py"
    script.write_text(
        "import sys, types\n"
        "from linkeval.cli import main  # as the console script does\n"
        "if __name__ == '__main__':\n"
        "    from linkeval.report import batch\n"
        "    pool, _ = batch._pool(types.SimpleNamespace(key_env='NO_KEY'), 1, None)\n"
        "    heavy = ('pandas', 'numpy', 'pyarrow', 'scipy', 'matplotlib', 'linkeval.io')\n"
        "    check = (\n"
        '        \'__import__("papermill") and __import__("nbconvert") and \'\n'
        '        \'__import__("linkeval.report.render").report.render.html_page("t", "b") and \'\n'
        "        f'sorted(m for m, v in __import__(\"sys\").modules.items() if v and m in {heavy})'\n"
        "    )\n"
        "    print(pool.submit(eval, check).result())\n"
        "    pool.shutdown()\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_every_name_of_the_public_api_resolves():
    import linkeval as le

    assert len(le.__all__) > 30 and set(le.__all__) <= set(dir(le))
    for name in le.__all__:
        assert getattr(le, name) is not None, name
    assert le.paired_change.__module__ == "linkeval.stats.change"


def test_no_function_or_class_is_over_300_lines():
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in _modules().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.end_lineno - node.lineno + 1 > MAX_LINES
    ]
    assert long == []
