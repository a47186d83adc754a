"""The run over time: throughput, failures by reason, latency percentiles and, when the
frame has them, ready endpoints per node -- with the run's events marked on every panel.

Reads ``result.timeseries`` (columns ``replication, time`` (bucket start, s), ``sent``,
``completed``, ``failed``, ``throughput``, ``failed_<reason>``, ``latency_p50``,
``latency_p99``, optionally ``ready_endpoints:<node>``) and ``result.events``
(``replication, time, kind, subject, detail``). Several replications are averaged per
bucket; events are those of the first replication.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from npsim.plots._common import MS, new_figure


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
    time = mean.index.to_numpy(dtype=float)
    width = float(np.median(np.diff(time))) if len(time) > 1 else 1.0
    reasons = [c for c in mean.columns if c.startswith("failed_") and mean[c].any()]
    ready = [c for c in mean.columns if c.startswith("ready_endpoints:")]
    panels = 3 + bool(ready)
    fig, axes = new_figure(8.0, 2.0 + 1.7 * panels, nrows=panels, sharex=True)
    centre = time + width / 2
    throughput, failures, latency = axes[0], axes[1], axes[2]
    throughput.plot(centre, mean["throughput"], label="completed/s")
    if "sent" in mean:
        throughput.plot(centre, mean["sent"] / width, linestyle="--", linewidth=1,
                        label="sent/s")
    throughput.set_ylabel("requests/s")
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
    if ready:
        panel = axes[3]
        for column in ready:
            panel.step(time, mean[column], where="post", label=column.split(":", 1)[1])
        panel.set_ylabel("ready endpoints")
        panel.yaxis.set_major_locator(MaxNLocator(integer=True))
        values = mean[ready].to_numpy(dtype=float)
        panel.set_ylim(np.nanmin(values) - 0.6, np.nanmax(values) + 0.6)
        panel.legend(loc="best", fontsize="small", ncols=min(len(ready), 4))
    axes[-1].set_xlabel("simulated time (s)")
    _mark_events(axes, _frame(result, "events"))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Throughput, failures and latency over time")
    return fig


def _mark_events(axes: Any, events: pd.DataFrame | None) -> None:
    """A vertical line per event on every panel; the top panel labels each cluster of
    nearby events with its first event and how many follow."""
    if events is None:
        return
    first = events[events["replication"] == events["replication"].min()].sort_values("time")
    top = axes[0]
    low, high = top.get_xlim()
    close = 0.04 * (high - low)  # events nearer than this share one label
    clusters: list[list[Any]] = []
    for row in first.itertuples():
        if clusters and row.time - clusters[-1][0].time <= close:
            clusters[-1].append(row)
        else:
            clusters.append([row])
        for ax in axes:
            ax.axvline(row.time, color="#9467bd", linestyle=":", linewidth=1)
    for i, cluster in enumerate(clusters):
        head = cluster[0]
        more = f" (+{len(cluster) - 1})" if len(cluster) > 1 else ""
        top.annotate(f"{head.kind} {head.subject}{more}".strip(), (head.time, 1.0),
                     xycoords=("data", "axes fraction"), xytext=(3, -10 - 11 * (i % 2)),
                     textcoords="offset points", fontsize="x-small", color="#6a3d9a")
