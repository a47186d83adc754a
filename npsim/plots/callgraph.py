"""The application's call graph: client populations and Services left to right by
their depth in the graph, an arrow per caller -> callee pair labelled with its calls
per second and p99 latency, and its width by its rate (as a trace viewer's service
map, e.g. Jaeger's "System Architecture" view, draws it).

Arrows keep clear of the boxes they do not join: each layer is a column as wide as its
longest name, an arrow leaves its caller's box sideways and turns only in the gaps
between columns, and one that skips layers passes each of them in a slot of its own
(Sugiyama's dummy vertices), not through the Services there."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch
from matplotlib.path import Path

from npsim.plots._common import labelled, name_of, new_figure
from npsim.results.callframe import call_graph as graph_of

MAX_WIDTH = 8.0
FILL = {"client": "#ffffff", "external": "#f4efe6"}  # others: a Service of the cluster
CHAR_IN = 0.075  # inches a character of a 9 pt name takes, at most (DejaVu Sans)
GAP_IN = 1.3  # inches between two columns: an edge label ("204/s  p99 11.9 ms") fits
LABEL_IN = 0.17  # inches between two labels stacked in one gap (8 pt text)


def _slots(graph: Any, layers: dict[Any, int]) -> tuple[dict[Any, tuple[float, float]],
                                                        list[list[Any]]]:
    """Each vertex's place (layer, height) and each edge's chain of places, in
    ``graph.edges`` order: an edge that skips layers gets a slot (a bend) of its own in
    each layer it crosses. Each layer is ordered by the mean slot of what feeds it (the
    barycentre heuristic), which keeps most edges from crossing."""
    chains: list[list[Any]] = []
    slots: dict[int, list[Any]] = {}
    for vertex, layer in layers.items():
        slots.setdefault(layer, []).append(vertex)
    feeds: dict[Any, list[Any]] = {}
    for a, b in graph.edges():
        chain = [a, *((("bend", a, b), k) for k in range(layers[a] + 1, layers[b])), b]
        for k, bend in enumerate(chain[1:-1], start=layers[a] + 1):
            slots.setdefault(k, []).append(bend)
        for u, v in zip(chain[:-1], chain[1:], strict=True):
            feeds.setdefault(v, []).append(u)
        chains.append(chain)
    index: dict[Any, int] = {}
    pos: dict[Any, tuple[float, float]] = {}
    for layer in sorted(slots):
        def order(v: Any) -> tuple[float, str]:
            up = [index[u] for u in feeds.get(v, []) if u in index]
            return (sum(up) / len(up) if up else 0.0, repr(v))
        row = sorted(slots[layer], key=order)
        for i, v in enumerate(row):
            index[v] = i
            pos[v] = (float(layer), -float(i) + (len(row) - 1) / 2)
    return pos, chains


def _route(chain: list[Any], pos: dict[Any, tuple[float, float]], column: float,
           half: dict[Any, float]) -> list[tuple[float, float]]:
    """The points of one edge: out of its caller's box sideways to the column's edge,
    across each gap, through each bend's slot level, into the callee's box sideways."""
    (x, y), last = pos[chain[0]], len(chain) - 1
    points = [(x + half[chain[0]], y), (x + column, y)]
    for i, v in enumerate(chain[1:], start=1):
        x, y = pos[v]
        points.append((x - column, y))
        points.append((x - half[v], y) if i == last else (x + column, y))
    return points


def call_graph(result: Any) -> Figure:
    """Services and who calls whom, with calls/s and p99 on each arrow."""
    import networkx as nx  # here, not with every figure: only a run with calls has one

    res = labelled(result)[0][1]
    entry = {c.name: c.service for c in res.scenario.spec.clients}
    graph = graph_of(res.requests, getattr(res, "calls", None), entry)
    layers: dict[Any, int] = {}
    for vertex in nx.topological_sort(graph):  # a call graph has no cycle (validated)
        preds = list(graph.predecessors(vertex))
        layers[vertex] = 1 + max((layers[p] for p in preds), default=-1)
    slot, chains = _slots(graph, layers)
    tallest = max((sum(1 for x, _ in slot.values() if x == layer)
                   for layer in set(layers.values())), default=1)
    widest = max((len(name) for _, name in layers), default=8)
    per_layer = CHAR_IN * widest + GAP_IN  # inches from one column's centre to the next
    n_layers = max(layers.values(), default=0) + 1
    # at most 32 x 24 in (a report's PNG of a few thousand pixels a side): past that,
    # an application of a hundred Services a tier is crowded, not unbounded
    fig, ax = new_figure(min(32.0, max(8.0, n_layers * per_layer + 0.5)),
                         min(24.0, max(4.5, 1.0 + 0.55 * tallest)))
    xs = [p[0] for p in slot.values()] or [0.0]
    ys = [p[1] for p in slot.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    x_in = fig.get_figwidth() / (max(xs) - min(xs) + 1.2)  # inches per layer
    y_in = (fig.get_figheight() - 0.6) / (max(ys) - min(ys) + 1.6)  # per slot, no title
    column = (CHAR_IN * widest / 2 + 0.08) / x_in
    # where a line enters a box: a little inside its edge (the box covers the rest)
    half = {v: 0.06 * len(v[1]) / 2 / x_in for v in layers}
    top = max((d["per_second"] for _, _, d in graph.edges(data=True)), default=1.0) or 1.0
    taken: dict[float, list[float]] = {}  # label heights per gap
    for (_, _, d), chain in zip(graph.edges(data=True), chains, strict=True):
        points = _route(chain, slot, column, half)
        style = dict(lw=0.8 + MAX_WIDTH * d["per_second"] / top, alpha=0.7,
                     color="#d62728" if d["error_ratio"] > 0.01 else "#1f77b4")
        # one patch per edge: pieces drawn apart would overlap, darker, at each turn
        ax.add_patch(FancyArrowPatch(path=Path(points), arrowstyle="-|>",
                                     mutation_scale=10 + style["lw"], **style))
        (x0, y0), (x1, y1) = points[1], points[2]  # the first gap's crossing
        x, y = (x0 + x1) / 2, (y0 + y1) / 2 + 0.12
        while any(abs(y - other) < LABEL_IN / y_in for other in taken.get(x, [])):
            y -= LABEL_IN / y_in  # below the label already in this gap
        taken.setdefault(x, []).append(y)
        ax.text(x, y, f"{d['per_second']:.0f}/s  p99 " + (
            f"{d['p99'] * 1e3:.1f} ms" if d["p99"] == d["p99"] else "-"),  # nan: none done
            ha="center", fontsize=8)
    for vertex in layers:
        (x, y), (kind, name) = slot[vertex], vertex
        ax.text(x, y, name, ha="center", va="center", fontsize=9, bbox=dict(
            boxstyle="round", fc=FILL.get(kind, "#e8f0fa"), ec="#555555",
            ls="--" if kind == "external" else "-"))  # outside the cluster: dashed
    ax.set_axis_off()
    ax.set_title(f"{name_of(res)}: call graph (client populations and Services)")
    return fig
