"""Latency: the CDF, percentile bars and where the time goes, by population or variant."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from npsim.plots._common import (
    MS,
    completed,
    completed_values,
    groups,
    labelled,
    new_figure,
    path_parts,
    tail_is_long,
)
from npsim.plots.entries import components as entry_components
from npsim.plots.entries import entry_parts, has_calls, user_groups
from npsim.results.shares import failed_rows

PERCENTILES = (50, 90, 99, 99.9)
# the terms of latency = network + proxy + queue_wait + service, network split in two
COMPONENTS = ("client network", "hop", "proxy", "queue wait", "service")


def _quantile_grid() -> np.ndarray:
    """Probabilities to draw a CDF at: dense overall, denser in the tail (p99.999)."""
    body = np.linspace(0.0, 1.0, 1001)
    tail = 1.0 - np.logspace(-5, -1, 200)
    return np.unique(np.concatenate([body, tail]))


def title(what: str, kind: str, parts: list[tuple[str, Any]]) -> str:
    """``Latency CDF by variant`` when curves are compared, ``Latency CDF - quickstart``
    for a run with one population (nothing is compared "by scenario")."""
    return f"{what} - {parts[0][0]}" if kind == "scenario" else f"{what} by {kind}"


def latency_cdf(results: Any, log: bool | None = None, calls: bool = False) -> Figure:
    """Cumulative distribution of the latency of completed, measured requests, as a
    share of every measured request that ended: with failures the curve stops at
    1 - error_ratio, and a dashed line of its colour marks that level with the failed
    share above it (a run that sheds load cannot look fast).

    One curve per population (one Result) or per variant (a mapping or list of
    Results). ``log`` chooses a log x axis; by default it is used when the tail is long.
    When pods call Services, the curves are the clients' own requests (what users saw,
    the summary's scopes); ``calls=True`` adds a curve per call edge.
    """
    kind, parts = user_groups(results, calls)
    # a run's call edges: a legend of many curves goes below the axes (inside, it hid
    # the slowest curves, the clients' own among them), in two columns
    below = len(parts) > 3
    fig, ax = new_figure(7.0, 4.0 + (0.2 * ((len(parts) + 1) // 2) if below else 0.0))
    grid = _quantile_grid()
    every = []
    marked = False
    for label, req in parts:
        lat = completed_values(req, "latency") * MS
        if len(lat) == 0:
            continue
        every.append(lat)
        failed = int(failed_rows(req).sum())
        served = len(lat) / (len(lat) + failed)  # 1 - error_ratio
        text = f"{label} (n={len(lat):,}" + (f"; failed {1 - served:.1%})" if failed else ")")
        (line,) = ax.plot(np.quantile(lat, grid), grid * served, drawstyle="steps-post",
                          label=text)
        if failed:
            marked = True
            ax.axhline(served, color=line.get_color(), linestyle="--", linewidth=1.2,
                       gid="failed-share")
            ax.annotate(f"failed {1 - served:.1%} (never completed)", (1.0, served),
                        xycoords=("axes fraction", "data"), xytext=(-4, 3),
                        textcoords="offset points", ha="right", va="bottom",
                        fontsize="small", color=line.get_color())
    if not every:
        raise ValueError("no completed measured requests: nothing to draw")
    if log if log is not None else tail_is_long(np.concatenate(every)):
        ax.set_xscale("log")
    for q in (0.5, 0.99):
        ax.axhline(q, color="grey", linewidth=0.6, linestyle=":")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("latency of completed requests (ms)")
    ax.set_ylabel("fraction of measured requests")
    ax.set_title(title("Latency CDF", kind, parts) + " (after warm-up"
                 + ("; dashed: 1 - failed share)" if marked else "; none failed)"))
    if below:
        fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    else:
        ax.legend(loc="lower right", fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def latency_percentiles(results: Any, percentiles: tuple[float, ...] = PERCENTILES,
                        log: bool | None = None, calls: bool = False) -> Figure:
    """Bars of latency percentiles (p50, p90, p99, p99.9) per population or variant,
    pooled over replications: of the clients' own requests when pods call Services
    (``calls=True``: each call edge's too, as :func:`latency_cdf`)."""
    kind, parts = user_groups(results, calls)
    values = {}
    for label, req in parts:
        lat = completed_values(req, "latency") * MS
        if len(lat):
            values[label] = np.percentile(lat, percentiles)
    if not values:
        raise ValueError("no completed measured requests: nothing to draw")
    below = len(values) > 3  # as in latency_cdf: many bars, the legend below them
    fig, ax = new_figure(7.0, 4.0 + (0.2 * ((len(values) + 1) // 2) if below else 0.0))
    width = 0.8 / len(values)
    x = np.arange(len(percentiles))
    for i, (label, heights) in enumerate(values.items()):
        bars = ax.bar(x + (i - (len(values) - 1) / 2) * width, heights, width, label=label)
        ax.bar_label(bars, fmt="%.3g", fontsize="x-small", padding=1)
    ax.set_xticks(x, [f"p{p:g}" for p in percentiles])
    top = max(float(v.max()) for v in values.values())
    bottom = min(float(v.min()) for v in values.values())
    if log if log is not None else (bottom > 0 and top > 20 * bottom):
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, top * 1.25)  # room for the labels and the legend
    ax.set_ylabel("latency (ms)")
    ax.set_title(title("Latency percentiles", kind, parts))
    if below:  # inside, it covered the first bars and their values
        fig.legend(loc="outside lower center", ncols=2, fontsize="small")
    else:
        ax.legend(loc="upper left", fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


def component_means(req: Any) -> dict[str, float]:
    """Mean milliseconds per component over completed, measured requests: they add up
    to the mean latency."""
    parts = path_parts(completed(req, ["network", "hop", "proxy", "queue_wait", "service"]))
    return {name: float(np.mean(v)) * MS if len(v) else float("nan")
            for name, v in parts.items()}


def latency_breakdown(results: Any, split_cross_node: bool = False) -> Figure:
    """Where the time goes: mean client network, node-to-pod hop, kube-proxy, queue wait
    and service time per population or variant (stacked bars; they add up to the mean
    latency). ``split_cross_node`` draws same-node and cross-node requests apart.

    In a run whose pods call Services, the bars are the clients' own requests (a page,
    end to end): its own work, then the time each Service it called held it on the
    critical path (``via <service>``) and ``other`` (waits between calls), so they add
    up to the mean latency the summary gives (:mod:`npsim.plots.entries`)."""
    components: list[str] = list(COMPONENTS)
    colours: list[Any] = list(COLOURS)
    parts: list[tuple[str, Any]]
    if any(has_calls(res) for _, res in labelled(results)):  # pods called Services
        kind, rows = entry_parts(results, split_cross_node)
        parts = labelled(results)  # the title's label
        components = entry_components(rows)  # own work, via <service>..., other
        colours += [*_via_colours(len(components) - len(COMPONENTS) - 1), "#bdbdbd"]
    else:
        kind, parts = groups(results)
        rows = []
        for label, req in parts:
            if split_cross_node:
                cross = req["cross_node"].to_numpy()
                for name, mask in (("same node", ~cross), ("cross node", cross)):
                    if len(completed(req[mask])):
                        rows.append((f"{label}\n{name}", component_means(req[mask])))
            elif len(completed(req, ["latency"])):
                rows.append((label, component_means(req)))
    if not rows:
        raise ValueError("no completed measured requests: nothing to draw")
    fig, ax = new_figure(7.5, 1.6 + 0.55 * len(rows))
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    for component, colour in zip(components, colours, strict=True):
        widths = np.array([means.get(component, 0.0) for _, means in rows])
        ax.barh(y, widths, left=left, label=component, color=colour)
        left += widths
    for yi, total in zip(y, left, strict=True):
        ax.text(total, yi, f" {total:.3g} ms", va="center", fontsize="small")
    ax.set_yticks(y, [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, left.max() * 1.2)
    ax.set_xlabel("mean time per completed request (ms)" if components == list(COMPONENTS)
                  else "mean time per completed client request, end to end (ms)")
    ax.set_title(title("Latency breakdown", kind, parts))
    fig.legend(loc="outside lower center", ncols=min(len(components), 5), fontsize="small",
               frameon=False)
    return fig


COLOURS = ("#9ecae1", "#fd8d3c", "#756bb1", "#e6550d", "#31a354")


def _via_colours(n: int) -> list[Any]:
    """A colour per called Service, apart from the base terms' (tab20b, a hue apart)."""
    from matplotlib import colormaps

    cmap = colormaps["tab20b"]
    return [cmap((i * 4 + i // 5) % 20) for i in range(n)]
