"""The layering of docs/architecture.md, read off the code's own imports.

Every import counts: module level, inside functions and under ``TYPE_CHECKING``. A type
import still ties two modules together for a reader and a refactoring.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parents[1] / "npsim"
LEAVES = {"units", "dists", "streams", "outcomes", "version"}
BELOW_API = LEAVES | {"scenario", "cluster", "preflight", "parallel", "proxy", "sim",
                      "results"}
# layer -> the layers it may import (docs/architecture.md, "The layers")
ALLOWED: dict[str, set[str]] = {
    "units": set(), "streams": set(), "outcomes": set(), "version": set(),
    "dists": {"units"},
    "scenario": LEAVES,
    "cluster": LEAVES | {"scenario"},
    "preflight": LEAVES | {"scenario", "cluster"},
    "parallel": set(),
    "proxy": LEAVES | {"scenario", "cluster"},
    "sim": LEAVES | {"scenario", "cluster", "proxy"},
    "results": LEAVES | {"scenario", "cluster", "sim"},
    "plots": LEAVES | {"results"},
    "report": LEAVES | {"scenario", "results", "plots"},
    "api": BELOW_API,
    "sweep": BELOW_API | {"api"},
    "explain": LEAVES | {"scenario", "cluster", "proxy", "sim"},
    "importer": LEAVES | {"scenario"},
    "cli": BELOW_API | {"api", "sweep", "explain", "importer", "report", "plots", "cli"},
    "__init__": {"version", "api", "results", "scenario", "sweep"},
    "bundled_scenarios": set(),
}
# the one edge up, named: Result.plot draws with plots/ when it is asked to
EDGES_UP = {("npsim.results.result", "plots")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """The npsim modules ``path`` imports (``from npsim.x import y`` names module
    ``npsim.x.y`` when that is a module, else ``npsim.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "npsim")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module.split(".")[0] == "npsim"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


GRAPH = {module: _imports(path) for module, path in MODULES.items()}


def test_every_layer_is_in_the_table() -> None:
    assert {_layer(m) for m in MODULES} <= set(ALLOWED)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong: dict[str, set[str]] = defaultdict(set)
    for module, imported in GRAPH.items():
        layer = _layer(module)
        for target in imported:
            other = _layer(target)
            if other != layer and other not in ALLOWED[layer] and (
                    module, other) not in EDGES_UP:
                wrong[module].add(target)
    assert not wrong, dict(wrong)


def test_plots_read_frames_not_the_result() -> None:
    """Figures take frames; the Result (and its folder) is one layer above them."""
    users = [m for m, imported in GRAPH.items()
             if _layer(m) == "plots" and "npsim.results.result" in imported]
    assert users == []


def test_no_module_reaches_itself_through_its_imports() -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from(GRAPH)
    graph.add_edges_from((m, t) for m, imported in GRAPH.items() for t in imported
                         if t in GRAPH and t != m)
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert circles == []


def test_no_module_is_over_600_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}
