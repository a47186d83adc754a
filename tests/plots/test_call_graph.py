"""The call-graph figure of a run whose pods call Services."""

from __future__ import annotations

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
