"""The package's import graph has no cycle, and no module is too long to read.

Every ``import`` of every module of ``neurec`` counts, at module level or inside a
function (a function-level import of a module that imports the caller back is still a
cycle, only a deferred one). ``from package import name`` is an edge to the submodule
``package.name`` when there is one, else to the package itself; compiled extensions
(``neurec._core``) and other packages are leaves.
"""
import ast
import os
from typing import Dict, List, Optional

import neurec

PACKAGE_DIR = os.path.dirname(os.path.abspath(neurec.__file__))
ROOT = os.path.dirname(PACKAGE_DIR)


def _modules() -> Dict[str, Optional[str]]:
    """``{dotted name: path}`` of every module of the package (path None for a compiled
    extension, which imports nothing of the package)."""
    out: Dict[str, Optional[str]] = {}
    for directory, _, files in os.walk(PACKAGE_DIR):
        for f in files:
            path = os.path.join(directory, f)
            if f.endswith(".py"):
                name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
            elif f.endswith((".so", ".pyd")):
                stem = os.path.relpath(path, ROOT).split(".")[0]
                out.setdefault(stem.replace(os.sep, "."), None)
    return out


def _imported(name: str, path: str, modules: Dict[str, str]) -> Dict[str, int]:
    """``{imported module of the package: line}`` for one module."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out: Dict[str, int] = {}

    def add(target: str, line: int) -> None:
        if target in modules and target != name:
            out.setdefault(target, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                add(sub if sub in modules else source, node.lineno)
    return out


def import_graph() -> Dict[str, Dict[str, int]]:
    modules = _modules()
    return {name: _imported(name, path, modules) if path else {}
            for name, path in modules.items()}


def find_cycle(graph: Dict[str, Dict[str, int]]) -> Optional[List[str]]:
    """A cycle ``[a, b, ..., a]`` of ``graph``, or None (iterative depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        todo = [iter(sorted(graph[start]))]
        state[start] = 1
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph[nxt])))
    return None


def _describe(graph, cycle: List[str]) -> str:
    return "\n  ".join(f"{a} -> {b} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:]))


def test_the_graph_builder_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from .a import f\nimport pkg.c\n")
    (pkg / "c.py").write_text("from pkg import sub\n")
    modules = {"pkg": str(pkg / "__init__.py"), "pkg.sub": str(pkg / "sub" / "__init__.py"),
               "pkg.sub.a": str(pkg / "sub" / "a.py"), "pkg.sub.b": str(pkg / "sub" / "b.py"),
               "pkg.c": str(pkg / "c.py")}
    graph = {n: _imported(n, p, modules) for n, p in modules.items()}
    assert set(graph["pkg.sub"]) == {"pkg.sub.b"}
    assert set(graph["pkg.sub.a"]) == {"pkg.sub.b"}
    assert set(graph["pkg.sub.b"]) == {"pkg.sub.a", "pkg.c"}
    assert set(graph["pkg.c"]) == {"pkg.sub"}
    assert find_cycle(graph) == ["pkg.c", "pkg.sub", "pkg.sub.b", "pkg.c"]
    del graph["pkg.sub.b"]["pkg.c"]
    assert find_cycle(graph) == ["pkg.sub.b", "pkg.sub.a", "pkg.sub.b"]
    del graph["pkg.sub.a"]["pkg.sub.b"]
    assert find_cycle(graph) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert "neurec.models.model" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle:\n  " + _describe(graph, cycle)


def test_models_depend_one_way():
    """Saving, recommendation and the NumPy reference sit on one side of ``model.py``."""
    graph = import_graph()
    for low in ("neurec.models.saving", "neurec.models.recommend", "neurec.models._als",
                "neurec.models._training", "neurec.data.sampling"):
        assert "neurec.models.model" not in graph[low], low
    assert "neurec._reference" not in graph["neurec.models.recommend"]
    assert not any(m.startswith("neurec.models") for m in graph["neurec.data.sampling"])
