"""Client populations: closed loops, open-loop rate schedules, and how clients pick the
node they enter (a named node, a random node, DNS round-robin with a TTL cache)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_matches_theory, build, client, constant, exponential
from scipy import stats

import npsim

P_MIN = 1e-3


def _completed_per_replication(result, warmup: float) -> np.ndarray:
    frame = result.requests
    done = frame[~frame["warmup"] & (frame["outcome"] == "completed")]
    return done.groupby("replication").size().to_numpy() / (result.end_time - warmup)


# --- closed loop ---------------------------------------------------------------------------


@pytest.mark.slow  # queueing theory: long runs for tight bounds
def test_closed_loop_throughput_is_users_over_think_plus_service():
    """No queueing (64 workers for 20 users): X = U / (Z + S)."""
    users, think, service = 20, 10e-3, 2e-3
    result = npsim.run(build(
        nodes=1, workers=64, service_time=exponential(service),
        clients=[client(users=users, think=exponential(think))],
        duration=3.0, warmup=0.2, seed=301, replications=10,
    ))
    x = _completed_per_replication(result, 0.2)
    assert_matches_theory(x, users / (think + service), rel_tol=0.01, max_rel_half=0.02,
                          what="closed-loop throughput")
    assert result.metric("throughput") == pytest.approx(x.mean(), rel=1e-9)
    assert (result.requests["queue_wait"].dropna() == 0).all()


@pytest.mark.slow  # queueing theory: long runs for tight bounds
def test_closed_loop_single_worker_is_the_machine_repairman_model():
    """U users, exponential think Z, one exponential server S: the finite-source M/M/1//U
    queue. P0 = 1 / sum_n U!/(U-n)! (S/Z)^n, X = (1 - P0)/S, response time R = U/X - Z."""
    users, think, service = 10, 8e-3, 1e-3
    r = service / think
    p0 = 1.0 / sum(math.perm(users, n) * r**n for n in range(users + 1))
    x_theory = (1 - p0) / service
    result = npsim.run(build(
        nodes=1, workers=1, service_time=exponential(service),
        clients=[client(users=users, think=exponential(think))],
        duration=5.0, warmup=0.2, seed=302, replications=10,
    ))
    x = _completed_per_replication(result, 0.2)
    assert_matches_theory(x, x_theory, rel_tol=0.01, max_rel_half=0.02, what="M/M/1//10 X")
    frame = result.requests
    done = frame[~frame["warmup"] & (frame["outcome"] == "completed")]
    latency = done.groupby("replication")["latency"].mean().to_numpy()
    assert_matches_theory(latency, users / x_theory - think, what="M/M/1//10 R")


def test_closed_loop_user_waits_for_its_response_then_thinks():
    think = 4e-3
    result = npsim.run(build(
        nodes=2, replicas=2, workers=1, service_time=exponential(2e-3),
        clients=[client(users=6, think=constant(think), rtt=constant(3e-4))],
        duration=1.0, seed=303,
    ))
    frame = result.requests
    assert frame["client_ip"].nunique() == 6
    for _ip, part in frame.groupby("client_ip", observed=True):
        part = part.sort_values("t_start")
        t0 = part["t_start"].to_numpy()
        t1 = part["t_end"].to_numpy()
        # at most one outstanding request per user, the next one a think time later
        assert np.allclose(t0[1:] - t1[:-1], think, rtol=0, atol=1e-12)
        assert t0[0] == pytest.approx(think)


# --- open loop: rate schedules ---------------------------------------------------------------


@pytest.fixture(scope="module")
def scheduled():
    return npsim.run(build(
        nodes=1, workers=8, service_time=exponential(1e-3),
        clients=[client(schedule=[(0, 100.0), (10.0, 300.0)])],
        duration=20.0, seed=304, replications=10,
    ))


@pytest.mark.parametrize(("start", "end", "rate"), [(0.0, 10.0, 100.0), (10.0, 20.0, 300.0)])
def test_schedule_counts_per_segment_are_poisson(scheduled, start, end, rate):
    frame = scheduled.requests
    t = frame["t_start"]
    inside = frame[(t >= start) & (t < end)]
    counts = inside.groupby("replication").size().reindex(range(10), fill_value=0).to_numpy()
    mean = rate * (end - start)
    total = counts.sum()
    assert abs(total - 10 * mean) <= 4 * math.sqrt(10 * mean), (counts, mean)
    # the spread across replications is Poisson: sum (n - m)^2 / m ~ chi2(10), two-sided
    dispersion = float(((counts - mean) ** 2 / mean).sum())
    assert P_MIN < stats.chi2.sf(dispersion, 10) < 1 - P_MIN, counts


@pytest.mark.parametrize(("start", "end", "rate"), [(0.0, 10.0, 100.0), (10.0, 20.0, 300.0)])
def test_schedule_inter_arrival_times_are_exponential(scheduled, start, end, rate):
    frame = scheduled.requests
    gaps = []
    for _rep, part in frame.groupby("replication"):
        t = part["t_start"].to_numpy()
        t = t[(t >= start) & (t < end)]
        gaps.append(np.diff(t))
    scaled = np.concatenate(gaps) * rate
    assert stats.kstest(scaled, "expon").pvalue > P_MIN


def test_schedule_with_a_silent_segment_sends_nothing_in_it():
    result = npsim.run(build(
        nodes=1, service_time=exponential(1e-3),
        clients=[client(schedule=[(0, 500.0), (1.0, 0.0), (2.0, 500.0)])],
        duration=3.0, seed=305,
    ))
    t = result.requests["t_start"]
    assert ((t >= 1.0) & (t < 2.0)).sum() == 0
    for lo, hi in ((0.0, 1.0), (2.0, 3.0)):
        n = int(((t >= lo) & (t < hi)).sum())
        assert abs(n - 500) <= 4 * math.sqrt(500), (lo, n)


def test_open_loop_rate_is_kept_whatever_the_latency():
    """An open loop does not slow down when the service does (overload included)."""
    result = npsim.run(build(
        nodes=1, service_time=exponential(2e-3), clients=[client(rate=800.0)],
        duration=5.0, seed=306, replications=4,
    ))
    counts = result.requests.groupby("replication").size().to_numpy()
    assert abs(counts.sum() - 4 * 4000) <= 4 * math.sqrt(4 * 4000)



def test_open_loops_send_in_time_order_among_other_events():
    """A constant-rate open loop sends its next arrival at once while nothing else is
    due before it (npsim/sim/clients.py): beside a second open loop and a closed loop
    (whose requests are served by event), every request is still sent in time order,
    a population's arrival times are those it has alone, and a timed run sends nothing
    at or after its end."""
    kw = dict(nodes=2, replicas=2, workers=2, duration=2.0, seed=9)
    alone = npsim.run(build(clients=[client("a", rate=300.0)], **kw)).requests
    mixed = npsim.run(build(clients=[
        client("a", rate=300.0), client("b", rate=500.0),
        client("c", users=3, think=exponential(5e-3))], **kw)).requests
    t = mixed["t_start"].to_numpy()
    assert (np.diff(t) >= 0).all() and t.max() < 2.0
    assert set(mixed["population"]) == {"a", "b", "c"}
    a = mixed.loc[mixed["population"] == "a", "t_start"].to_numpy()
    assert np.array_equal(a, alone["t_start"].to_numpy())

# --- where clients enter ----------------------------------------------------------------------


def test_named_entry_node_receives_everything():
    result = npsim.run(build(
        nodes=3, replicas=3, service_time=exponential(1e-3),
        clients=[client(rate=1000.0, entry={"node": "node-2"})], duration=1.0, seed=307,
    ))
    frame = result.requests
    assert (frame["entry_node"] == "node-2").all()
    received = result.nodes.set_index("node")["received"]
    assert received.to_dict() == {"node-1": 0, "node-2": len(frame), "node-3": 0}
    # and kube-proxy on node-2 still spreads over all pods, local or not
    assert frame["pod"].nunique() == 3


def _entry_windows(frame, ttl: float):
    """Per client, in time order: the requests that (re)started a TTL window, and check
    that the entry node stays constant inside each window."""
    starts = []
    for ip, part in frame.groupby("client_ip", observed=True):
        part = part.sort_values("t_start")
        window_start, current = -math.inf, None
        for t, node in zip(part["t_start"], part["entry_node"].astype(str), strict=True):
            if t >= window_start + ttl:
                window_start, current = t, node
                starts.append((t, node, ip))
            else:
                assert node == current, f"client {ip} changed node inside its TTL window"
    return sorted(starts)


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "open"])
def test_dns_round_robin_pins_clients_for_a_ttl_and_rotates(closed):
    ttl = 0.2
    dns = {"dns": {"ttl": f"{ttl!r}s", "order": "rotate"}}
    pop = (client(users=12, think=exponential(30e-3), entry=dns) if closed
           else client(rate=300.0, source_ips=12, entry=dns))
    result = npsim.run(build(nodes=3, replicas=3, service_time=exponential(1e-3),
                             clients=[pop], duration=2.0, seed=308))
    frame = result.requests
    queries = _entry_windows(frame, ttl)
    # a rotating server hands node-1, node-2, node-3, node-1, ... to successive queries
    nodes = [node for _t, node, _ip in queries]
    assert nodes == [f"node-{i % 3 + 1}" for i in range(len(nodes))]
    # so the first three clients to ask land on three different nodes ...
    assert len({ip for _t, _node, ip in queries[:3]}) == 3
    assert {node for _t, node, _ip in queries[:3]} == {"node-1", "node-2", "node-3"}
    # ... and each client moves on after its TTL (2 s = 10 TTLs)
    per_client = frame.groupby("client_ip", observed=True)["entry_node"].nunique()
    assert (per_client > 1).all()
    assert len(queries) > 12 * 5


def test_dns_random_order_pins_clients_and_spreads_uniformly():
    ttl = 0.1
    pop = client(users=20, think=exponential(10e-3), entry={"dns": {"ttl": "100ms",
                                                                    "order": "random"}})
    result = npsim.run(build(nodes=3, replicas=3, service_time=exponential(1e-3),
                             clients=[pop], duration=5.0, seed=309))
    queries = _entry_windows(result.requests, ttl)
    counts = np.unique([node for _t, node, _ip in queries], return_counts=True)[1]
    assert len(counts) == 3 and counts.sum() > 900
    assert stats.chisquare(counts).pvalue > P_MIN


def test_dns_entry_keeps_a_keepalive_connection_past_the_ttl():
    """DNS is asked only when a connection opens: requests on an open connection stay on
    its node even after the cached answer expired."""
    pop = client(users=4, think=exponential(20e-3), requests_per_connection=50,
                 entry={"dns": {"ttl": "50ms"}})
    result = npsim.run(build(nodes=3, replicas=3, service_time=exponential(1e-3),
                             clients=[pop], duration=2.0, seed=310))
    frame = result.requests
    per_conn = frame.groupby("connection").agg(
        nodes=("entry_node", "nunique"), span=("t_start", lambda t: t.max() - t.min()))
    assert (per_conn["nodes"] == 1).all()
    assert (per_conn["span"] > 0.05).any()  # connections do outlive the TTL
