"""What every plot needs: labelled inputs, the measured requests, figure defaults.

Plots read only a run's frames (``requests``, ``pods``, ``nodes``, ``timeseries``,
``events``) and its scenario name (:class:`RunFrames`); they never run anything, and
they know no Result class: anything with those frames can be drawn.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from npsim.results.frames import category_code, codes

MS = 1e3  # seconds -> milliseconds
DPI = 150  # PNGs sharp on a projector and a laptop screen (matplotlib draws 100)


class PlotFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG without pyplot being imported."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def png_bytes(fig: Figure, dpi: float | None = None) -> bytes:
    """The figure as a PNG, at the plots' resolution unless ``dpi`` says otherwise.

    The same bytes as ``fig.savefig(buffer, format="png", dpi=dpi)``, drawn once instead
    of twice: with a layout engine, ``savefig`` first draws the whole figure without
    output to lay it out, then again to render it; an Agg canvas's ``draw`` lays out and
    renders in one pass (the quick start's 8 figures: about 15% less CPU)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    canvas, old_dpi = fig.canvas, fig.dpi
    agg = FigureCanvasAgg(fig)  # becomes fig.canvas until restored below
    try:
        fig.set_dpi(dpi or DPI)
        agg.draw()
        buffer = io.BytesIO()
        imsave(buffer, agg.buffer_rgba(), format="png", origin="upper", dpi=fig.dpi)
    finally:
        fig.set_dpi(old_dpi)
        fig.set_canvas(canvas)
    return buffer.getvalue()


def new_figure(width: float = 7.0, height: float = 4.0, **subplots: Any) -> tuple[Figure, Any]:
    """A Figure outside pyplot (no global state; a notebook shows what is returned)."""
    fig = PlotFigure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(**subplots)


class RunFrames(Protocol):
    """What a plot reads of one run (an ``npsim.Result`` is one). The time-series plot
    also reads ``timeseries``, ``node_timeseries`` and ``events`` when they are there."""

    requests: pd.DataFrame
    pods: pd.DataFrame
    nodes: pd.DataFrame

    @property
    def scenario(self) -> Any:  # its ``spec.name`` labels the run
        ...


def name_of(result: RunFrames) -> str:
    return str(result.scenario.spec.name)


def labelled(results: Any) -> list[tuple[str, RunFrames]]:
    """(label, Result) pairs from one Result, a {label: Result} mapping or a sequence
    (labelled by scenario name, numbered when names repeat)."""
    if isinstance(results, Mapping):
        return [(str(k), v) for k, v in results.items()]
    if isinstance(results, Sequence) and not isinstance(results, str):
        names = [name_of(r) for r in results]
        return [(n if names.count(n) == 1 else f"{n} #{i + 1}", r)
                for i, (n, r) in enumerate(zip(names, results, strict=True))]
    return [(name_of(results), results)]


def measured(requests: pd.DataFrame) -> pd.DataFrame:
    return requests[~requests["warmup"].to_numpy()]


def completed(requests: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Completed requests sent after the warm-up: the ones latency statistics use. With
    ``columns``, only those columns are copied (a plot reading one or five columns of a
    million rows then does not copy the other dozen, twice)."""
    outcome = requests["outcome"]
    keep = codes(outcome) == category_code(outcome, "completed")
    keep &= ~requests["warmup"].to_numpy(dtype=bool)
    if columns is None:
        return requests[keep]
    return pd.DataFrame({c: requests[c].to_numpy()[keep] for c in columns})


def path_parts(rows: pd.DataFrame, work: str = "service") -> dict[str, np.ndarray]:
    """A request's latency before any calls, term by term (they add up): the client's
    network without the hop, the node-to-pod hop, kube-proxy, queue wait, and the pod's
    work (named ``work``)."""
    network, hop = rows["network"].to_numpy(), rows["hop"].to_numpy()
    return {"client network": network - hop, "hop": hop, "proxy": rows["proxy"].to_numpy(),
            "queue wait": rows["queue_wait"].to_numpy(), work: rows["service"].to_numpy()}


def completed_values(requests: pd.DataFrame, column: str) -> np.ndarray:
    """One numeric column of :func:`completed`, as an array."""
    return completed(requests, [column])[column].to_numpy()


def groups(results: Any) -> tuple[str, list[tuple[str, pd.DataFrame]]]:
    """What to compare: variants when several Results are given, else the populations of
    the one Result (or the scenario itself when it has one population). Returns the
    grouping's name ("variant", "population" or "scenario") and (label, requests) pairs."""
    pairs = labelled(results)
    if len(pairs) > 1:
        return "variant", [(label, r.requests) for label, r in pairs]
    label, result = pairs[0]
    req = result.requests
    populations = list(req["population"].cat.categories)
    if len(populations) > 1:
        return "population", [(str(p), req[(req["population"] == p).to_numpy()])
                              for p in populations]
    return "scenario", [(label, req)]


def tail_is_long(values: np.ndarray) -> bool:
    """A log axis shows the tail when p99.9 is more than ten times the median."""
    values = values[values > 0]
    if len(values) < 2:
        return False
    return float(np.quantile(values, 0.999)) > 10 * float(np.median(values))
