"""Seeds and named random streams: reproducible runs and common random numbers.

Each component draws from its own stream keyed by (seed, replication, component name)
(npsim/streams.py), so a what-if that changes one component leaves the others'
draws alone.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import build, client, constant, exponential

import npsim


def _scenario(seed: int = 7, service_mean: float = 1e-3, extra_clients=(), k: int = 1,
              replications: int = 2, duration: float = 1.0, queue_limit: int | None = 0):
    return build(
        nodes=3, replicas=4, workers=2, service_time=exponential(service_mean),
        queue_limit=queue_limit,
        clients=[client("web", rate=1500.0, entry="random", requests_per_connection=k,
                        rtt={"dist": "lognormal", "mean": "1ms", "cv": 0.5}),
                 *extra_clients],
        network={"sameNode": {"dist": "constant", "value": 0},
                 "sameZone": {"dist": "lognormal", "mean": "90us", "cv": 0.3},
                 "crossZone": constant(5e-4)},
        duration=duration, warmup=0.1, seed=seed, replications=replications,
        zero_proxy_cost=False,  # npsim's published first-packet costs: one more stream
    )


def _population(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    return frame[frame["population"] == name].reset_index(drop=True)


def _same(a: pd.Series, b: pd.Series) -> None:
    """Equal values; categoricals compared by value (their category sets may differ)."""
    if isinstance(a.dtype, pd.CategoricalDtype) or isinstance(b.dtype, pd.CategoricalDtype):
        a, b = a.astype(str), b.astype(str)
    pd.testing.assert_series_equal(a, b, check_names=False)


def test_same_seed_gives_identical_frames():
    a = npsim.run(_scenario(k=3))
    b = npsim.run(_scenario(k=3))
    pd.testing.assert_frame_equal(a.requests, b.requests)
    pd.testing.assert_frame_equal(a.pods, b.pods)
    pd.testing.assert_frame_equal(a.nodes, b.nodes)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    assert (a.requests["outcome"] == "failed").any()  # the rejection path ran too


def test_a_copied_scenario_runs_identically():
    scenario = _scenario()
    first = npsim.run(scenario).requests
    again = npsim.run(scenario).requests  # a Scenario can be run twice
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, npsim.run(scenario.copy()).requests)


def test_different_seed_gives_different_frames():
    a = npsim.run(_scenario(seed=7)).requests
    b = npsim.run(_scenario(seed=8)).requests
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(a, b)
    n = min(len(a), len(b))
    assert not np.isclose(a["t_start"].to_numpy()[:n], b["t_start"].to_numpy()[:n]).all()
    assert (a["pod"].to_numpy()[:n] != b["pod"].to_numpy()[:n]).any()


def test_replications_are_different_and_independent_of_their_number():
    two = npsim.run(_scenario(replications=2)).requests
    three = npsim.run(_scenario(replications=3)).requests
    # replication r is the same run whether 2 or 3 were asked for
    pd.testing.assert_frame_equal(two, three[three["replication"] < 2].reset_index(drop=True))
    r0 = three[three["replication"] == 0]["t_start"].to_numpy()
    r1 = three[three["replication"] == 1]["t_start"].to_numpy()
    n = min(len(r0), len(r1))
    assert (r0[:n] != r1[:n]).all()


def test_service_time_does_not_change_arrivals():
    """Common random numbers: slower pods, same open-loop arrivals, same client IPs, and
    (one request per connection) the same entry nodes and kube-proxy choices."""
    fast = npsim.run(_scenario(service_mean=1e-3, queue_limit=None)).requests
    slow = npsim.run(_scenario(service_mean=1.6e-3, queue_limit=None)).requests
    assert len(fast) == len(slow)
    for column in ("t_start", "client_ip", "entry_node", "pod", "network", "proxy"):
        _same(fast[column], slow[column])
    assert (fast["proxy"] > 0).all()
    assert (slow["latency"].mean() > 1.3 * fast["latency"].mean())


def test_service_time_does_not_change_arrivals_with_keepalive():
    fast = npsim.run(_scenario(service_mean=1e-3, k=5)).requests
    slow = npsim.run(_scenario(service_mean=1.5e-3, k=5)).requests
    for column in ("t_start", "client_ip", "connection", "new_connection", "entry_node",
                   "pod"):
        _same(fast[column], slow[column])


def test_second_population_does_not_change_the_first_ones_arrivals():
    alone = npsim.run(_scenario()).requests
    other = client("batch", rate=700.0, entry={"node": "node-2"}, requests_per_connection=4)
    both = npsim.run(_scenario(extra_clients=[other])).requests
    assert set(both["population"].unique()) == {"web", "batch"}
    first = _population(both, "web")
    mine = _population(alone, "web")
    assert len(first) == len(mine)
    for column in ("t_start", "client_ip"):
        _same(first[column], mine[column])
    # the entry choice is the population's own stream, so it is unchanged too
    _same(first["entry_node"], mine["entry_node"])
    # the populations' client addresses do not overlap
    assert not set(_population(both, "batch")["client_ip"]) & set(first["client_ip"])


def test_population_rate_change_leaves_the_other_population_alone():
    slow = client("batch", rate=300.0, entry="random")
    fast = client("batch", rate=900.0, entry="random")
    a = _population(npsim.run(_scenario(extra_clients=[slow])).requests, "web")
    b = _population(npsim.run(_scenario(extra_clients=[fast])).requests, "web")
    _same(a["t_start"], b["t_start"])
    _same(a["client_ip"], b["client_ip"])


def test_request_frame_dtypes_do_not_depend_on_the_draws():
    many_ips = client("web", rate=500.0, source_ips=5000)  # replications see other IPs
    one = npsim.run(build(clients=[many_ips], duration=1.0, replications=1)).requests
    two = npsim.run(build(clients=[many_ips], duration=1.0, replications=2)).requests
    for column in one.columns:
        assert type(one[column].dtype) is type(two[column].dtype), column
