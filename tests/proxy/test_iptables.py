"""iptables mode: the ``-m statistic --mode random`` cascade and kube-proxy's endpoint order.

pkg/proxy/iptables/proxier.go: rule i of n matches with
probability 1/(n-i+1), the last rule is unconditional, each endpoint gets 1/n of new
connections, and endpoints are ordered by the *string* "IP:port".
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from scipy import stats

from npsim.cluster.model import Pod, build_cluster, endpoints_for
from npsim.dists import Constant
from npsim.proxy.iptables import IptablesProxy, UniformTable
from npsim.proxy.rules.iptables import cascade_probabilities, format_probability

from .helpers import (
    chi_square_uniform,
    client,
    endpoints,
    node,
    run_frame,
    scenario,
    service_port,
)

ALPHA = 1e-3  # fixed seeds: a p-value below this would mean a real bias


def test_cascade_probabilities_four_endpoints() -> None:
    assert cascade_probabilities(4) == [1 / 4, 1 / 3, 1 / 2, None]
    formatted = [format_probability(p) for p in cascade_probabilities(4)[:-1]]
    assert formatted == ["0.2500000000", "0.3333333333", "0.5000000000"]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 10, 37])
def test_cascade_rule_i_of_n_and_last_unconditional(n: int) -> None:
    probs = cascade_probabilities(n)
    assert len(probs) == n
    assert probs[-1] is None  # the last (or only) rule has no statistic match
    for i, p in enumerate(probs[:-1], start=1):
        assert p == pytest.approx(1 / (n - i + 1), rel=1e-15)
    # the products telescope: every endpoint gets exactly 1/n
    reach = 1.0
    for p in probs:
        share = reach * (1.0 if p is None else p)
        assert share == pytest.approx(1 / n, rel=1e-12)
        reach -= share
    assert reach == pytest.approx(0.0, abs=1e-12)


def test_cascade_three_and_one_endpoints_formatted() -> None:
    assert [format_probability(p) for p in cascade_probabilities(3)[:-1]] == [
        "0.3333333333", "0.5000000000"]
    assert cascade_probabilities(1) == [None]
    assert cascade_probabilities(0) == []
    assert format_probability(1 / 5) == "0.2000000000"
    assert format_probability(1 / 6) == "0.1666666667"


def walk_cascade(n: int, draws: np.ndarray) -> np.ndarray:
    """The kernel's walk: at rule i, a fresh draw < p_i matches; else fall through."""
    probs = cascade_probabilities(n)
    chosen = np.full(draws.shape[0], n - 1)
    undecided = np.ones(draws.shape[0], dtype=bool)
    for i, p in enumerate(probs[:-1]):
        hit = undecided & (draws[:, i] < p)
        chosen[hit] = i
        undecided &= ~hit
    return chosen


def test_walking_the_cascade_is_uniform_and_matches_the_o1_pick() -> None:
    n, samples = 4, 40_000
    rng = np.random.default_rng(2024)
    walked = np.bincount(walk_cascade(n, rng.random((samples, n))), minlength=n)
    assert chi_square_uniform(walked) > ALPHA

    proxy = IptablesProxy(node(), np.random.default_rng(7))
    sp = service_port(endpoints=endpoints(n))
    proxy.program(sp, sp.endpoints)
    table = proxy.tables[sp.index]
    assert isinstance(table, UniformTable)
    picked = np.bincount([table.pick(0, 0, 0.0) for _ in range(samples)], minlength=n)
    assert chi_square_uniform(picked) > ALPHA
    # the two distributions agree (two-sample chi-square on the 2 x n contingency table)
    assert stats.chi2_contingency(np.vstack([walked, picked])).pvalue > ALPHA
    # and each share is 1/4 within a few standard errors
    se = np.sqrt(0.25 * 0.75 / samples)
    assert np.all(np.abs(walked / samples - 0.25) < 5 * se)
    assert np.all(np.abs(picked / samples - 0.25) < 5 * se)


def test_walk_of_a_seven_rule_chain_is_uniform() -> None:
    n, samples = 7, 35_000
    walked = np.bincount(walk_cascade(n, np.random.default_rng(11).random((samples, n))),
                         minlength=n)
    assert chi_square_uniform(walked) > ALPHA


def _pod(index: int, ip: str) -> Pod:
    return Pod(index, f"web-{index}", "web", 0, int(ipaddress.IPv4Address(ip)), {"app": "web"},
               1, None, Constant(dist="constant", value=0.001))


def test_endpoint_order_is_lexicographic_on_ip_port() -> None:
    sp = service_port()
    pods = [_pod(0, "10.0.0.9"), _pod(1, "10.0.0.10"), _pod(2, "10.0.0.2")]
    eps = endpoints_for(sp.service, sp.port, pods)
    assert [e.key for e in eps] == ["10.0.0.10:80", "10.0.0.2:80", "10.0.0.9:80"]
    assert [e.pod for e in eps] == [1, 2, 0]
    # a string sort, not a numeric one
    numeric = sorted(eps, key=lambda e: e.ip)
    assert [e.key for e in numeric] != [e.key for e in eps]


def test_built_cluster_and_table_keep_kube_proxy_order() -> None:
    # nine pods on one node get 10.0.0.2 .. 10.0.0.10: ".10" sorts first
    scn = scenario(nodes=[{"name": "node-1", "podCIDR": "10.0.0.0/24"}], replicas=9,
                   requests=10)
    cluster = build_cluster(scn)
    sp = cluster.service_ports[0]
    keys = [e.key for e in sp.endpoints]
    assert keys == ["10.0.0.10:80"] + [f"10.0.0.{h}:80" for h in range(2, 10)]
    proxy = IptablesProxy(cluster.nodes[0], np.random.default_rng(1))
    proxy.program(sp, sp.endpoints)
    table = proxy.tables[sp.index]
    assert table.keys == keys
    assert table.pods == [e.pod for e in sp.endpoints]
    # rule 1 of the cascade points at 10.0.0.10:80 with probability 1/9
    assert format_probability(cascade_probabilities(table.n)[0]) == "0.1111111111"


def test_run_spreads_new_connections_uniformly_over_pods() -> None:
    scn = scenario(nodes=2, replicas=4, requests=4000,
                   clients=[client(rate="2000/s", rpc=1)])
    _, frame = run_frame(scn)
    assert (frame["outcome"] == "completed").all()
    assert frame["new_connection"].all()
    counts = frame["pod"].value_counts().to_numpy()
    assert len(counts) == 4
    assert chi_square_uniform(counts) > ALPHA
