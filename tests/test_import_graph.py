"""The modules of sopdeep import each other without a cycle, and the registries the config validates
against (sopdeep.datasets, sopdeep.noise) import no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path, root):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_time_statements(body):
    """The statements that run when the module is imported: module level, inside if / try / with /
    class bodies, but not inside functions, nor under ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_time_statements(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _import_time_statements(getattr(node, field, []) or [])


def import_graph(package="sopdeep"):
    """module -> the modules of ``package`` it imports when it is imported.

    Importing ``a.b.c`` also runs ``a.b``'s ``__init__``, so parent packages are targets too,
    except the importer's own ancestors (already being imported: Python allows that).
    """
    modules = {_module_name(p, ROOT): p for p in (ROOT / package).rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        targets = set()
        for node in _import_time_statements(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module
                targets.add(module)
                targets.update(f"{module}.{alias.name}" for alias in node.names)  # submodules
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        if is_pkg:
            ancestors.add(name)
        edges = set()
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dotted = ".".join(parts[:i])
                if dotted in modules and dotted not in ancestors and dotted != name:
                    edges.add(dotted)
        graph[name] = edges
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_find_cycle_reports_the_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_known_edges():
    graph = import_graph()
    assert "sopdeep.datasets" in graph["sopdeep.noise.labels"]  # noise -> datasets, one direction
    assert "sopdeep.training.data" in graph["sopdeep.training.loop"]
    assert "sopdeep.training" not in graph["sopdeep.training.loop"]  # the importer's own package


def test_sopdeep_modules_import_each_other_without_a_cycle():
    cycle = _find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_datasets_never_import_noise_config_or_training():
    graph = import_graph()
    datasets = [m for m in graph if m == "sopdeep.datasets" or m.startswith("sopdeep.datasets.")]
    for module in datasets:
        bad = {t for t in graph[module] if t.startswith(("sopdeep.noise", "sopdeep.config", "sopdeep.training"))}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_registries_import_no_torch():
    # sopdeep.config validates names against them, and it is imported by the command line's --help
    code = ("import sys, sopdeep.datasets, sopdeep.noise; "
            "bad = [m for m in ('torch', 'torchvision', 'sopdeep.config', 'sopdeep.training') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
