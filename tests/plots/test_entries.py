"""Figures of a run whose pods call Services show what users saw: the latency breakdown
of the clients' requests adds up to their mean latency (own work, each Service called on
the critical path, the rest), and the failed share per entry node counts their requests,
not the calls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle

import npsim
from npsim import plots
from npsim.plots.entries import client_rows
from npsim.plots.timeseries import entry_failure_ratio
from npsim.results.callframe import latency_breakdown


def _shop(**changes: object) -> npsim.Result:
    return npsim.run(npsim.bundled("three-tier-shop").with_changes(
        {"run.duration": "3s", "run.warmup": "0.5s", **changes}))


@pytest.fixture(scope="module")
def shop() -> npsim.Result:
    """Half the pages skip the cart: pages with and without a call to it."""
    return _shop(**{"workloads.frontend.calls[1].probability": 0.5})


def _pages(result: npsim.Result) -> pd.DataFrame:
    req = result.requests
    return req[(req["population"] == "shoppers") & ~req["warmup"]
               & (req["outcome"] == "completed")]


def _bars(fig) -> tuple[list[str], np.ndarray]:
    """Legend labels and bar widths (component x bar)."""
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    widths = [p.get_width() for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    return labels, np.array(widths).reshape(len(labels), -1)


def test_bars_add_up_to_the_mean_latency_of_the_clients_requests(shop) -> None:
    labels, widths = _bars(plots.latency_breakdown(shop))
    assert labels == ["client network", "hop", "proxy", "queue wait", "own work",
                      "via cart", "via catalog", "other"]
    assert widths.shape == (8, 1)  # one bar: the one client population (no call edges)
    pages = _pages(shop)
    assert widths.sum() == pytest.approx(pages["latency"].mean() * 1e3, rel=1e-9)
    assert widths.sum() == pytest.approx(shop.metric("latency_mean") * 1e3, rel=1e-9)
    # each Service's part: its calls' time on the critical path, a page without such a
    # call counting 0 (about half the pages never call the cart)
    parts = latency_breakdown(shop.requests, shop.calls).set_index(["replication", "request"])
    via = parts["via_cart"].reindex(pd.MultiIndex.from_frame(
        pages[["replication", "request"]])).fillna(0.0)
    assert (via == 0).mean() == pytest.approx(0.5, abs=0.1)
    assert widths[labels.index("via cart"), 0] == pytest.approx(via.mean() * 1e3)
    assert widths[labels.index("own work"), 0] == pytest.approx(pages["service"].mean() * 1e3)
    # the calls hold the page longer than its own 2 ms of work
    assert widths[5:7, 0].sum() > 2 * widths[4, 0]
    assert abs(widths[-1, 0]) < 0.01 * widths.sum()  # sequential calls: little else


def test_same_and_cross_node_pages_and_variants_each_add_up(shop) -> None:
    labels, widths = _bars(plots.latency_breakdown(shop, split_cross_node=True))
    pages = _pages(shop)
    for column, cross in enumerate((False, True)):
        part = pages[pages["cross_node"] == cross]
        assert widths[:, column].sum() == pytest.approx(part["latency"].mean() * 1e3)
    quick = npsim.run(npsim.bundled("quickstart").with_changes(
        {"run.duration": "1s", "run.warmup": "0.2s"}))
    fig = plots.latency_breakdown({"shop": shop, "one tier": quick})
    labels, widths = _bars(fig)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["shop", "one tier"]
    assert widths[:, 0].sum() == pytest.approx(pages["latency"].mean() * 1e3)
    done = quick.requests[~quick.requests["warmup"] & (quick.requests["outcome"] == "completed")]
    assert widths[:, 1].sum() == pytest.approx(done["latency"].mean() * 1e3)
    assert widths[labels.index("via cart"), 1] == 0.0  # the one-tier run calls nothing


def test_failed_share_per_entry_node_counts_the_pages() -> None:
    # every catalogue call is refused, but the page carries on without it
    result = _shop(**{"deployments.catalog.replicas": 0,
                      "workloads.frontend.calls[0].onFailure": "continue"})
    req = result.requests
    assert (req["outcome"] == "failed").any()  # the calls failed ...
    pages = req[req["population"] == "shoppers"]
    assert not (pages["outcome"] == "failed").any()  # ... and no page did
    time = np.arange(0.0, 3.0, 0.1)
    assert entry_failure_ratio(req, time, 0.1) is not None  # calls counted as requests
    assert entry_failure_ratio(req, time, 0.1, client_rows(result)) is None
    fig = plots.timeseries(result)
    assert not any("entry node" in ax.get_ylabel() for ax in fig.axes)
    assert fig.axes[0].get_ylabel() == "client requests/s"


def test_latency_plots_show_the_clients_requests_and_call_edges_when_asked(shop) -> None:
    """The CDF and the percentile bars of a run with calls are the pages users waited
    for (the summary's ``all``), not one curve per call edge; ``calls=True`` adds them."""
    pages = _pages(shop)["latency"].to_numpy() * 1e3
    ax = plots.latency_cdf(shop).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        f"three-tier-shop (n={len(pages):,})"]
    x, y = ax.get_lines()[0].get_data()
    assert np.interp(0.5, y, x) == pytest.approx(np.median(pages), rel=0.02)
    bars = plots.latency_percentiles(shop).axes[0].patches
    assert [b.get_height() for b in bars] == pytest.approx(
        np.percentile(pages, [50, 90, 99, 99.9]))
    assert bars[0].get_height() == pytest.approx(shop.metric("latency_p50") * 1e3)
    edges = [str(p) for p in shop.requests["population"].cat.categories if ">" in str(p)]
    assert len(edges) == 3
    for plot in (plots.latency_cdf, plots.latency_percentiles):
        fig = plot(shop, calls=True)  # many bars: the legend goes beside the axes
        legend = fig.axes[0].get_legend() or fig.legends[0]
        labels = [t.get_text().split(" (n=")[0] for t in legend.get_texts()]
        assert labels == ["shoppers", *edges], plot.__name__
    labels = [t.get_text().split(" (n=")[0] for t in plots.latency_cdf(
        {"a": shop, "b": shop}).axes[0].get_legend().get_texts()]
    assert labels == ["a", "b"]
