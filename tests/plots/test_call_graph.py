"""The call-graph figure of a run whose pods call Services."""

from __future__ import annotations

from typing import Any

import pytest

import npsim


def test_call_graph_figure_draws_every_service():
    scenario = npsim.bundled("three-tier-shop")
    scenario.run.warmup, scenario.run.duration = 0.5, 2.0
    fig = npsim.run(scenario).plot.call_graph()
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"shoppers", "frontend", "catalog", "cart", "redis-cart"} <= texts
    assert any("/s" in t and "p99" in t for t in texts)


def test_report_draws_the_call_graph_only_for_runs_with_calls():
    from npsim.plots import figures_for

    scenario = npsim.bundled("three-tier-shop")
    scenario.run.warmup, scenario.run.duration = 0.5, 1.5
    assert "call_graph" in figures_for(npsim.run(scenario))[0]
    quick = npsim.bundled("quickstart")
    quick.run.warmup, quick.run.duration = 0.5, 1.0
    figures, skipped = figures_for(npsim.run(quick))
    assert "call_graph" not in figures and "call_graph" not in skipped


def test_the_reports_breakdown_caption_names_the_services_called(tmp_path):
    """The breakdown of a calls run splits the clients' time by the Services called;
    its caption says so (a one-tier run keeps the plain one)."""
    from npsim.report.run_report import write_run_report

    scenario = npsim.bundled("three-tier-shop")
    scenario.run.warmup, scenario.run.duration = 0.5, 1.5
    page = write_run_report(npsim.run(scenario), tmp_path).read_text("utf-8")
    assert "each Service called (critical path)" in page
    assert "kube-proxy, queue, service</" not in page


def _shop_with_long_edges() -> npsim.Scenario:
    """web calls backend, then cart and currency in parallel, then a payments API;
    backend and currency call db, cart calls currency: the edges web -> currency and
    backend -> db skip a layer of the drawing (currency and db sit two layers on)."""
    tiers = {"web": 30080, "backend": 9000, "cart": 7070, "currency": 7000, "db": 5432}
    manifests = []
    for name, port in tiers.items():
        spec: dict = {"selector": {"app": name}, "ports": [{"port": port}]}
        if name == "web":
            spec.update(type="NodePort", ports=[{"port": 80, "nodePort": port}])
        manifests += [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": spec},
                      {"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": name},
                       "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                                "template": {"metadata": {"labels": {"app": name}},
                                             "spec": {"containers": [{"name": "s"}]}}}}]
    work = {"dist": "exponential", "mean": "1ms"}
    workloads = {name: {"workers": 16, "serviceTime": work} for name in tiers}
    workloads["web"]["calls"] = [
        {"service": "backend", "port": 9000},
        {"parallel": [{"service": "cart", "port": 7070},
                      {"service": "currency", "port": 7000, "probability": 0.3}]},
        {"external": {"address": "pay.example.com:443", "latency": "5ms"}}]
    workloads["backend"]["calls"] = [{"service": "db", "port": 5432}]
    workloads["cart"]["calls"] = [{"service": "currency", "port": 7000}]
    workloads["currency"]["calls"] = [{"service": "db", "port": 5432}]
    return npsim.scenario_from_dict({
        "name": "long-edges", "cluster": {"nodes": [{"name": "node-1"}]},
        "manifests": manifests, "workloads": workloads,
        "clients": [{"name": "users", "service": "web", "arrival": {"rate": "50/s"}}],
        "run": {"duration": "1s", "warmup": "0.2s", "seed": 1}})


@pytest.fixture(scope="module")
def long_edges() -> npsim.Result:
    """One run of the shop with long call edges, for the figures drawn from it."""
    return npsim.run(_shop_with_long_edges())


def _the_legend(fig: Any) -> tuple[Any, Any, Any]:
    """The figure drawn: its axes, its one legend (on the figure or the axes), the
    renderer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    legends = [*fig.legends, *([ax.get_legend()] if ax.get_legend() else [])]
    assert len(legends) == 1
    return ax, legends[0], renderer


def test_no_arrow_runs_through_a_service_it_does_not_join_nor_labels_overlap(long_edges):
    """An edge that skips a layer (web -> currency past backend and cart) was drawn as a
    straight line through the Services between, its label on top of theirs: a reader
    could not tell who calls whom. Every arrow must keep clear of the boxes of the
    Services it does not join, and no two labels may overlap."""
    import numpy as np

    fig = long_edges.plot.call_graph()
    ax = fig.axes[0]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    boxes = {t.get_text(): (t.get_position(), t.get_bbox_patch().get_window_extent(renderer))
             for t in ax.texts if t.get_bbox_patch() is not None}
    assert {"users", "web", "backend", "cart", "currency", "db",
            "pay.example.com:443"} == set(boxes)
    assert len(ax.patches) == 8  # users -> web and the seven call edges
    arrows = [ax.transData.transform(line) for p in ax.patches  # the line, the head
              for line in p.get_path().to_polygons(closed_only=False)]
    for start, end in ((a[i], a[i + 1]) for a in arrows for i in range(len(a) - 1)):
        line = np.linspace(start, end, 400)
        for name, (_, box) in boxes.items():
            if box.contains(*line[0]) or box.contains(*line[-1]):
                continue  # the box this piece of an arrow leaves or enters
            inside = ((line[:, 0] > box.x0) & (line[:, 0] < box.x1)
                      & (line[:, 1] > box.y0) & (line[:, 1] < box.y1))
            assert not inside.any(), f"an arrow {start} -> {end} crosses {name}'s box"
    labels = [t.get_window_extent(renderer) for t in ax.texts
              if "/s" in t.get_text() and "p99" in t.get_text()]
    assert len(labels) == 8  # users>web and the seven call edges
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            assert not a.overlaps(b), "two edge labels overlap"


def test_percentile_bars_of_every_call_edge_are_not_under_the_legend(long_edges):
    """With ``calls=True`` a run of seven call edges has eight bars a percentile; the
    legend was drawn in the axes' upper left, over the p50 and p90 bars and their
    values. It must cover no bar and no bar's value."""
    ax, drawn, renderer = _the_legend(long_edges.plot.latency_percentiles(calls=True))
    assert len(drawn.get_texts()) == 8
    legend = drawn.get_window_extent(renderer)
    from matplotlib.transforms import Bbox

    inside = ax.get_window_extent(renderer)  # a bar on a log axis reaches down to 0
    bars = [Bbox.intersection(p.get_window_extent(renderer), inside)
            for p in ax.patches if p.get_height() > 0]
    values = [t.get_window_extent(renderer) for t in ax.texts if t.get_text()]
    assert len(bars) == 32 and len(values) == 32
    assert not any(legend.overlaps(box) for box in bars + values)


def test_cdf_curves_of_every_call_edge_are_not_under_the_legend(long_edges):
    """The same for the CDF: eight curves' legend sat in the lower right, over the
    clients' own curve (the slowest, so the rightmost) that the figure is about."""
    import numpy as np

    ax, drawn, renderer = _the_legend(long_edges.plot.latency_cdf(calls=True))
    assert len(drawn.get_texts()) == 8
    box = drawn.get_window_extent(renderer)
    curves = [line for line in ax.get_lines() if line.get_label() in {
        t.get_text() for t in drawn.get_texts()}]
    assert len(curves) == 8
    for line in curves:
        points = ax.transData.transform(np.column_stack(line.get_data()))
        assert not any(box.contains(x, y) for x, y in points), line.get_label()
