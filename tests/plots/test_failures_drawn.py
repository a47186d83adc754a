"""Every figure shows what failed (issue 18): the latency CDF stops at 1 - error_ratio,
the time series has the failed share per entry node, the traffic matrix and the cluster
figure draw failed connections apart from served ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import npsim
from npsim import plots
from npsim.scenario.changes import with_changes

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def node_failure() -> npsim.Result:
    """node-2 crashes at 60 s; cut to 90 s (connections entering node-2 time out after
    3 s, and a quarter of the others are sent to its dead pod nginx-1)."""
    scenario = npsim.load_scenario(SCENARIOS / "node-failure.yaml")
    return npsim.run(with_changes(scenario, {"run.duration": "90s"}))


def failed(result: npsim.Result):
    req = result.requests
    return req[~req["warmup"] & (req["outcome"] == "failed")]


def test_the_latency_cdf_stops_at_one_minus_the_error_ratio(node_failure) -> None:
    ratio = node_failure.metric("error_ratio")
    ax = plots.latency_cdf(node_failure).axes[0]
    (curve,) = [line for line in ax.get_lines() if line.get_label().startswith("node-failure")]
    assert curve.get_ydata()[-1] == pytest.approx(1 - ratio)
    assert f"failed {ratio:.1%}" in curve.get_label()
    (level,) = [line for line in ax.get_lines() if line.get_gid() == "failed-share"]
    assert level.get_ydata()[0] == pytest.approx(1 - ratio)
    assert level.get_linestyle() == "--"
    assert any(t.get_text() == f"failed {ratio:.1%} (never completed)" for t in ax.texts)


def test_the_time_series_has_the_failed_share_per_entry_node(node_failure) -> None:
    fig = plots.timeseries(node_failure)
    (panel,) = [ax for ax in fig.axes if ax.get_ylabel() == "failed %\nby entry node"]
    assert fig.axes.index(panel) == 2  # under the failures by reason
    lines = {line.get_label(): line for line in panel.get_lines()
             if line.get_label() in ("node-1", "node-2", "node-3")}
    assert set(lines) == {"node-1", "node-2", "node-3"}
    time = lines["node-2"].get_xdata()
    node2 = lines["node-2"].get_ydata()
    # before the crash nothing fails; once its timeouts end (63 s on), node-2 fails all
    assert np.nanmax(node2[time < 60]) == 0.0
    assert np.nanmin(node2[(time >= 64) & (time < 89)]) == 100.0
    # node-1's share in one bucket is the frame's: failed / ended, by end time
    req = node_failure.requests
    ends = req[(req["entry_node"] == "node-1") & (req["t_end"] >= 70) & (req["t_end"] < 71)]
    expected = 100 * (ends["outcome"] == "failed").mean()
    assert lines["node-1"].get_ydata()[list(time).index(70.0)] == pytest.approx(expected)
    assert 10 < expected < 50


def test_a_run_without_failures_has_no_entry_node_panel() -> None:
    base = npsim.load_scenario(SCENARIOS / "quickstart.yaml")
    result = npsim.run(with_changes(base, {"run.duration": "3s", "run.warmup": "1s",
                                           "clients[0].arrival.rate": "200/s"}))
    fig = plots.timeseries(result)
    assert not any("entry node" in ax.get_ylabel() for ax in fig.axes)


def test_the_traffic_matrix_draws_failed_connections_apart(node_failure) -> None:
    lost = failed(node_failure)
    ax = plots.traffic_heatmap(node_failure).axes[0]
    marked = [t.get_text() for t in ax.texts if t.get_gid() == "failed"]
    counts = [int(t.split()[1].replace(",", "")) for t in marked if "failed" in t]
    assert sum(counts) == len(lost)
    # the cell node-1 -> nginx-1 (the dead pod) says how many of its connections failed
    cell = int(((lost["pod"] == "nginx-1") & (lost["entry_node"] == "node-1")).sum())
    assert cell > 0 and f"\n\n\u2717 {cell:,} failed" in marked
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1] == "failed before\na pod was chosen"
    before = int(lost["pod"].isna().sum())
    assert f"\u2717 {before:,} failed" in marked  # node-2's own: no pod was ever chosen
    assert "failed connections in red" in ax.get_title()


def test_the_cluster_figure_draws_failed_flows_dashed(node_failure) -> None:
    lost = failed(node_failure)
    graph = plots.traffic_graph(node_failure)
    on_edges = {(u[1], v[1]): d["failed"] for u, v, d in graph.edges(data=True) if d["failed"]}
    assert set(on_edges) == {("node-1", "nginx-1"), ("node-3", "nginx-1")}
    assert sum(on_edges.values()) == int(lost["pod"].notna().sum())
    assert graph.nodes[("node", "node-2")]["failed"] == int(lost["pod"].isna().sum())
    served = {(u[1], v[1]): d["requests"] for u, v, d in graph.edges(data=True)}
    assert sum(served.values()) == int(node_failure.pods["requests"].sum())
    fig = plots.cluster(node_failure)
    ax = fig.axes[0]
    dashed = [p for p in ax.patches if p.get_linestyle() in ("--", "dashed")]
    assert len(dashed) == len(on_edges)
    assert any(t.get_gid() == "failed" and "failed here" in t.get_text() for t in ax.texts)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(text.startswith(f"failed: {len(lost):,} connections") for text in legend)
