"""Each figure draws what the frames say: bars equal the shares, the CDF reaches 1,
the matrix sums to the served requests, the Gini in the legend is the summary's."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest
from conftest import client, exponential, run_bundled, simulate
from matplotlib.patches import FancyArrowPatch, Rectangle

import npsim
from npsim import plots
from npsim.results.shares import pod_shares


@pytest.fixture(scope="module")
def two_populations() -> npsim.Result:
    """local-vs-cluster, shortened: a Local and a Cluster population over pods 2+1."""
    return run_bundled("local-vs-cluster", 12.0, 2.0)


@pytest.fixture(scope="module")
def one_population() -> npsim.Result:
    return simulate(nodes=3, replicas=4, workers=2, service_time=exponential(2e-3),
                    clients=[client(rate=400.0)], duration=6.0, warmup=1.0,
                    zero_proxy_cost=False,
                    network={"sameNode": {"dist": "constant", "value": 0},
                             "sameZone": {"dist": "constant", "value": "200us"},
                             "crossZone": {"dist": "constant", "value": "1ms"}})


def completed_ms(requests: pd.DataFrame) -> np.ndarray:
    done = requests[~requests["warmup"] & (requests["outcome"] == "completed")]
    return done["latency"].to_numpy() * 1e3


def test_latency_cdf_has_one_curve_per_population_reaching_one(two_populations) -> None:
    fig = plots.latency_cdf(two_populations)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if line.get_label().startswith("to-")]
    assert [line.get_label().split(" ")[0] for line in lines] == ["to-local", "to-cluster"]
    req = two_populations.requests
    for line in lines:
        x, y = line.get_xdata(), line.get_ydata()
        assert y[0] == 0.0 and y[-1] == 1.0 and np.all(np.diff(y) >= 0)
        part = req[req["population"] == line.get_label().split(" ")[0]]
        lat = completed_ms(part)
        assert x[-1] == pytest.approx(lat.max())
        assert np.interp(0.5, y, x) == pytest.approx(np.median(lat), rel=0.02)
    assert ax.get_xlabel() == "latency of completed requests (ms)"
    assert plots.latency_cdf(two_populations, log=True).axes[0].get_xscale() == "log"
    assert plots.latency_cdf(two_populations, log=False).axes[0].get_xscale() == "linear"


def test_several_results_are_compared_as_variants(two_populations, one_population) -> None:
    fig = plots.latency_cdf({"before": one_population, "after": two_populations})
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert labels[0].startswith("before (n=") and labels[1].startswith("after (n=")
    assert "by variant" in fig.axes[0].get_title()


def test_percentile_bars_equal_the_quantiles(one_population) -> None:
    fig = plots.latency_percentiles(one_population)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    lat = completed_ms(one_population.requests)
    assert heights == pytest.approx(list(np.percentile(lat, [50, 90, 99, 99.9])))
    assert heights[2] == pytest.approx(one_population.metric("latency_p99") * 1e3)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
        "p50", "p90", "p99", "p99.9"]


def test_breakdown_shows_every_component_adding_up_to_the_mean(one_population) -> None:
    fig = plots.latency_breakdown(one_population, split_cross_node=True)
    ax = fig.axes[0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["client network", "hop", "proxy", "queue wait", "service"]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert [r.split("\n")[1] for r in rows] == ["same node", "cross node"]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    widths = np.array([b.get_width() for b in bars]).reshape(5, 2)  # component x row
    req = one_population.requests
    done = req[~req["warmup"] & (req["outcome"] == "completed")]
    for row, cross in enumerate((False, True)):
        part = done[done["cross_node"] == cross]
        assert widths[:, row].sum() == pytest.approx(part["latency"].mean() * 1e3)
        assert widths[1, row] == pytest.approx(part["hop"].mean() * 1e3)
    assert widths[1, 0] == 0.0 and widths[1, 1] > 0.1  # the hop costs only across nodes
    assert widths[2].min() > 0  # kube-proxy's first-packet cost is drawn


def test_pod_load_bars_are_the_pod_shares_with_the_fair_line(one_population) -> None:
    fig = plots.pod_load(one_population)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx(list(one_population.pods["share"]))
    fair = [line for line in ax.get_lines() if "fair share" in line.get_label()]
    assert len(fair) == 1 and fair[0].get_ydata()[0] == pytest.approx(0.25)


def test_pod_load_per_population(two_populations) -> None:
    shares = pod_shares(two_populations.requests, two_populations.pods)
    ax = plots.pod_load(two_populations).axes[0]
    heights = np.array([p.get_height() for p in ax.patches]).reshape(2, 3)
    assert heights == pytest.approx(shares.T.to_numpy())
    local = dict(zip(shares.index, shares["to-local"], strict=True))
    # Local: each node gets half the traffic; node-2's lone pod takes all of its half
    assert sorted(local.values()) == pytest.approx([0.25, 0.25, 0.5], abs=0.03)


def test_traffic_matrix_sums_to_the_served_requests(two_populations) -> None:
    fig = plots.traffic_heatmap(two_populations)
    ax = fig.axes[0]
    counts = ax.images[0].get_array()
    assert counts.shape == (2, 3)
    assert counts.sum() == two_populations.nodes["served"].sum()
    # nothing failed here, so each row is what that node received
    assert list(np.asarray(counts).sum(axis=1)) == list(two_populations.nodes["received"])
    outlined = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(outlined) == 3  # each pod's own node


def test_every_figure_is_a_function_of_the_module_by_its_own_name(one_population) -> None:
    """README: result.plot.NAME() is npsim.plots.NAME(result), for every figure NAME."""
    for name in [*plots.FIGURES, "call_graph"]:
        assert callable(getattr(plots, name)) and hasattr(one_population.plot, name)
    assert plots.traffic_matrix(one_population).axes[0].images[0].get_array().sum() == \
        one_population.plot.traffic_matrix().axes[0].images[0].get_array().sum()


def test_lorenz_gini_is_the_summary_gini(two_populations) -> None:
    ax = plots.lorenz(two_populations).axes[0]
    curves = {line.get_label().split(" ")[0]: line for line in ax.get_lines()[1:]}
    assert set(curves) == {"to-local", "to-cluster"}
    for population, line in curves.items():
        gini = float(line.get_label().split("Gini ")[1].rstrip(")"))
        assert gini == pytest.approx(
            two_populations.metric("pod_share_gini", population=population), abs=5e-4)
        assert (line.get_xdata()[-1], line.get_ydata()[-1]) == pytest.approx((1.0, 1.0))
    assert curves["to-local"].get_label() != curves["to-cluster"].get_label()


def test_cluster_graph_draws_each_flow_with_its_weight(one_population) -> None:
    graph = plots.traffic_graph(one_population)
    flows = list(graph.edges(data=True))
    assert sum(d["requests"] for _, _, d in flows) == one_population.nodes["served"].sum()
    for u, v, d in flows:
        assert d["cross_node"] == (graph.nodes[v]["node"] != u[1])
    zones = {graph.nodes[v]["zone"] for v in graph if graph.nodes[v]["kind"] == "node"}
    assert zones == {"zone-a"}
    ax = plots.cluster(one_population).axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == len(flows)
    widths = [a.get_linewidth() for a in arrows]
    weights = [d["requests"] for _, _, d in flows]
    assert np.argmax(widths) == np.argmax(weights)
    cross = {a.get_edgecolor()[:3] for a, (_, _, d) in zip(arrows, flows, strict=True)
             if d["cross_node"]}
    assert len(cross) == 1 and cross != {a.get_edgecolor()[:3] for a in arrows} - cross


def timeseries_frames() -> types.SimpleNamespace:
    """A time-series frame and events as the run writes them (column contract)."""
    time = np.arange(0.0, 10.0, 1.0)
    frame = pd.DataFrame({
        "replication": 0, "time": time, "sent": 100, "completed": 95, "failed": 5,
        "throughput": 95.0, "failed_connect_timeout": [0] * 5 + [5] * 5,
        "failed_queue_full": 0, "latency_p50": 0.002, "latency_p99": 0.010,
        "ready_endpoints:node-1": [2] * 5 + [0] * 5, "ready_endpoints:node-2": 1,
    })
    events = pd.DataFrame({"replication": [0], "time": [5.0], "kind": ["node_crash"],
                           "subject": ["node-1"], "detail": [""]})
    return types.SimpleNamespace(timeseries=frame, events=events)


def test_timeseries_draws_rates_failures_latency_and_events() -> None:
    fig = plots.timeseries(timeseries_frames())
    throughput, failures, latency, ready = fig.axes
    assert throughput.get_lines()[0].get_ydata() == pytest.approx([95.0] * 10)
    failed = [p.get_height() for p in failures.patches]
    assert sum(failed) == pytest.approx(25.0)  # 5/s for 5 buckets, queue_full adds none
    p99 = [line for line in latency.get_lines() if line.get_label() == "p99"][0]
    assert p99.get_ydata() == pytest.approx([10.0] * 10)
    assert {t.get_text() for t in ready.get_legend().get_texts()} == {"node-1", "node-2"}
    for ax in fig.axes:
        assert 5.0 in [line.get_xdata()[0] for line in ax.get_lines()]
    assert [t.get_text() for t in throughput.texts] == ["1"]
    assert event_key_of(fig) == ["1  5s: node_crash node-1"]
    with pytest.raises(ValueError, match="no time series"):
        plots.timeseries(types.SimpleNamespace(timeseries=None, events=None))


def event_key_of(fig) -> list[str]:
    return [t.get_text() for t in fig.texts if t.get_gid() == "event-key"][0].splitlines()


def test_the_balancers_view_gets_a_lane_per_node() -> None:
    """lb_up:<node> (1 in rotation, 0 marked down; averaged over replications) is drawn
    as one lane per node, high while the node is in rotation."""
    data = timeseries_frames()
    frame = pd.concat([data.timeseries.assign(replication=r) for r in (0, 1)])
    frame["lb_up:node-1"] = [1.0] * 5 + [0.0] * 5 + [1.0] * 5 + [1.0] * 5  # down in rep 0
    frame["lb_up:node-2"] = 1.0
    fig = plots.timeseries(types.SimpleNamespace(timeseries=frame, events=data.events))
    lanes = fig.axes[-1]
    assert [t.get_text() for t in lanes.get_yticklabels()] == ["node-1", "node-2"]
    node1, node2 = (line for line in lanes.get_lines() if line.get_linestyle() == "-")
    assert node1.get_xdata() == pytest.approx(np.arange(0.0, 11.0))
    assert node1.get_ydata()[:-1] == pytest.approx(1 + 0.8 * np.array([1.0] * 5 + [0.5] * 5))
    assert node2.get_ydata() == pytest.approx([0.8] * 11)
    assert len(fig.axes) == 5


def test_the_node_frame_is_drawn_as_an_older_result_s_node_columns() -> None:
    """result.node_timeseries (a row per node and bucket) gives the panels that a result
    saved by an older npsim, with a column per node in its time series, gets."""
    data = timeseries_frames()
    old = pd.concat([data.timeseries.assign(replication=r) for r in (0, 1)])
    old["lb_up:node-1"] = [1.0] * 5 + [0.0] * 5 + [1.0] * 10
    old["lb_up:node-2"] = 1.0
    views = pd.concat([pd.DataFrame({"replication": r, "time": part["time"], "node": node,
                                     "ready_endpoints": part[f"ready_endpoints:{node}"],
                                     "lb_up": part[f"lb_up:{node}"]})
                       for r, part in old.groupby("replication") for node in ("node-1", "node-2")])
    views["node"] = views["node"].astype("category")
    new = types.SimpleNamespace(timeseries=old.drop(columns=[c for c in old if ":" in c]),
                                node_timeseries=views, events=data.events)
    drawn = [plots.timeseries(r) for r in (types.SimpleNamespace(timeseries=old,
                                                                 events=data.events), new)]
    assert len(drawn[0].axes) == len(drawn[1].axes) == 5
    for before, after in zip(drawn[0].axes, drawn[1].axes, strict=True):
        def drawn_lines(ax):  # a down node's line is NaN (not drawn) while it is down
            return [(line.get_label(), list(np.nan_to_num(line.get_ydata(), nan=-1.0)))
                    for line in ax.get_lines()]

        assert drawn_lines(before) == drawn_lines(after)
        assert [t.get_text() for t in before.get_yticklabels()] == [
            t.get_text() for t in after.get_yticklabels()]


def test_many_nodes_are_summarised_not_drawn_one_by_one() -> None:
    """Past a dozen nodes: ready endpoints as max / median / min over the nodes, and the
    balancer's view as how many nodes are in rotation."""
    time = np.arange(0.0, 4.0, 1.0)
    frame = pd.DataFrame({"replication": 0, "time": time, "sent": 10, "completed": 10,
                          "failed": 0, "throughput": 10.0, "latency_p50": 0.002,
                          "latency_p99": 0.01})
    for i in range(20):
        frame[f"ready_endpoints:n{i}"] = [i % 3, 1, 1, 2]
        frame[f"lb_up:n{i}"] = [1.0, 1.0, float(i >= 5), 1.0]
    fig = plots.timeseries(types.SimpleNamespace(timeseries=frame, events=None))
    ready, lanes = fig.axes[3], fig.axes[4]
    lines = {line.get_label(): line.get_ydata() for line in ready.get_lines()}
    assert set(lines) == {"max of 20 nodes", "median of 20 nodes", "min of 20 nodes"}
    assert lines["max of 20 nodes"] == pytest.approx([2, 1, 1, 2])
    assert lines["min of 20 nodes"] == pytest.approx([0, 1, 1, 2])
    (rotation,) = lanes.get_lines()
    assert rotation.get_ydata() == pytest.approx([20, 20, 15, 20, 20])


def test_events_close_together_share_a_number_and_a_key_line() -> None:
    """The node-failure timeline (60-110 s): each group of close events gets one number
    on the top panel, numbers stay apart, and the key lists every event of a group."""
    times = [60.0, 65.0, 66.76, 75.0, 90.0, 110.03, 110.03, 110.1, 150.0]
    kinds = ["node_crash", "lb_mark_down", "lease_missed", "alert_firing", "alert_firing",
             "node_unknown", "taint_added", "endpoints_removed", "alert_resolved"]
    events = pd.DataFrame({"replication": 0, "time": times, "kind": kinds,
                           "subject": ["node-2"] * 9, "detail": ""})
    time = np.arange(0.0, 180.0, 1.0)
    frame = pd.DataFrame({"replication": 0, "time": time, "sent": 100, "completed": 100,
                          "failed": 0, "throughput": 100.0, "latency_p50": 0.002,
                          "latency_p99": 0.01})
    fig = plots.timeseries(types.SimpleNamespace(timeseries=frame, events=events))
    top = fig.axes[0]
    numbers = [(t.get_text(), t.xy[0]) for t in top.texts]
    assert numbers == [("1", 60.0), ("2", 75.0), ("3", 90.0), ("4", 110.03), ("5", 150.0)]
    low, high = top.get_xlim()
    assert min(np.diff([x for _, x in numbers])) > 0.04 * (high - low)
    assert event_key_of(fig) == [  # one precision for every time of the key
        "1  60.0s-66.8s: node_crash node-2, lb_mark_down node-2, lease_missed node-2",
        "2  75.0s: alert_firing node-2", "3  90.0s: alert_firing node-2",
        "4  110.0s-110.1s: node_unknown node-2, taint_added node-2, endpoints_removed node-2",
        "5  150.0s: alert_resolved node-2"]
    key = [t for t in fig.texts if t.get_gid() == "event-key"][0]
    assert key.get_fontsize() == top.yaxis.label.get_fontsize()  # as large as the labels
    assert sum(len(ax.get_lines()) for ax in fig.axes) >= 9 * 3  # a line per event


def test_result_plot_names_every_figure(one_population) -> None:
    assert set(dir(one_population.plot)) == set(plots.FIGURES)
    fig = one_population.plot.pod_load()
    assert fig.axes[0].get_title() == "Per-pod load - test"
    assert one_population.plot.latency_cdf.__doc__ == plots.latency_cdf.__doc__


def test_timeseries_of_a_real_run_follows_its_frame(one_population) -> None:
    frame = one_population.timeseries
    fig = one_population.plot.timeseries()
    assert fig.axes[0].get_lines()[0].get_ydata() == pytest.approx(
        frame["throughput"].to_numpy())
    assert len(fig.axes) == 4  # ready endpoints per node
