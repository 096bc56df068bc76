"""The core's packages form layers, and imports only go down (docs/architecture.md).

The imports are read from the source (AST), so a lazy import inside a function counts as
much as one at the top of a module; imports under ``if TYPE_CHECKING:`` do not (they
never run). A top-level module (``kapa_core/daemon.py``) counts as a package of its own.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import kapa_core

CORE = Path(kapa_core.__file__).parent

#: Lowest first. A package may import from its own layer's packages and from lower
#: layers, never from a higher one; within a layer imports may not form a cycle.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "errors", "logs", "perdaemon", "gcpause", "denylist", "tlsconfig",
     "httpclients", "gotemplate", "models"),
    ("config", "storage", "hookspecs"),
    ("tick",),
    ("glob", "auth", "influxdb", "services"),
    ("alert", "udf"),
    ("pipeline",),
    ("engine", "cloud", "aws"),
    ("inputs", "discovery", "cluster", "elements", "service_tests", "plugin_api", "plugins"),
    ("http",),
    ("daemon", "cli", "testing"),
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _package_of(path: Path) -> str:
    first = path.relative_to(CORE).parts[0]
    return first.removesuffix(".py")


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    skipped.add(id(sub))
    return skipped


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or not node.module:
        return []  # relative imports stay inside their package
    if node.module == "kapa_core":
        return [f"kapa_core.{alias.name}" for alias in node.names]
    return [node.module]


@cache
def _core_imports() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(package, file, the modules it imports) for every core file, parsed once a run:
    the four tests below read the same sources."""
    found = []
    for path in sorted(CORE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_only(tree)
        modules = tuple(module for node in ast.walk(tree)
                        if isinstance(node, ast.Import | ast.ImportFrom)
                        and id(node) not in skipped for module in _imported(node))
        found.append((_package_of(path), str(path.relative_to(CORE)), modules))
    return tuple(found)


def import_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for source, file, modules in _core_imports():
        for module in modules:
            parts = module.split(".")
            if parts[0] == "kapa_plugins":
                graph[source]["kapa_plugins"].append(file)
            elif parts[0] == "kapa_core" and len(parts) > 1 and parts[1] != source:
                graph[source][parts[1]].append(file)
    return graph


def _cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
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


def test_every_core_package_has_a_layer() -> None:
    packages = {_package_of(p) for p in CORE.rglob("*.py")}
    assert sorted(packages - set(RANK)) == [], "add the new package to LAYERS"


def test_core_never_imports_the_plugins() -> None:
    graph = import_graph()
    offenders = {pkg: deps["kapa_plugins"] for pkg, deps in graph.items()
                 if "kapa_plugins" in deps}
    assert offenders == {}


def test_core_packages_import_no_cycle() -> None:
    graph = import_graph()
    cycles = _cycles(graph)
    detail = [f"{cycle}: " + "; ".join(
        f"{a} -> {b} ({', '.join(sorted(set(graph[a][b]))[:3])})"
        for a in cycle for b in cycle if b in graph.get(a, {})) for cycle in cycles]
    assert cycles == [], "\n".join(detail)


def test_imports_only_go_down_the_layers() -> None:
    graph = import_graph()
    upward = [f"{a} -> {b} ({', '.join(sorted(set(files))[:3])})"
              for a, deps in sorted(graph.items()) for b, files in sorted(deps.items())
              if b in RANK and a in RANK and RANK[b] > RANK[a]]
    assert upward == [], "\n".join(upward)


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b": ["a.py"]}, "b": {"c": ["b.py"]}, "c": {"a": ["c.py"]}, "d": {}}
    assert _cycles(graph) == [["a", "b", "c"]]


def _reduced(graph: dict[str, dict[str, list[str]]]) -> list[tuple[str, str]]:
    """The package edges that no longer path implies (transitive reduction)."""
    edges = {a: {b for b in deps if b in RANK} for a, deps in graph.items() if a in RANK}

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [b for b in edges.get(start, ()) if (start, b) != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(edges.get(node, ()))
        return seen

    return sorted((a, b) for a in edges for b in edges[a] if b not in reachable(a, (a, b)))


def mermaid() -> str:
    """The layers and the package imports (reduced) as a Mermaid flowchart."""
    graph = import_graph()
    lines = ["```mermaid", "flowchart BT"]
    for rank, names in enumerate(LAYERS):
        lines.append(f"  subgraph L{rank}[layer {rank}]")
        lines.extend(f"    {name.strip('_') or 'init'}" for name in names
                     if name != "__init__")
        lines.append("  end")
    lines.extend(f"  {a} --> {b}" for a, b in _reduced(graph) if "__init__" not in (a, b))
    lines.append("```")
    return "\n".join(lines)


def test_the_architecture_page_shows_the_current_layers() -> None:
    page = (CORE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert mermaid() in page, ("docs/architecture.md is out of date: paste the output of "
                               "`.venv/bin/python -m tests.unit.test_layers` over its diagram")


if __name__ == "__main__":
    print(mermaid())


def test_plugins_take_nothing_from_the_core_but_plugin_api() -> None:
    """Built-in plugins and the example packages are written as a third-party package
    is: ``kapa_core.plugin_api`` is the only core module they may import (imports
    between the modules of one plugin package are relative). UDF programs (they run
    outside the daemon) import the agent, ``kapa_core.udf.agent``, and nothing else."""
    root = CORE.parent
    found: set[str] = set()
    for path in sorted([*(root / "plugins").rglob("*.py"), *(root / "examples").rglob("*.py")]):
        if "build" in path.relative_to(root).parts:
            continue
        allowed = {"kapa_core.plugin_api"}
        if path.relative_to(root).parts[:2] == ("examples", "udf"):
            allowed.add("kapa_core.udf.agent")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.update(f"{path.relative_to(root)}: {name}" for name in _imported(node)
                             if name.split(".")[0] in ("kapa_core", "kapa_plugins")
                             and name not in allowed)
    assert sorted(found) == []
