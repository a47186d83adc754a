"""The cluster as a graph: nodes grouped by zone, pods on their nodes, and the traffic
from each entry node to each pod as an arrow whose width is its share of requests.
Cross-node flows are orange, cross-zone flows red, so they stand out; connections that
failed are drawn apart, as dashed dark-red arrows to the pod they were sent to, or a
count under the entry node when they failed before a pod was chosen."""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

from npsim.plots._common import labelled, new_figure
from npsim.results.shares import failure_matrix, traffic_matrix

SAME_NODE, CROSS_NODE, CROSS_ZONE = "#7f7f7f", "#ff7f0e", "#d62728"
FAILED = "#67000d"  # dashed: connections that failed
MAX_WIDTH = 9.0
POD_GAP = 0.6  # data units between pods of one node


def traffic_graph(result: Any) -> nx.DiGraph:
    """Directed graph: vertices ``("node", name)`` (attrs zone, received) and
    ``("pod", name)`` (attrs node); an edge per entry node -> serving pod pair with
    ``requests`` (measured requests that reached the pod), ``failed`` (measured
    connections sent to the pod that failed), ``cross_node`` and ``cross_zone``. A node
    vertex's ``failed`` counts the measured requests that entered it and failed before
    a pod was chosen."""
    res = labelled(result)[0][1]
    graph = nx.DiGraph()
    nodes = res.nodes.groupby("node", sort=False, observed=True).agg(
        zone=("zone", "first"), received=("received", "sum"))
    for node, row in nodes.iterrows():
        graph.add_node(("node", node), kind="node", zone=row["zone"],
                       received=int(row["received"]))
    for _, row in res.pods.drop_duplicates("pod").iterrows():
        graph.add_node(("pod", row["pod"]), kind="pod", node=row["node"])
    matrix = traffic_matrix(res.requests)
    failed, unplaced = failure_matrix(res.requests)
    for entry in matrix.index:
        if ("node", entry) in graph:
            graph.nodes[("node", entry)]["failed"] = int(unplaced[entry])
        for pod in matrix.columns:
            count, lost = int(matrix.loc[entry, pod]), int(failed.loc[entry, pod])
            if count or lost:
                pod_node = graph.nodes[("pod", pod)]["node"]
                zones = (graph.nodes[("node", entry)]["zone"],
                         graph.nodes[("node", pod_node)]["zone"])
                graph.add_edge(("node", entry), ("pod", pod), requests=count, failed=lost,
                               cross_node=pod_node != entry, cross_zone=zones[0] != zones[1])
    return graph


def _layout(graph: nx.DiGraph) -> tuple[dict[Any, tuple[float, float]], dict[str, list]]:
    """Nodes in a row, zone by zone with a gap between zones; each node's pods fanned
    out below it."""
    pos: dict[Any, tuple[float, float]] = {}
    zones: dict[str, list] = {}
    for vertex, data in graph.nodes(data=True):
        if data["kind"] == "node":
            zones.setdefault(data["zone"], []).append(vertex)
    x = 0.0
    for zone in sorted(zones):
        for vertex in zones[zone]:
            pos[vertex] = (x, 1.0)
            pods = [v for v, d in graph.nodes(data=True)
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
    graph = traffic_graph(result)
    pos, zones = _layout(graph)
    span = max(x for x, _ in pos.values()) + 1
    fig, ax = new_figure(max(7.0, 1.5 * span + 1.5), 5.0)
    for zone, members in sorted(zones.items()):
        xs = [pos[v][0] for v in members] + [pos[p][0] for p in graph.nodes
                                             if graph.nodes[p].get("node") in
                                             {m[1] for m in members}]
        left, right = min(xs) - 0.4, max(xs) + 0.4
        ax.add_patch(FancyBboxPatch((left, -0.35), right - left, 1.75,
                                    boxstyle="round,pad=0.02", facecolor="#f2f2f2",
                                    edgecolor="#bbbbbb", zorder=0))
        ax.text((left + right) / 2, 1.48, zone, ha="center", fontsize="small", color="#555")
    node_vertices = [v for v in graph if graph.nodes[v]["kind"] == "node"]
    pod_vertices = [v for v in graph if graph.nodes[v]["kind"] == "pod"]
    received = np.array([graph.nodes[v]["received"] for v in node_vertices], dtype=float)
    sizes = 900 + 1500 * received / received.max() if received.max() > 0 else 900
    nx.draw_networkx_nodes(graph, pos, nodelist=node_vertices, node_shape="s",
                           node_size=sizes, node_color="#c6dbef", edgecolors="#3182bd",
                           ax=ax)
    nx.draw_networkx_nodes(graph, pos, nodelist=pod_vertices, node_size=500,
                           node_color="#c7e9c0", edgecolors="#31a354", ax=ax)
    nx.draw_networkx_labels(graph, pos, {v: v[1] for v in node_vertices},
                            font_size=8, ax=ax)
    nx.draw_networkx_labels(graph, {v: (x, y - 0.22) for v, (x, y) in pos.items()},
                            {v: v[1] for v in pod_vertices}, font_size=7, ax=ax)
    edges = list(graph.edges(data=True))
    total = sum(d["requests"] for _, _, d in edges) or 1
    heaviest = max((max(d["requests"], d["failed"]) for _, _, d in edges), default=1) or 1
    for u, v, d in edges:
        if d["requests"]:
            nx.draw_networkx_edges(
                graph, pos, edgelist=[(u, v)], width=0.5 + MAX_WIDTH * d["requests"] / heaviest,
                edge_color=_colour(d), alpha=0.75,
                arrows=True, arrowstyle="-|>", node_size=700,
                connectionstyle="arc3,rad=0.15" if d["cross_node"] else "arc3,rad=0.0", ax=ax)
        if d["failed"]:  # bent the other way, so it never hides the served flow
            nx.draw_networkx_edges(
                graph, pos, edgelist=[(u, v)], width=0.5 + MAX_WIDTH * d["failed"] / heaviest,
                edge_color=FAILED, alpha=0.8, style="dashed", arrows=True,
                arrowstyle="-[", node_size=700, connectionstyle="arc3,rad=-0.2", ax=ax)
    lost_here = {v: graph.nodes[v].get("failed", 0) for v in node_vertices}
    for v, lost in lost_here.items():
        if lost:
            ax.text(pos[v][0], pos[v][1] + 0.27, f"\u2717 {lost:,} failed here", ha="center",
                    fontsize=7, color=FAILED, fontweight="bold", gid="failed")
    failed_total = sum(d["failed"] for _, _, d in edges) + sum(lost_here.values())
    handles = []
    for colour, label in ((SAME_NODE, "same node"), (CROSS_NODE, "to another node"),
                          (CROSS_ZONE, "to another zone")):
        share = sum(d["requests"] for _, _, d in edges if _colour(d) == colour) / total
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


def _colour(flow: dict[str, Any]) -> str:
    if flow["cross_zone"]:
        return CROSS_ZONE
    return CROSS_NODE if flow["cross_node"] else SAME_NODE
