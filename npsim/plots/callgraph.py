"""The application's call graph: client populations and Services left to right by
their depth in the graph, an arrow per caller -> callee pair labelled with its calls
per second and p99 latency, and its width by its rate (as a trace viewer's service
map, e.g. Jaeger's "System Architecture" view, draws it)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from npsim.plots._common import labelled, name_of, new_figure
from npsim.results.callframe import call_graph as graph_of

MAX_WIDTH = 8.0
FILL = {"client": "#ffffff", "external": "#f4efe6"}  # others: a Service of the cluster


def call_graph(result: Any) -> Figure:
    """Services and who calls whom, with calls/s and p99 on each arrow."""
    import networkx as nx  # here, not with every figure: only a run with calls has one

    res = labelled(result)[0][1]
    entry = {c.name: c.service for c in res.scenario.spec.clients}
    graph = graph_of(res.requests, getattr(res, "calls", None), entry)
    fig, ax = new_figure(8.0, 4.5)
    layers: dict[Any, int] = {}
    for vertex in nx.topological_sort(graph):  # a call graph has no cycle (validated)
        preds = list(graph.predecessors(vertex))
        layers[vertex] = 1 + max((layers[p] for p in preds), default=-1)
    by_layer: dict[int, list[Any]] = {}
    for vertex, layer in layers.items():
        by_layer.setdefault(layer, []).append(vertex)
    pos = {v: (float(layer), -float(i) + (len(vs) - 1) / 2)
           for layer, vs in by_layer.items() for i, v in enumerate(sorted(vs))}
    top = max((d["per_second"] for _, _, d in graph.edges(data=True)), default=1.0) or 1.0
    for a, b, d in graph.edges(data=True):
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(
            arrowstyle="-|>", lw=0.8 + MAX_WIDTH * d["per_second"] / top,
            color="#d62728" if d["error_ratio"] > 0.01 else "#1f77b4",
            shrinkA=22, shrinkB=22, alpha=0.7))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12,
                f"{d['per_second']:.0f}/s  p99 {d['p99'] * 1e3:.1f} ms",
                ha="center", fontsize=8)
    for vertex, (x, y) in pos.items():
        kind, name = vertex
        ax.text(x, y, name, ha="center", va="center", fontsize=9, bbox=dict(
            boxstyle="round", fc=FILL.get(kind, "#e8f0fa"), ec="#555555",
            ls="--" if kind == "external" else "-"))  # outside the cluster: dashed
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.set_axis_off()
    ax.set_title(f"{name_of(res)}: call graph (client populations and Services)")
    return fig
