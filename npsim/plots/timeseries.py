"""The run over time: throughput, failures by reason, the failed share per entry node
(from ``result.requests``, when something failed), latency percentiles and, when the
frame has them, ready endpoints per node and the external balancer's view of the nodes
-- with the run's events marked on every panel.

Reads ``result.timeseries`` (columns ``replication, time`` (bucket start, s), ``sent``,
``completed``, ``failed``, ``throughput``, ``failed_<reason>``, ``latency_p50``,
``latency_p99``), ``result.node_timeseries`` (``replication, time, node``,
``ready_endpoints``, optionally ``lb_up`` or ``lb_up:<population>``; a result saved by
an older npsim has them as columns ``ready_endpoints:<node>``, ``lb_up:<node>`` of the
time series instead, drawn the same) and ``result.events`` (``replication, time, kind,
subject, detail``). In a run whose pods call Services the columns and the failed share
per entry node are the clients' own requests (:mod:`npsim.plots.entries`). Several
replications are averaged per bucket; events are those of the first replication. Events
close in time share a number on the top panel, and a key under the figure says what each
number is, so labels never overlap however many events happen at once.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from npsim.plots._common import MS, new_figure
from npsim.plots.entries import client_rows
from npsim.results.frames import category_code, codes

MAX_NODES_DRAWN = 12  # more nodes: the panels draw a summary over them, not a line each


def _frame(result: Any, name: str) -> pd.DataFrame | None:
    frame = getattr(result, name, None)
    return frame if isinstance(frame, pd.DataFrame) and not frame.empty else None


def has_timeseries(result: Any) -> bool:
    return _frame(result, "timeseries") is not None


def timeseries(result: Any) -> Figure:
    """Throughput, failure rate by reason and latency p50/p99 against simulated time."""
    frame = _frame(result, "timeseries")
    if frame is None:
        raise ValueError("this result has no time series frame (result.timeseries)")
    mean = frame.drop(columns="replication").groupby("time", sort=True).mean()
    mean = mean.join(_node_columns(result))
    time = mean.index.to_numpy(dtype=float)
    width = float(np.median(np.diff(time))) if len(time) > 1 else 1.0
    reasons = [c for c in mean.columns if c.startswith("failed_") and mean[c].any()]
    ready = [c for c in mean.columns if c.startswith("ready_endpoints:")]
    balanced = [c for c in mean.columns if c.startswith("lb_up:")]
    # in a run whose pods call Services, the clients' own requests, as in the columns
    by_entry = entry_failure_ratio(_frame(result, "requests"), time, width,
                                   client_rows(result))
    extra = by_entry is not None
    panels = 3 + extra + bool(ready) + bool(balanced)
    fig, axes = new_figure(8.0, 2.0 + 1.7 * panels, nrows=panels, sharex=True)
    centre = time + width / 2
    throughput, failures, latency = axes[0], axes[1], axes[2 + extra]
    if by_entry is not None:
        _entry_panel(axes[2], time, by_entry)
    throughput.plot(centre, mean["throughput"], label="completed/s")
    if "sent" in mean:
        throughput.plot(centre, mean["sent"] / width, linestyle="--", linewidth=1,
                        label="sent/s")
    throughput.set_ylabel("client requests/s" if "calls_sent" in mean else "requests/s")
    throughput.legend(loc="best", fontsize="small")
    bottom = np.zeros(len(time))
    for column in reasons:
        rate = mean[column].to_numpy(dtype=float) / width
        failures.bar(time, rate, width, bottom=bottom, align="edge",
                     label=column[len("failed_"):])
        bottom += rate
    if not reasons:
        failures.text(0.5, 0.5, "no failures", transform=failures.transAxes, ha="center",
                      va="center", color="grey")
    else:
        failures.legend(loc="best", fontsize="small")
    failures.set_ylabel("failures/s")
    for column, style in (("latency_p50", "-"), ("latency_p99", "-")):
        if column in mean:
            latency.plot(centre, mean[column] * MS, linestyle=style, label=column[8:])
    latency.set_ylabel("latency (ms)")
    latency.legend(loc="best", fontsize="small")
    down = down_intervals(_frame(result, "events"))
    if ready:
        panel = axes[3 + extra]
        if len(ready) <= MAX_NODES_DRAWN:
            _ready_lines(panel, time, width, mean[ready], down)
        else:  # one line per node would be unreadable: the spread over the nodes
            values = mean[ready].to_numpy(dtype=float)
            for label, row in (("max", np.nanmax(values, axis=1)),
                               ("median", np.nanmedian(values, axis=1)),
                               ("min", np.nanmin(values, axis=1))):
                panel.step(time, row, where="post", label=f"{label} of {len(ready)} nodes")
            values = mean[ready].to_numpy(dtype=float)
            panel.set_ylim(np.nanmin(values) - 0.6, np.nanmax(values) + 0.6)
        panel.set_ylabel("ready endpoints")
        panel.yaxis.set_major_locator(MaxNLocator(integer=True))
        panel.legend(loc="best", fontsize="small", ncols=min(len(panel.get_lines()), 4))
    if balanced:
        _balancer_lanes(axes[-1], time, width, mean[balanced])
    axes[-1].set_xlabel("simulated time (s)")
    _mark_events(axes, _frame(result, "events"))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Throughput, failures and latency over time")
    return fig


DOWN_STARTS = ("node_crash", "node_partition", "node_down")
DOWN_ENDS = ("node_recover", "node_heal")
STYLES = ("-", "--", ":", "-.")  # with the colours: no two node lines look alike


def down_intervals(events: pd.DataFrame | None) -> dict[str, list[tuple[float, float]]]:
    """Per node, the (start, end) times it was down in the first replication (crashed
    or cut off; ``inf`` when it was still down at the end)."""
    if events is None:
        return {}
    first = events[events["replication"] == events["replication"].min()].sort_values("time")
    spans: dict[str, list[tuple[float, float]]] = {}
    since: dict[str, float] = {}
    for row in first.itertuples():
        kind, node = str(row.kind), str(row.subject)
        if kind in DOWN_STARTS and node not in since:
            since[node] = float(row.time)
        elif kind in DOWN_ENDS and node in since:
            spans.setdefault(node, []).append((since.pop(node), float(row.time)))
    for node, start in since.items():
        spans.setdefault(node, []).append((start, np.inf))
    return spans


def _ready_lines(panel: Any, time: np.ndarray, width: float, ready: pd.DataFrame,
                 down: dict[str, list[tuple[float, float]]]) -> None:
    """A step line per node, each with its own dash pattern and a small vertical offset
    so nodes with the same count stay apart; while a node is down its line stops (its
    table is frozen, not healthy) and a grey band says "<node> down"."""
    ends = np.append(time, time[-1] + width) if len(time) else time
    spread = 0.08 * (len(ready.columns) - 1)
    for i, column in enumerate(ready.columns):
        node = column.split(":", 1)[1]
        values = ready[column].to_numpy(dtype=float).copy()
        for start, end in down.get(node, []):
            values[(time + width > start) & (time < end)] = np.nan
        offset = (i / max(len(ready.columns) - 1, 1) - 0.5) * spread
        panel.step(ends, np.append(values, values[-1:]) + offset, where="post", label=node,
                   linestyle=STYLES[i % len(STYLES)], linewidth=2)
    low, high = np.nanmin(ready.to_numpy(dtype=float)), np.nanmax(ready.to_numpy(dtype=float))
    for row, (node, spans) in enumerate(sorted(down.items())):
        if f"ready_endpoints:{node}" not in ready.columns:
            continue
        for start, end in spans:
            stop = min(end, ends[-1])
            panel.axvspan(start, stop, color="#bbbbbb", alpha=0.35, linewidth=0, gid="down")
            panel.text((start + stop) / 2, high + 0.35 - 0.3 * row, f"{node} down",
                       ha="center", va="center", color="#555555", gid="down")
    panel.set_ylim(low - 0.6, high + 0.6 + 0.3 * max(len(down) - 1, 0))


def entry_failure_ratio(requests: pd.DataFrame | None, time: np.ndarray,
                        width: float, rows: np.ndarray | None = None) -> pd.DataFrame | None:
    """Per bucket (rows, by the end time of each request) and entry node (columns): the
    failed share of the requests that ended, pooled over replications (NaN where none
    ended). None without a requests frame or when nothing failed. Counted over category
    codes, a few arrays of the frame's length. ``rows``: the requests counted (a boolean
    mask; default all)."""
    if requests is None or "entry_node" not in requests or not len(time):
        return None
    outcome = codes(requests["outcome"])
    failed = outcome == category_code(requests["outcome"], "failed")
    if rows is not None:
        failed &= rows
    if not failed.any():
        return None
    ended = failed | (outcome == category_code(requests["outcome"], "completed"))
    if rows is not None:
        ended &= rows
    bucket = np.floor((requests["t_end"].to_numpy(dtype=float) - time[0]) / width)
    entry = codes(requests["entry_node"]).astype(np.int64)
    ended &= (entry >= 0) & (bucket >= 0) & (bucket < len(time))
    nodes = requests["entry_node"].cat.categories
    cell = entry * len(time) + np.nan_to_num(bucket, nan=0.0).astype(np.int64)
    size = len(nodes) * len(time)
    total = np.bincount(cell[ended], minlength=size).reshape(len(nodes), len(time))
    lost = np.bincount(cell[ended & failed], minlength=size).reshape(len(nodes), len(time))
    ratio = np.divide(lost, total, out=np.full(total.shape, np.nan), where=total > 0)
    used = total.sum(axis=1) > 0
    return pd.DataFrame(ratio[used].T, index=time,
                        columns=[str(n) for n, u in zip(nodes, used, strict=True) if u])


def _entry_panel(panel: Any, time: np.ndarray, ratio: pd.DataFrame) -> None:
    """The failed share per entry node, in percent: a line per node, or past
    ``MAX_NODES_DRAWN`` nodes the highest, median and lowest over them."""
    if len(ratio.columns) <= MAX_NODES_DRAWN:
        for i, node in enumerate(ratio.columns):
            panel.step(time, ratio[node] * 100, where="post", label=node,
                       linestyle=STYLES[i % len(STYLES)], linewidth=1.5)
    else:
        values = ratio.to_numpy(dtype=float) * 100
        with warnings.catch_warnings():  # a bucket where nothing ended: NaN, no warning
            warnings.simplefilter("ignore", RuntimeWarning)
            for label, row in (("max", np.nanmax(values, axis=1)),
                               ("median", np.nanmedian(values, axis=1)),
                               ("min", np.nanmin(values, axis=1))):
                panel.step(time, row, where="post", label=f"{label} of {values.shape[1]} nodes")
    panel.set_ylabel("failed %\nby entry node")
    panel.set_ylim(-3, 103)
    panel.legend(loc="best", fontsize="small", ncols=min(len(panel.get_lines()), 4))


def _node_columns(result: Any) -> pd.DataFrame:
    """The per-node views averaged over replications, a column per node as the panels
    draw them: ``ready_endpoints:<node>``, ``lb_up:<node>`` (``lb_up:<population>/<node>``
    with several balanced populations)."""
    frame = _frame(result, "node_timeseries")
    if frame is None:
        return pd.DataFrame()
    views = [c for c in frame.columns if c == "ready_endpoints" or c.split(":")[0] == "lb_up"]
    mean = frame.groupby(["time", "node"], observed=True, sort=True)[views].mean()
    wide = mean.unstack("node")
    return pd.DataFrame({f"{view}{'/' if ':' in view else ':'}{node}": wide[(view, node)]
                         for view in views for node in wide[view].columns})


LANE = 0.8  # height of a node's lane in the balancer panel: 1 in rotation, 0 out


def _balancer_lanes(panel: Any, time: np.ndarray, width: float, up: pd.DataFrame) -> None:
    """One lane per node: its line is high while the external balancer sends it traffic
    and drops (shaded) while it is marked down; with replications, the share of them
    in which it is in rotation. Past ``MAX_NODES_DRAWN`` nodes, one line: how many are
    in rotation."""
    ends = np.append(time, time[-1] + width) if len(time) else time
    if len(up.columns) > MAX_NODES_DRAWN:
        count = up.to_numpy(dtype=float).sum(axis=1)
        panel.step(ends, np.append(count, count[-1:]), where="post", color="#2ca02c",
                   label=f"nodes in rotation (of {len(up.columns)})")
        panel.set_ylim(-0.5, len(up.columns) + 0.5)
        panel.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count of nodes
        panel.set_ylabel("balancer")
        panel.legend(loc="best", fontsize="small")
        return
    for lane, column in enumerate(up.columns):
        base = len(up.columns) - 1 - lane  # the first node on top
        value = up[column].to_numpy(dtype=float)
        level = base + LANE * np.append(value, value[-1:])
        panel.step(ends, level, where="post", color="#2ca02c", linewidth=1.5)
        panel.fill_between(ends, level, base + LANE, step="post", color="#d62728",
                           alpha=0.3, linewidth=0)
    panel.set_yticks([len(up.columns) - 1 - i + LANE / 2 for i in range(len(up.columns))],
                     [c.split(":", 1)[1] for c in up.columns], fontsize="small")
    panel.set_ylim(-0.2, len(up.columns))
    panel.set_ylabel("balancer:\nin rotation")


MAX_KEYS = 12  # event groups listed under the figure; the rest are counted


def _mark_events(axes: Any, events: pd.DataFrame | None) -> None:
    """A vertical line per event on every panel; events close together form a group,
    numbered on the top panel and listed, with their times, in a key under the figure."""
    if events is None:
        return
    first = events[events["replication"] == events["replication"].min()].sort_values("time")
    top = axes[0]
    low, high = top.get_xlim()
    close = 0.04 * (high - low)  # events nearer than this share one number
    groups: list[list[Any]] = []
    for row in first.itertuples():
        if groups and row.time - groups[-1][0].time <= close:
            groups[-1].append(row)
        else:
            groups.append([row])
        for ax in axes:
            ax.axvline(row.time, color="#9467bd", linestyle=":", linewidth=1)
    keys = []
    digits = key_digits([row.time for row in first.itertuples()])
    for number, group in enumerate(groups, start=1):
        top.annotate(str(number), (group[0].time, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(2, -11), textcoords="offset points", fontsize="medium",
                     color="#6a3d9a", fontweight="bold")
        keys.append(event_key(number, group, digits=digits))
    if len(keys) > MAX_KEYS:
        hidden = sum(len(g) for g in groups[MAX_KEYS:])
        keys = keys[:MAX_KEYS] + [f"... {len(groups) - MAX_KEYS} more groups "
                                  f"({hidden} events): result.events"]
    figure = top.get_figure()
    margin = KEY_LINE * len(keys) + 0.1  # inches under the panels for the key
    height = figure.get_figheight() + margin
    figure.set_figheight(height)
    figure.get_layout_engine().set(rect=(0, margin / height, 1, 1 - margin / height))
    figure.text(0.01, (margin - 0.05) / height, "\n".join(keys), fontsize="medium",
                color="#6a3d9a", va="top", ha="left", gid="event-key")


KEY_LINE = 0.2  # inches per line of the event key (at the figure's font size)


def key_digits(times: list[float]) -> int:
    """Decimals for every time in the key: none when all are whole seconds, else one
    (``60.0s-66.8s``), so no key line reads more precise than another."""
    return 0 if all(float(t).is_integer() for t in times) else 1


def event_key(number: int, group: list[Any], shown: int = 3, digits: int = 1) -> str:
    """``2  65.0s-66.8s: lb_mark_down node-2, lease_missed node-2 (+1 more)``."""
    start, end = group[0].time, group[-1].time
    when = (f"{start:.{digits}f}s" if f"{end:.{digits}f}" == f"{start:.{digits}f}"
            else f"{start:.{digits}f}s-{end:.{digits}f}s")
    names = [f"{e.kind} {e.subject}".strip() for e in group[:shown]]
    more = f" (+{len(group) - shown} more)" if len(group) > shown else ""
    return f"{number}  {when}: {', '.join(names)}{more}"
