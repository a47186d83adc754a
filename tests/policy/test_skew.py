"""Skew metrics (npsim/results/skew.py) and the per-population summary rows.

share_stats: max/mean, CV = sd/mean (population sd), Jain (sum x)^2 / (n sum x^2), Gini
sum_ij |x_i - x_j| / (2 n^2 mean). Even shares: 1, 0, 1, 0; one pod of n takes
everything: n, sqrt(n - 1), 1/n, (n - 1)/n.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import npsim
from npsim.results.skew import share_stats, source_ip_intact, stickiness

from .helpers import SCENARIOS, Z, completed, deployment, measured, population, scenario, service

# --- share_stats on known vectors -----------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_even_shares(n):
    s = share_stats(np.full(n, 7))
    assert s == {"max_over_mean": 1.0, "cv": 0.0, "jain": 1.0, "gini": 0.0}


@pytest.mark.parametrize("n", [2, 3, 4, 10, 100])
def test_one_pod_takes_everything(n):
    x = np.zeros(n)
    x[n // 2] = 123
    s = share_stats(x)
    assert s["jain"] == pytest.approx(1 / n)
    assert s["gini"] == pytest.approx((n - 1) / n)
    assert s["max_over_mean"] == pytest.approx(n)
    assert s["cv"] == pytest.approx(math.sqrt(n - 1))


def test_hand_computed_vector():
    s = share_stats([1, 2, 3])
    assert s["max_over_mean"] == pytest.approx(1.5)
    assert s["cv"] == pytest.approx(math.sqrt(2 / 3) / 2)
    assert s["jain"] == pytest.approx(36 / 42)
    assert s["gini"] == pytest.approx(8 / 36)


def test_local_policy_shares():
    """1/(N p_k) with pods 2+1 on two nodes: shares 1/4, 1/4, 1/2."""
    s = share_stats([0.25, 0.25, 0.5])
    assert s["jain"] == pytest.approx(8 / 9)
    assert s["gini"] == pytest.approx(1 / 6)
    assert s["max_over_mean"] == pytest.approx(1.5)


def test_share_stats_is_scale_free_and_order_free():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 50, 12)
    a, b = share_stats(x), share_stats(rng.permutation(x) * 1000)
    for key in a:
        assert b[key] == pytest.approx(a[key])


@pytest.mark.parametrize("x", [[], [0, 0, 0]])
def test_share_stats_of_nothing_is_nan(x):
    assert all(math.isnan(v) for v in share_stats(np.asarray(x)).values())


# --- stickiness and source_ip_intact on crafted frames -------------------------------


def _frame(rows: list[tuple]) -> pd.DataFrame:
    cols = ["population", "client_ip", "new_connection", "pod", "source_ip_seen"]
    frame = pd.DataFrame(rows, columns=cols)
    for c in ("population", "client_ip", "pod"):
        frame[c] = frame[c].astype("category")
    frame["source_ip_seen"] = frame["source_ip_seen"].astype("string")
    return frame


def test_stickiness_counts_connections_to_the_most_used_pod():
    f = _frame([
        ("p", "1.1.1.1", True, "a", "x"),
        ("p", "1.1.1.1", True, "a", "x"),
        ("p", "1.1.1.1", True, "b", "x"),
        ("p", "1.1.1.1", False, "b", "x"),  # reused connection: not a choice
        ("p", "1.1.1.1", False, "b", "x"),
        ("p", "2.2.2.2", True, "c", "x"),
        ("p", "2.2.2.2", True, "c", "x"),
        ("p", "3.3.3.3", True, "a", "x"),  # one connection only: not counted
        ("p", "4.4.4.4", True, None, None),  # failed before a pod was chosen
        ("p", "4.4.4.4", True, None, None),
    ])
    assert stickiness(f) == pytest.approx((2 / 3 + 1) / 2)


def test_stickiness_separates_populations():
    f = _frame([
        ("p", "1.1.1.1", True, "a", "x"),
        ("p", "1.1.1.1", True, "a", "x"),
        ("q", "1.1.1.1", True, "b", "x"),
        ("q", "1.1.1.1", True, "b", "x"),
    ])
    assert stickiness(f) == 1.0


def test_stickiness_without_repeat_clients_is_nan():
    f = _frame([("p", "1.1.1.1", True, "a", "x"), ("p", "2.2.2.2", True, "a", "x")])
    assert math.isnan(stickiness(f))


def test_source_ip_intact_counts_served_requests_only():
    f = _frame([
        ("p", "1.1.1.1", True, "a", "1.1.1.1"),
        ("p", "2.2.2.2", True, "a", "2.2.2.2"),
        ("p", "3.3.3.3", True, "b", "3.3.3.3"),
        ("p", "4.4.4.4", True, "b", "172.18.0.2"),
        ("p", "5.5.5.5", True, None, None),  # not served
    ])
    assert source_ip_intact(f) == 0.75
    assert math.isnan(source_ip_intact(f[f["pod"].isna()]))


# --- summary scopes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def local_vs_cluster() -> npsim.Result:
    s = npsim.load_scenario(SCENARIOS / "local-vs-cluster.yaml")
    s.run.duration = 25
    return npsim.run(s)


def test_summary_has_per_population_rows(local_vs_cluster):
    summary = local_vs_cluster.summary
    assert set(summary["scope"]) == {"all", "population:to-local", "population:to-cluster"}
    all_metrics = set(summary.loc[summary["scope"] == "all", "metric"])
    for scope in ("population:to-local", "population:to-cluster"):
        metrics = set(summary.loc[summary["scope"] == scope, "metric"])
        assert {"requests_measured", "throughput", "latency_p99", "cross_node_fraction",
                "source_ip_intact_fraction", "client_stickiness",
                "pod_share_jain", "pod_share_gini"} <= metrics <= all_metrics


def test_metric_by_population_returns_that_populations_value(local_vs_cluster):
    r = local_vs_cluster
    for name in ("to-local", "to-cluster"):
        assert r.metric("requests_measured", population=name) == len(measured(r, name))
    assert (r.metric("requests_measured", population="to-local")
            + r.metric("requests_measured", population="to-cluster")
            == r.metric("requests_measured"))
    with pytest.raises(KeyError):
        r.metric("requests_measured", population="nobody")


def test_per_population_metrics_follow_the_policies(local_vs_cluster):
    r = local_vs_cluster
    assert r.metric("cross_node_fraction", population="to-local") == 0.0
    assert r.metric("source_ip_intact_fraction", population="to-local") == 1.0
    assert r.metric("source_ip_intact_fraction", population="to-cluster") == 0.0
    # Cluster: half the traffic enters each node; 1/3 crosses from node-1, 2/3 from node-2
    n = len(completed(measured(r, "to-cluster")))
    cross = r.metric("cross_node_fraction", population="to-cluster")
    assert abs(cross - 0.5) <= Z * math.sqrt(0.25 / n)
    # pod shares 1/4, 1/4, 1/2 (Local) and 1/3 each (Cluster)
    assert r.metric("pod_share_jain", population="to-local") == pytest.approx(8 / 9, abs=0.03)
    assert r.metric("pod_share_gini", population="to-local") == pytest.approx(1 / 6, abs=0.03)
    assert r.metric("pod_share_jain", population="to-cluster") == pytest.approx(1, abs=0.01)
    # mixed: the all-scope value lies between the two
    lo, hi = sorted(r.metric("cross_node_fraction", population=p)
                    for p in ("to-local", "to-cluster"))
    assert lo < r.metric("cross_node_fraction") < hi


def test_single_population_has_no_scoped_rows():
    s = scenario(nodes=["node-1"], manifests=[service(), deployment("web", 2)],
                 clients=[population(rate="50/s")], duration="2s")
    r = npsim.run(s)
    assert set(r.summary["scope"]) == {"all"}
    with pytest.raises(KeyError):
        r.metric("throughput", population="users")


def test_per_population_pod_shares_cover_only_its_services_pods():
    s = scenario(
        nodes=["node-1", "node-2"],
        manifests=[service("a", app="a", node_port=30081), service("b", app="b", node_port=30082),
                   deployment("a", 2), deployment("b", 2)],
        clients=[population("to-a", "a", rate="300/s"), population("to-b", "b", rate="300/s")],
        duration="10s")
    r = npsim.run(s)
    for name in ("to-a", "to-b"):
        assert r.metric("pod_share_jain", population=name) == pytest.approx(1, abs=0.02)


@pytest.mark.parametrize("populations", [1, 3])
def test_stickiness_counted_by_cells_equals_the_grouped_count(populations, monkeypatch):
    """Few (client, pod) pairs are counted in one array; many are grouped and sorted.
    Both give the same figure to the bit (rows selected or not, clients and pods
    missing, several populations)."""
    import npsim.results.skew as skew

    rng = np.random.default_rng(populations)
    n, clients, pods = 200_000, 700, 9
    f = pd.DataFrame({
        "population": pd.Categorical.from_codes(rng.integers(0, populations, n),
                                                [f"p{i}" for i in range(populations)]),
        "client_ip": pd.Categorical.from_codes(rng.integers(-1, clients, n),
                                               [f"10.0.{i // 250}.{i % 250}"
                                                for i in range(clients)]),
        "pod": pd.Categorical.from_codes(rng.integers(-1, pods, n),
                                         [f"pod-{i}" for i in range(pods)]),
        "new_connection": rng.random(n) < 0.7,
    })
    rows = rng.random(n) < 0.8
    by_cells = (stickiness(f), stickiness(f, rows))
    monkeypatch.setattr(skew, "CELLS", 0)  # every pair count grouped and sorted
    assert (stickiness(f), stickiness(f, rows)) == by_cells
    assert 0 < by_cells[1] < 1
