"""The import graph of the three packages: no circle, and the directions docs/contracts.md pins.

Every import counts, also one inside a function (a lazy import still runs, only later): a circle of
lazy imports is still two modules that cannot be understood, or loaded, one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "analysis", "trainer")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imported_names(path: Path, module: str) -> set[str]:
    """Every module name an import statement of `path` names (relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports (a name `pkg.mod.attr` counts as `pkg.mod`)."""
    mods = _modules()
    graph = {}
    for name, path in mods.items():
        edges = set()
        for target in _imported_names(path, name):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_packages():
    graph = import_graph()
    assert len(graph) > 30 and "orchestrator.errors" in graph
    assert circles(graph) == []


def test_import_directions():
    """analysis never imports the orchestrator, the trainer, Ray or torch; the trainer imports neither
    of the other packages (every import, lazy ones included)."""
    mods = _modules()
    bad = []
    for name, path in mods.items():
        top = {n.split(".")[0] for n in _imported_names(path, name)}
        if name.startswith("analysis"):
            bad += [f"{name} imports {t}" for t in sorted(top & {"orchestrator", "trainer", "ray", "torch"})]
        if name.startswith("trainer"):
            bad += [f"{name} imports {t}" for t in sorted(top & {"orchestrator", "analysis"})]
    assert bad == []
