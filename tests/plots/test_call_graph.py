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
