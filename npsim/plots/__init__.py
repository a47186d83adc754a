"""Figures of a run, as matplotlib Figures that read only a run's frames.

>>> import npsim
>>> result = npsim.run(npsim.bundled("quickstart"))
>>> result.plot.latency_cdf()             # the same as npsim.plots.latency_cdf(result)
>>> npsim.plots.latency_cdf({"before": a, "after": b})   # variants side by side

Figures are made outside pyplot (no global state): a notebook shows the one a cell
returns; ``fig.savefig("x.png")`` writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from npsim.plots._common import RunFrames
from npsim.plots.callgraph import call_graph
from npsim.plots.cluster import cluster, traffic_graph
from npsim.plots.latency import latency_breakdown, latency_cdf, latency_percentiles
from npsim.plots.load import lorenz, pod_load, traffic_heatmap
from npsim.plots.timeseries import has_timeseries, timeseries

# every figure of one run, in the order a report shows them
FIGURES: dict[str, Callable[..., Figure]] = {
    "latency_cdf": latency_cdf,
    "latency_percentiles": latency_percentiles,
    "latency_breakdown": latency_breakdown,
    "pod_load": pod_load,
    "lorenz": lorenz,
    "traffic_matrix": traffic_heatmap,
    "cluster": cluster,
    "timeseries": timeseries,
}
# the report's and result.plot's name, so npsim.plots.NAME(result) works for every NAME
traffic_matrix = traffic_heatmap


def _method(name: str, plot: Callable[..., Figure]) -> Callable[..., Figure]:
    def method(self: PlotAccessor, **options: Any) -> Figure:
        return plot(self._result, **options)

    method.__name__ = name
    method.__doc__ = plot.__doc__
    return method


class PlotAccessor:
    """``result.plot.<name>()``: each figure of :data:`FIGURES` for this Result."""

    def __init__(self, result: RunFrames) -> None:
        self._result = result

    def __dir__(self) -> list[str]:
        return list(FIGURES)


for _name, _plot in FIGURES.items():
    setattr(PlotAccessor, _name, _method(_name, _plot))
# only for runs whose pods call Services (workloads' calls:): not in every report
PlotAccessor.call_graph = _method("call_graph", call_graph)  # type: ignore[attr-defined]


def figures_for(result: RunFrames) -> tuple[dict[str, Figure], dict[str, str]]:
    """Every figure that applies to this Result, and for those with nothing to draw (no
    completed request, no time series) the reason."""
    figures, skipped = {}, {}
    for name, plot in FIGURES.items():
        if name == "timeseries" and not has_timeseries(result):
            skipped[name] = "this result has no time series"
            continue
        try:
            figures[name] = plot(result)
        except ValueError as exc:  # e.g. no completed request: nothing to draw
            skipped[name] = str(exc)
    if getattr(result, "calls", None) is not None:  # pods called Services
        figures["call_graph"] = call_graph(result)
    return figures, skipped


__all__ = ["FIGURES", "PlotAccessor", "cluster", "figures_for", "latency_breakdown",
           "call_graph", "latency_cdf", "latency_percentiles", "lorenz", "pod_load", "timeseries",
           "traffic_graph", "traffic_heatmap", "traffic_matrix"]
