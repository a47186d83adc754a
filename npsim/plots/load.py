"""How load lands: per-pod shares with the fair-share line, the entry-node x pod
traffic matrix (served requests, and apart from them in red the connections that
failed), and the Lorenz curve of pod shares with its Gini."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from npsim.plots._common import labelled, new_figure
from npsim.results.frames import codes
from npsim.results.shares import (
    failed_rows,
    failure_matrix,
    pod_shares,
    served_rows,
    traffic_matrix,
)
from npsim.results.skew import share_stats


def _one(result: Any) -> tuple[str, Any]:
    pairs = labelled(result)
    if len(pairs) != 1:
        raise TypeError("this plot shows one Result; compare variants with latency_cdf, "
                        "latency_percentiles or latency_breakdown")
    return pairs[0]


MAX_BARS = 48  # pods drawn one bar each; more are drawn as a distribution
MAX_MATRIX_NODES, MAX_MATRIX_PODS = 30, 40  # beyond, the matrix is aggregated by zone


def pod_load(result: Any) -> Figure:
    """Each pod's share of the measured requests that reached a pod, per population,
    with each population's fair share (1 / the most pods it could reach at one time: a
    pod and its replacement count once) as a dashed line.
    Beyond ``MAX_BARS`` pods, the distribution of each pod's load relative to its
    fair share (a bar per pod would be unreadable, and the figure as wide as a wall)."""
    name, res = _one(result)
    shares = pod_shares(res.requests, res.pods)
    if len(shares) > MAX_BARS:
        return _pod_load_distribution(name, shares)
    node_of = res.pods.drop_duplicates("pod").set_index("pod")["node"]
    fig, ax = new_figure(max(6.0, 1.0 + 0.9 * len(shares)), 4.0)
    x = np.arange(len(shares))
    width = 0.8 / max(len(shares.columns), 1)
    fair_lines: dict[int, list[str]] = {}  # pods reachable -> populations
    top = 0.0
    for i, population in enumerate(shares.columns):
        column = shares[population]
        offset = (i - (len(shares.columns) - 1) / 2) * width
        ax.bar(x + offset, column.fillna(0).to_numpy(), width, label=population)
        reachable = most_coexisting(res.pods, list(column.dropna().index),
                                    getattr(res, "events", None))
        if reachable:
            fair_lines.setdefault(reachable, []).append(str(population))
        top = max(top, float(column.max(skipna=True) or 0))
    for reachable, populations in fair_lines.items():
        who = "" if len(fair_lines) == 1 else f" ({', '.join(populations)})"
        ax.axhline(1 / reachable, color="black", linestyle="--", linewidth=1,
                   label=f"fair share 1/{reachable} = {1 / reachable:.1%}{who}"
                   + (f" ({reachable} pods at a time)" if reachable < len(shares) else ""))
        top = max(top, 1 / reachable)
    ax.set_xticks(x, [f"{pod}\n({node_of[pod]})" for pod in shares.index], fontsize="small")
    ax.set_ylim(0, top * 1.35 if top else 1)
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_ylabel("share of requests")
    ax.set_title(f"Per-pod load - {name}")
    ax.legend(loc="upper right", fontsize="small", ncols=2)
    ax.grid(axis="y", alpha=0.3)
    return fig


GONE = ("pod_terminating", "pod_evicted", "pod_deleted")  # a pod no longer chosen


def most_coexisting(pods: pd.DataFrame, names: list[str], events: pd.DataFrame | None
                    ) -> int:
    """The most of ``names`` alive at one time in any replication: from each pod's
    ``created_at`` until its ``deleted_at`` or the first event that takes it out of
    rotation (terminating, evicted). A pod replaced by another is one place, not two."""
    if not names:
        return 0
    part = pods[pods["pod"].isin(names)]
    if "created_at" not in part:
        return len(names)
    gone = None
    if events is not None and not events.empty:
        leaving = events[events["kind"].astype(str).isin(GONE)]
        gone = leaving.groupby(["replication", "subject"], observed=True)["time"].min()
    most = 0
    for replication, rows in part.groupby("replication", sort=False):
        start = rows["created_at"].fillna(-np.inf).to_numpy(dtype=float)
        end = rows["deleted_at"].fillna(np.inf).to_numpy(dtype=float)
        if gone is not None:
            left = [gone.get((replication, str(p)), np.inf) for p in rows["pod"]]
            end = np.minimum(end, np.array(left, dtype=float))
        # at equal times a pod leaves before its replacement arrives
        times = np.concatenate([end, start])
        steps = np.concatenate([-np.ones(len(end)), np.ones(len(start))])
        order = np.lexsort((steps, times))
        most = max(most, int(np.cumsum(steps[order]).max()))
    return max(most, 1)


def _pod_load_distribution(name: str, shares: Any) -> Figure:
    """Histogram of share x pods reachable (1 = the fair share) per population, with
    the least and most loaded pods named."""
    fig, ax = new_figure(7.5, 4.2)
    notes = []
    for population in shares.columns:
        column = shares[population].dropna()
        if column.empty:
            continue
        relative = column * len(column)
        ax.hist(relative.to_numpy(), bins=min(60, max(10, len(column) // 20)), alpha=0.55,
                label=f"{population} ({len(column):,} pods)")
        notes.append(f"{population}: least {relative.idxmin()} {relative.min():.2f}x, "
                     f"most {relative.idxmax()} {relative.max():.2f}x")
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="fair share")
    ax.set_xlabel("pod's share of requests / fair share (1 = even)")
    ax.set_ylabel("pods")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count of pods
    ax.set_title(f"Per-pod load, {len(shares):,} pods - {name}\n" + "; ".join(notes),
                 fontsize="medium")
    ax.legend(loc="upper right", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _zone_matrix(name: str, res: Any) -> Figure:
    """The traffic matrix summed by the entry node's zone and the serving pod's zone
    (counted over the frame's category codes: no node x pod table)."""
    requests = res.requests
    served = served_rows(requests)  # a mask: no copy of the served rows
    zone_of = res.nodes.drop_duplicates("node").set_index("node")["zone"].astype(str)
    node_of = res.pods.drop_duplicates("pod").set_index("pod")["node"].astype(str)
    names = sorted(set(zone_of))
    index = {z: i for i, z in enumerate(names)}
    node_zone = np.array([index[zone_of[n]] for n in
                          requests["entry_node"].cat.categories.astype(str)], dtype=np.int64)
    pod_zone = np.array([index[zone_of[node_of[p]]] for p in
                         requests["pod"].cat.categories.astype(str)], dtype=np.int64)
    rows = node_zone[codes(requests["entry_node"])[served]]
    cols = pod_zone[codes(requests["pod"])[served]]
    counts = np.bincount(rows * len(names) + cols, minlength=len(names) ** 2).reshape(
        len(names), len(names))
    # the failed connections, by the same codes (the pod's zone; -1: before a pod)
    failed = failed_rows(requests) & (codes(requests["entry_node"]) >= 0)
    pod_codes = codes(requests["pod"])[failed]
    rows = node_zone[codes(requests["entry_node"])[failed]]
    placed = pod_codes >= 0
    lost = np.bincount(rows[placed] * len(names) + pod_zone[pod_codes[placed]],
                       minlength=len(names) ** 2).reshape(len(names), len(names))
    before = np.bincount(rows[~placed], minlength=len(names))
    keep_rows = counts.sum(axis=1) + lost.sum(axis=1) + before > 0
    keep_cols = counts.sum(axis=0) + lost.sum(axis=0) > 0
    zones = pd.DataFrame(counts[keep_rows][:, keep_cols],
                         index=[z for z, k in zip(names, keep_rows, strict=True) if k],
                         columns=[z for z, k in zip(names, keep_cols, strict=True) if k])
    fig, ax = _heatmap(zones.to_numpy(), (2.5, 1.4, 2.2, 0.85), "medium",
                       [[r == c for c in zones.columns] for r in zones.index],
                       lost[keep_rows][:, keep_cols], before[keep_rows])
    ax.set_xticks(*_columns(list(zones.columns), before[keep_rows]))
    ax.set_yticks(np.arange(len(zones.index)), list(zones.index))
    ax.set_xlabel("serving pod's zone; orange frame: same zone as the entry")
    ax.set_ylabel("entry node's zone")
    ax.set_title(f"Traffic matrix by zone ({len(zone_of):,} nodes, {len(node_of):,} pods) "
                 f"- {name}")
    return fig


FAILED = "#d62728"  # failed connections: red text, a red dashed frame, a red column
BEFORE_A_POD = "failed before\na pod was chosen"


def _heatmap(counts: np.ndarray, size: tuple[float, float, float, float], fontsize: str,
             outlined: list[list[bool]], failed: np.ndarray | None = None,
             unplaced: np.ndarray | None = None) -> tuple[Figure, Any]:
    """Served counts as a heatmap with each cell's count and share of its row, the
    ``outlined`` cells framed. ``failed`` (same shape) adds, in red, the connections sent
    to that pod that failed; ``unplaced`` (per row), when any, a last red column of
    those that failed before a pod was chosen. The colours count served requests only.
    ``size``: (width base, width per column, height base, per row)."""
    extra = unplaced is not None and bool(unplaced.any())
    fig, ax = new_figure(max(5.0, size[0] + size[1] * (counts.shape[1] + extra)),
                         size[2] + size[3] * counts.shape[0])
    low, high = colour_range(counts)
    image = ax.imshow(counts, cmap="Blues", aspect="auto", vmin=low, vmax=high,
                      extent=(-0.5, counts.shape[1] - 0.5, counts.shape[0] - 0.5, -0.5))
    fig.colorbar(image, ax=ax, label="served requests")
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts, dtype=float), where=rows > 0)
    for (i, j), count in np.ndenumerate(counts):
        lost = int(failed[i, j]) if failed is not None else 0
        dark = image.cmap(image.norm(count))[:3]  # white text on the darker half
        ax.text(j, i, f"{count:,}\n{share[i, j]:.0%}" + ("\n" if lost else ""),
                ha="center", va="center", fontsize=fontsize,
                color="white" if sum(dark) / 3 < 0.5 else "black")
        if lost:
            ax.text(j, i, f"\n\n\u2717 {lost:,} failed", ha="center", va="center",
                    fontsize=fontsize, color=FAILED, fontweight="bold", gid="failed")
            ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False,
                                   edgecolor=FAILED, linestyle="--", linewidth=1.2))
        if outlined[i][j]:
            ax.add_patch(_cell(i, j))
    if extra:
        j = counts.shape[1]
        for i, lost in enumerate(unplaced):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#fde0dd",
                                   edgecolor="white"))
            ax.text(j, i, f"\u2717 {int(lost):,} failed" if lost else "0", ha="center",
                    va="center", fontsize=fontsize, color=FAILED, gid="failed")
        ax.set_xlim(-0.5, j + 0.5)
    return fig, ax


def _columns(labels: list[str], unplaced: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Tick positions and labels, with the "failed before a pod" column when drawn."""
    if unplaced.any():
        labels = [*labels, BEFORE_A_POD]
    return np.arange(len(labels)), labels


def traffic_heatmap(result: Any) -> Figure:
    """Requests from each entry node (rows) to each serving pod (columns); a cell off
    the pod's own node is a cross-node hop. Cells show counts and the row's share.
    Beyond 30 nodes or 40 pods, summed by zone (entry node's zone x pod's zone)."""
    name, res = _one(result)
    if (len(res.requests["entry_node"].cat.categories) > MAX_MATRIX_NODES
            or len(res.requests["pod"].cat.categories) > MAX_MATRIX_PODS):
        return _zone_matrix(name, res)
    matrix = traffic_matrix(res.requests)
    failed, unplaced = failure_matrix(res.requests)
    node_of = res.pods.drop_duplicates("pod").set_index("pod")["node"]
    fig, ax = _heatmap(matrix.to_numpy(), (1.8, 1.3, 1.8, 0.85), "medium",
                       [[node_of.get(pod) == node for pod in matrix.columns]
                        for node in matrix.index],
                       failed.reindex_like(matrix).to_numpy(),
                       unplaced.reindex(matrix.index).to_numpy())
    ax.set_xticks(*_columns([f"{p}\n({node_of.get(p, '?')})" for p in matrix.columns],
                            unplaced.to_numpy()), fontsize="small")
    ax.set_yticks(np.arange(len(matrix.index)), list(matrix.index))
    ax.set_xlabel("serving pod (its node); orange frame: same node as the entry")
    ax.set_ylabel("entry node")
    lost = int(failed.to_numpy().sum() + unplaced.sum())
    ax.set_title(f"Traffic matrix, entry node -> pod - {name}"
                 + (f"\nserved (blue); \u2717 {lost:,} failed connections in red"
                    if lost else ""))
    return fig


SAME = "#ff7f0e"  # the same-node (same-zone) frame: a colour no Blues cell has


def _cell(i: int, j: int) -> Rectangle:
    return Rectangle((j - 0.4, i - 0.4), 0.8, 0.8, fill=False, edgecolor=SAME,
                     linewidth=3, gid="same-node")


def colour_range(counts: np.ndarray) -> tuple[float, float]:
    """The colour scale spans the data: the least-served cell light, the most-served
    dark, so cells that differ by a few percent still look different (a scale from 0
    paints an even spread one dark blue). Cells that all hold the same count get the
    middle of the scale."""
    if not counts.size:
        return 0.0, 1.0
    low, high = float(counts.min()), float(counts.max())
    if high == low:
        return low - 1.0, high + 1.0
    return max(low - 0.1 * (high - low), 0.0), high

def lorenz_points(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of pods (x) against cumulative share of requests (y), pods
    from least to most loaded, starting at (0, 0)."""
    x = np.sort(np.asarray(counts, dtype=float))
    pods = np.arange(len(x) + 1) / len(x)
    load = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    return pods, load


def lorenz(result: Any) -> Figure:
    """Lorenz curve of per-pod load for each population, Gini in the legend: the
    diagonal is perfectly even; the further below, the more skewed (e.g. affinity
    behind a NAT)."""
    name, res = _one(result)
    shares = pod_shares(res.requests, res.pods)
    fig, ax = new_figure(5.5, 5.0)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly even (Gini 0)")
    for population in shares.columns:
        column = shares[population].dropna()
        if column.sum() <= 0:
            continue
        x, y = lorenz_points(column.to_numpy())
        gini = share_stats(column.to_numpy())["gini"]
        ax.plot(x, y, marker="o", markersize=3, label=f"{population} (Gini {gini:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("share of pods, least loaded first")
    ax.set_ylabel("share of requests")
    ax.set_title(f"Load inequality across pods - {name}")
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    return fig
