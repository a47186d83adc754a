"""The cluster as a graph: nodes grouped by zone, pods on their nodes, and the traffic
from each entry node to each pod as an arrow whose width is its share of requests.
Cross-node flows are orange, cross-zone flows red, so they stand out; connections that
failed are drawn apart, as dashed dark-red arrows to the pod they were sent to, or a
count under the entry node when they failed before a pod was chosen."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import to_rgba_array
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import ConnectionStyle, FancyArrowPatch, FancyBboxPatch

from npsim.plots._common import labelled, new_figure
from npsim.results.shares import failure_matrix, traffic_matrix

SAME_NODE, CROSS_NODE, CROSS_ZONE = "#7f7f7f", "#ff7f0e", "#d62728"
FAILED = "#67000d"  # dashed: connections that failed
MAX_WIDTH = 9.0
POD_GAP = 0.6  # data units between pods of one node


Vertex = tuple[str, str]  # ("node", name) or ("pod", name)
Flow = tuple[Vertex, Vertex, dict[str, Any]]


def traffic_graph(result: Any) -> Any:
    """Directed graph (a ``networkx.DiGraph``): vertices ``("node", name)`` (attrs zone,
    received) and ``("pod", name)`` (attrs node); an edge per entry node -> serving pod
    pair with ``requests`` (measured requests that reached the pod), ``failed``
    (measured connections sent to the pod that failed), ``cross_node`` and
    ``cross_zone``. A node vertex's ``failed`` counts the measured requests that entered
    it and failed before a pod was chosen."""
    import networkx as nx  # only here: the figure draws without it

    vertices, flows = _traffic(result)
    graph = nx.DiGraph()
    for vertex, data in vertices.items():
        graph.add_node(vertex, **data)
    for u, v, data in flows:
        graph.add_edge(u, v, **data)
    return graph


def _traffic(result: Any) -> tuple[dict[Vertex, dict[str, Any]], list[Flow]]:
    """:func:`traffic_graph`'s vertices (with their attributes, nodes then pods) and
    edges (by entry node in the vertices' order, as the graph lists them)."""
    res = labelled(result)[0][1]
    vertices: dict[Vertex, dict[str, Any]] = {}
    nodes = res.nodes.groupby("node", sort=False, observed=True).agg(
        zone=("zone", "first"), received=("received", "sum"))
    for node, row in nodes.iterrows():
        vertices[("node", node)] = {"kind": "node", "zone": row["zone"],
                                    "received": int(row["received"])}
    for _, row in res.pods.drop_duplicates("pod").iterrows():
        vertices[("pod", row["pod"])] = {"kind": "pod", "node": row["node"]}
    matrix = traffic_matrix(res.requests)
    failed, unplaced = failure_matrix(res.requests)
    flows: dict[Vertex, list[Flow]] = {}
    for entry in matrix.index:
        if ("node", entry) in vertices:
            vertices[("node", entry)]["failed"] = int(unplaced[entry])
        for pod in matrix.columns:
            count, lost = int(matrix.loc[entry, pod]), int(failed.loc[entry, pod])
            if count or lost:
                pod_node = vertices[("pod", pod)]["node"]
                zones = (vertices[("node", entry)]["zone"],
                         vertices[("node", pod_node)]["zone"])
                flows.setdefault(("node", entry), []).append(
                    (("node", entry), ("pod", pod),
                     {"requests": count, "failed": lost, "cross_node": pod_node != entry,
                      "cross_zone": zones[0] != zones[1]}))
    return vertices, [flow for vertex in vertices for flow in flows.get(vertex, [])]


def _layout(vertices: dict[Vertex, dict[str, Any]]
            ) -> tuple[dict[Vertex, tuple[float, float]], dict[str, list]]:
    """Nodes in a row, zone by zone with a gap between zones; each node's pods fanned
    out below it."""
    pos: dict[Vertex, tuple[float, float]] = {}
    zones: dict[str, list] = {}
    for vertex, data in vertices.items():
        if data["kind"] == "node":
            zones.setdefault(data["zone"], []).append(vertex)
    x = 0.0
    for zone in sorted(zones):
        for vertex in zones[zone]:
            pos[vertex] = (x, 1.0)
            pods = [v for v, d in vertices.items()
                    if d["kind"] == "pod" and d["node"] == vertex[1]]
            for i, pod in enumerate(pods):
                pos[pod] = (x + (i - (len(pods) - 1) / 2) * POD_GAP, 0.0)
            x += max(1.4, POD_GAP * len(pods) + 0.5)
        x += 0.6  # gap between zones
    return pos, zones


MAX_NODES, MAX_PODS = 24, 96  # beyond, the drawing would be unreadable (and huge)


def cluster(result: Any) -> Figure:
    """Draw the cluster with the run's traffic (see :func:`traffic_graph`). A cluster
    of more than 24 nodes or 96 pods is not drawn (ValueError saying so): the traffic
    matrix shows it by zone."""
    name, res = labelled(result)[0]
    nodes, pods = res.nodes["node"].nunique(), res.pods["pod"].nunique()
    if nodes > MAX_NODES or pods > MAX_PODS:
        raise ValueError(f"{nodes:,} nodes and {pods:,} pods are too many to draw one by "
                         f"one (up to {MAX_NODES} nodes and {MAX_PODS} pods); the traffic "
                         "matrix shows the traffic by zone")
    vertices, flows = _traffic(result)
    pos, zones = _layout(vertices)
    span = max(x for x, _ in pos.values()) + 1
    fig, ax = new_figure(max(7.0, 1.5 * span + 1.5), 5.0)
    for zone, members in sorted(zones.items()):
        xs = [pos[v][0] for v in members] + [pos[p][0] for p in vertices
                                             if vertices[p].get("node") in
                                             {m[1] for m in members}]
        left, right = min(xs) - 0.4, max(xs) + 0.4
        ax.add_patch(FancyBboxPatch((left, -0.35), right - left, 1.75,
                                    boxstyle="round,pad=0.02", facecolor="#f2f2f2",
                                    edgecolor="#bbbbbb", zorder=0))
        ax.text((left + right) / 2, 1.48, zone, ha="center", fontsize="small", color="#555")
    node_vertices = [v for v in vertices if vertices[v]["kind"] == "node"]
    pod_vertices = [v for v in vertices if vertices[v]["kind"] == "pod"]
    received = np.array([vertices[v]["received"] for v in node_vertices], dtype=float)
    sizes = 900 + 1500 * received / received.max() if received.max() > 0 else 900
    _points(ax, [pos[v] for v in node_vertices], sizes, "s", "#c6dbef", "#3182bd")
    _points(ax, [pos[v] for v in pod_vertices], 500, "o", "#c7e9c0", "#31a354")
    _labels(ax, [(*pos[v], v[1]) for v in node_vertices], 8)
    _labels(ax, [(pos[v][0], pos[v][1] - 0.22, v[1]) for v in pod_vertices], 7)
    total = sum(d["requests"] for _, _, d in flows) or 1
    heaviest = max((max(d["requests"], d["failed"]) for _, _, d in flows), default=1) or 1
    for u, v, d in flows:
        if d["requests"]:
            _arrow(ax, pos[u], pos[v], 0.5 + MAX_WIDTH * d["requests"] / heaviest,
                   _colour(d), 0.75, "solid", "-|>",
                   "arc3,rad=0.15" if d["cross_node"] else "arc3,rad=0.0")
        if d["failed"]:  # bent the other way, so it never hides the served flow
            _arrow(ax, pos[u], pos[v], 0.5 + MAX_WIDTH * d["failed"] / heaviest, FAILED,
                   0.8, "dashed", "-[", "arc3,rad=-0.2")
    lost_here = {v: vertices[v].get("failed", 0) for v in node_vertices}
    for v, lost in lost_here.items():
        if lost:
            ax.text(pos[v][0], pos[v][1] + 0.27, f"\u2717 {lost:,} failed here", ha="center",
                    fontsize=7, color=FAILED, fontweight="bold", gid="failed")
    failed_total = sum(d["failed"] for _, _, d in flows) + sum(lost_here.values())
    handles = []
    for colour, label in ((SAME_NODE, "same node"), (CROSS_NODE, "to another node"),
                          (CROSS_ZONE, "to another zone")):
        share = sum(d["requests"] for _, _, d in flows if _colour(d) == colour) / total
        if share or colour == SAME_NODE:
            handles.append(Line2D([], [], color=colour, linewidth=3,
                                  label=f"{label}: {share:.0%} of requests"))
    if failed_total:
        handles.append(Line2D([], [], color=FAILED, linewidth=2, linestyle="--",
                              label=f"failed: {failed_total:,} connections "
                                    f"({failed_total / (failed_total + total):.0%})"))
    fig.legend(handles=handles, loc="outside lower center",
               ncols=len(handles) if len(handles) < 4 else 2,
               fontsize="small", frameon=False)
    ax.set_xlim(-0.9, span - 0.3)
    ax.set_ylim(-0.75, 1.65)
    ax.set_axis_off()
    ax.set_title(f"Cluster and traffic - {name}\n(arrow width: requests from the entry "
                 "node to the pod; node size: requests it received; dashed: failed)",
                 fontsize="medium")
    return fig


# Drawn as networkx's draw_networkx_nodes / _labels / _edges draw them (networkx 3.6,
# nx_pylab.py: a scatter above the arrows, centred labels, one FancyArrowPatch per edge
# shrunk to the marker's edge), without importing networkx (and pyplot, which it loads).
HIDDEN_TICKS = {"axis": "both", "which": "both", "bottom": False, "left": False,
                "labelbottom": False, "labelleft": False}
NODE_SIZE = 700  # the marker area (points^2) the arrows stop short of
ARROW_SCALE = 10


def _points(ax: Any, xy: list[tuple[float, float]], size: Any, shape: str, colour: str,
            edge: str) -> None:
    points = np.asarray(xy)
    collection = ax.scatter(points[:, 0], points[:, 1], s=size, c=colour, marker=shape,
                            edgecolors=edge)
    ax.tick_params(**HIDDEN_TICKS)
    collection.set_zorder(2)


def _labels(ax: Any, texts: list[tuple[float, float, str]], size: int) -> None:
    for x, y, text in texts:
        ax.text(x, y, text, size=size, color="k", family="sans-serif", weight="normal",
                horizontalalignment="center", verticalalignment="center",
                transform=ax.transData, clip_on=True)
    ax.tick_params(**HIDDEN_TICKS)


def _arrow(ax: Any, start: tuple[float, float], end: tuple[float, float], width: float,
           colour: str, alpha: float, style: str, arrowstyle: str, bend: str) -> None:
    """One edge: an arrow from ``start`` to ``end`` stopping at a 700-point marker's edge
    at both ends, then the view grown to hold it, as networkx does."""
    (x1, y1), (x2, y2) = np.asarray([(start, end)])[0]
    shrink = np.sqrt(NODE_SIZE) / 2
    ax.add_patch(FancyArrowPatch(
        (x1, y1), (x2, y2), arrowstyle=arrowstyle, shrinkA=shrink, shrinkB=shrink,
        mutation_scale=ARROW_SCALE, color=to_rgba_array(colour, alpha)[0],
        linewidth=width, connectionstyle=ConnectionStyle(bend), linestyle=style, zorder=1))
    low_x, high_x, low_y, high_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    pad_x, pad_y = 0.05 * (high_x - low_x), 0.05 * (high_y - low_y)
    ax.update_datalim(((low_x - pad_x, low_y - pad_y), (high_x + pad_x, high_y + pad_y)))
    ax.autoscale_view()
    ax.tick_params(**HIDDEN_TICKS)


def _colour(flow: dict[str, Any]) -> str:
    if flow["cross_zone"]:
        return CROSS_ZONE
    return CROSS_NODE if flow["cross_node"] else SAME_NODE
