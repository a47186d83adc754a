"""The report's figures as PNG bytes: drawn here, or shared out over a few processes
while this one writes the result's frames.

Drawing is most of what a report costs (the quick start's 8 figures: about 1.2 CPU-s,
and 0.45 s more for matplotlib's import, against 0.4 s of simulation), and each figure
reads only the run's frames, so figures can be drawn apart and the PNGs put together in
the report's order. ``npsim run`` starts a process that imports matplotlib
(:func:`prepare`) while the run simulates, and hands it the figures afterwards.
A share that no process drew (it could not start, or died) is drawn here: the report
is the same whichever way it was made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

Drawn = tuple[dict[str, bytes], dict[str, str]]  # PNG per figure; reason per figure not drawn
# CPU of building, drawing (in one pass) and encoding each figure of the quick start at
# 4 replications, in tenths of a second, matplotlib imported and its fonts loaded first
# (:func:`prepare`; the call graph's with networkx's import): to share the figures out
# evenly
COST = {"timeseries": 3.5, "call_graph": 2.4, "traffic_matrix": 2.1, "latency_cdf": 1.9,
        "latency_breakdown": 1.5, "cluster": 1.5, "pod_load": 1.3, "lorenz": 1.3,
        "latency_percentiles": 1.2}


# npsim.plots.FIGURES' names (a test holds them equal), here without importing matplotlib:
# a process that only hands the figures out never loads it
ORDER = ("latency_cdf", "latency_percentiles", "latency_breakdown", "pod_load", "lorenz",
         "traffic_matrix", "cluster", "timeseries")


def figure_names(result: Any) -> list[str]:
    """The figures a report of ``result`` tries to draw, in the report's order."""
    names = list(ORDER)
    if getattr(result, "calls", None) is not None:  # pods called Services
        names.append("call_graph")
    return names


def draw_pngs(result: Any, names: Sequence[str]) -> Drawn:
    """Each named figure as PNG bytes, and for those with nothing to draw (no completed
    request, no time series) the reason."""
    from npsim.plots import FIGURES
    from npsim.plots.callgraph import call_graph
    from npsim.plots.timeseries import has_timeseries
    from npsim.report.html import png_bytes

    pngs, skipped = {}, {}
    for name in names:
        if name == "timeseries" and not has_timeseries(result):
            skipped[name] = "this result has no time series"
            continue
        plot = call_graph if name == "call_graph" else FIGURES[name]
        try:
            figure = plot(result)
        except ValueError as exc:  # e.g. no completed request: nothing to draw
            if name == "call_graph":
                raise
            skipped[name] = str(exc)
            continue
        pngs[name] = png_bytes(figure)
    return pngs, skipped


def prepare() -> None:
    """What drawing needs before any figure, done ahead (e.g. in a process started while
    the run simulates: :class:`npsim.parallel.standby.Standby`): matplotlib and the plots
    imported, and a small figure drawn so its fonts are found and loaded."""
    from npsim.plots._common import new_figure
    from npsim.report.html import png_bytes

    fig, ax = new_figure(1.0, 1.0)
    ax.set_title("a", fontsize="small")
    ax.set_xlabel("b")
    ax.plot([0, 1], [0, 1], label="c")
    ax.legend(loc="best", fontsize="small")
    png_bytes(fig, dpi=20)
    import npsim.plots  # noqa: F401 - every figure's module


def shares(names: Sequence[str], processes: int) -> list[list[str]]:
    """``names`` dealt to at most ``processes`` groups of about the same cost (the
    costliest first, each to the group with the least so far)."""
    groups: list[list[str]] = [[] for _ in range(max(1, min(processes, len(names))))]
    load = [0.0] * len(groups)
    for name in sorted(names, key=lambda n: -COST.get(n, 2.0)):
        least = load.index(min(load))
        groups[least].append(name)
        load[least] += COST.get(name, 2.0)
    return groups


def start_drawing(result: Any, processes: int = 1,
                  fork: Callable[[list[Callable[[], Drawn]]], Callable[[], list[Any]]]
                  | None = None) -> Callable[[], Drawn]:
    """Start drawing the report's figures; returns ``finish()``, which gives them in the
    report's order (waiting for them). With ``processes`` > 1 and ``fork`` (e.g.
    :func:`npsim.parallel.forked.fork_calls`), the figures are shared out over that many
    forked processes now, and this one is free until ``finish()``; otherwise they are
    drawn in ``finish()``."""
    names = figure_names(result)
    if processes <= 1 or fork is None or len(names) < 2:
        return lambda: draw_pngs(result, names)
    groups = shares(names, processes)
    wait = fork([partial(draw_pngs, result, group) for group in groups])

    def finish() -> Drawn:
        pngs: dict[str, bytes] = {}
        skipped: dict[str, str] = {}
        for group, drawn in zip(groups, wait(), strict=True):
            if drawn is None:  # its process failed: drawn here (and its error met here)
                drawn = draw_pngs(result, group)
            pngs.update(drawn[0])
            skipped.update(drawn[1])
        return ({n: pngs[n] for n in names if n in pngs},
                {n: skipped[n] for n in names if n in skipped})

    return finish
