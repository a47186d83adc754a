"""Client behaviour under failures: the kernel's SYN retransmissions, request timeouts,
retries with backoff and a budget, per-population schedules, DNS client libraries."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import client, constant, scenario_dict

import npsim
from npsim.sim.clients import connect_give_up, syn_send_times


def local_on_first_node(nodes: int = 3, **kwargs) -> dict:
    """Local policy with the only pod on node-1: connections entering any other node
    are dropped (no answer to the SYN): a stand-in for a node that does not answer."""
    kwargs.setdefault("service_time", constant(1e-3))
    kwargs.setdefault("workers", 8)
    d = scenario_dict(nodes=nodes, replicas=1, placement={"node-1": 1}, **kwargs)
    d["manifests"][0]["spec"]["externalTrafficPolicy"] = "Local"
    return d


def test_syn_retransmissions_double_from_one_second_to_127s():
    assert syn_send_times(6) == [0, 1, 3, 7, 15, 31, 63]
    assert connect_give_up(6, None) == 127.0
    assert connect_give_up(6, 10.0) == 10.0  # the client's own timeout cuts it short
    assert connect_give_up(2, None) == 7.0
    assert syn_send_times(6, give_up=10.0) == [0, 1, 3, 7]


@pytest.mark.parametrize(("extra", "waited"), [({"connectTimeout": None}, 127.0),
                                               ({"connectTimeout": None, "synRetries": 3}, 15.0),
                                               ({"connectTimeout": "4s"}, 4.0)])
def test_an_unanswered_connection_fails_when_the_syn_schedule_gives_up(extra, waited):
    c = client(rate=5.0, entry={"node": "node-2"})
    c.update(extra)
    d = local_on_first_node(nodes=2, clients=[c], duration=200.0)
    result = npsim.run(npsim.scenario_from_dict(d))
    failed = result.requests[result.requests["outcome"] == "failed"]
    assert len(failed) > 0
    assert (failed["reason"] == "dropped_no_local_endpoint").all()
    assert np.allclose(failed["latency"], waited)
    late = result.requests[result.requests["t_start"] > 200.0 - waited]
    assert (late["outcome"] == "in_flight").all()


def _retrying(attempts: int = 3, budget: dict | None = None, rate: float = 40.0,
              duration: float = 6.0) -> npsim.Result:
    c = client(rate=rate, source_ips=50)
    c["connectTimeout"] = "1s"
    c["retries"] = {"attempts": attempts,
                    "backoff": {"base": "100ms", "multiplier": 2, "jitter": "none"}}
    if budget is not None:
        c["retries"]["budget"] = budget
    d = local_on_first_node(nodes=2, clients=[c], duration=duration)
    return npsim.run(npsim.scenario_from_dict(d))


def test_failed_requests_are_retried_after_exponential_backoff():
    result = _retrying()
    req = result.requests.set_index("request")
    retries = req[req["attempt"] > 0]
    assert len(retries) > 0
    prev = req.loc[retries["retry_of"]]
    assert (prev["outcome"] == "failed").all()
    assert (retries["attempt"].to_numpy() == prev["attempt"].to_numpy() + 1).all()
    backoff = 0.1 * 2.0 ** (retries["attempt"].to_numpy() - 1)
    assert np.allclose(retries["t_start"].to_numpy(), prev["t_end"].to_numpy() + backoff)
    assert retries["attempt"].max() == 3
    # a chain stops at the first success or after 3 retries: no attempt 4, and a
    # completed request is never retried
    assert not req["retry_of"].isin(req.index[req["outcome"] == "completed"]).any()
    # half the connections (those entering node-2) fail; retries rescue most requests
    first = req[req["attempt"] == 0]
    assert 0.4 < (first["outcome"] != "completed").mean() < 0.6
    last = req[~req.index.isin(req["retry_of"])]
    gave_up = last[(last["outcome"] == "failed") & (last["attempt"] == 3)]
    assert len(gave_up) < 0.15 * len(first)


def test_a_retry_budget_caps_retries_at_a_share_of_first_attempts():
    result = _retrying(attempts=5, budget={"ratio": 0.1, "minPerSecond": 0, "window": "2s"},
                       duration=8.0)
    req = result.requests.set_index("request")
    sent = req.loc[req["attempt"] == 0, "t_start"].to_numpy()
    retries = req[req["attempt"] > 0]
    assert len(retries) > 0
    decided = req.loc[retries["retry_of"], "t_end"].to_numpy()  # when the client retried
    # within every 2 s window the retries stay within 10% of that window's first attempts
    for t in decided:
        in_window = ((decided > t - 2.0) & (decided <= t)).sum()
        assert in_window <= 0.1 * ((sent > t - 2.0) & (sent <= t)).sum() + 1e-9
    unbudgeted = _retrying(attempts=5, duration=8.0).requests
    assert (unbudgeted["attempt"] > 0).sum() > 3 * len(retries)


def test_request_timeout_fails_slow_responses_and_the_user_moves_on():
    c = client(users=1, think=constant(0.0))
    c["requestTimeout"] = "500ms"
    d = scenario_dict(nodes=1, service_time=constant(2.0), clients=[c], duration=5.0)
    result = npsim.run(npsim.scenario_from_dict(d))
    req = result.requests
    assert len(req) == 10  # one request every 0.5 s, each given up after 0.5 s
    assert (req["reason"].iloc[:-1] == "request_timeout").all()
    assert np.allclose(req["latency"].iloc[:-1], 0.5)
    assert np.allclose(req["t_start"], np.arange(10) * 0.5)
    assert result.pods["utilisation"].iloc[0] > 0.9  # the pod still serves them


def test_a_response_at_the_instant_the_client_gives_up_is_a_timeout():
    """Service exactly as long as the timeout, on a zero network: the response comes at
    the very instant the client gives up, after it (its timeout was armed first), so the
    request failed, as the client (and a caller waiting for it) took it."""
    c = client(rate=2.0)
    c["requestTimeout"] = "250ms"
    d = scenario_dict(nodes=1, service_time=constant(0.25), clients=[c], duration=5.0)
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    done = req[req["outcome"] != "in_flight"]
    assert len(done) > 3 and (done["reason"] == "request_timeout").all()
    assert np.allclose(done["latency"], 0.25)


def test_populations_start_stop_and_send_a_fixed_number():
    phase1 = client("phase1", rate=100.0, entry={"node": "node-1"})
    phase1["stop"] = "3s"
    phase2 = client("phase2", rate=100.0, entry={"node": "node-2"})
    phase2["start"] = "3s"
    burst = client("burst", rate=100.0)
    burst.update({"start": "1s", "requests": 37})
    d = scenario_dict(nodes=2, replicas=2, clients=[phase1, phase2, burst], duration=6.0)
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    p1, p2, b = (req[req["population"] == name] for name in ("phase1", "phase2", "burst"))
    assert p1["t_start"].max() < 3.0 and (p1["entry_node"] == "node-1").all()
    assert p2["t_start"].min() >= 3.0 and (p2["entry_node"] == "node-2").all()
    assert 250 < len(p1) < 350 and 250 < len(p2) < 350
    assert len(b) == 37 and b["t_start"].min() >= 1.0


def _dns(client_mode: str, ttl: str = "30s") -> npsim.Result:
    c = client(rate=40.0, source_ips=20, entry={"dns": {"ttl": ttl, "client": client_mode}})
    c["connectTimeout"] = "200ms"
    d = local_on_first_node(nodes=3, clients=[c], duration=20.0)
    return npsim.run(npsim.scenario_from_dict(d))


def test_dns_clients_pin_rotate_or_fail_over():
    pinned = _dns("pin").requests
    # a pinned client keeps the bad address for the whole TTL: all or none of its
    # requests fail
    per_client = pinned.groupby("client_ip", observed=True)["outcome"].apply(
        lambda o: (o != "completed").mean())
    assert set(np.round(per_client.unique(), 6)) <= {0.0, 1.0}
    assert (per_client == 1.0).sum() >= 10  # 2 of 3 answers start with a bad node
    rotating = _dns("rotate").requests
    assert 0.6 < (rotating["outcome"] == "failed").mean() < 0.73  # 2 of 3 nodes drop
    failing_over = _dns("failover").requests
    fails = failing_over[failing_over["outcome"] == "failed"]
    # each client fails until it learns of the failure (200 ms), then moves on: at most
    # two bad addresses in its list, a few requests each
    assert fails.groupby("client_ip", observed=True).size().max() <= 6
    assert len(fails) < 0.1 * len(failing_over)


def test_a_dead_address_leaves_a_pinned_cache_only_when_the_ttl_expires():
    short = _dns("pin", ttl="2s").requests
    per_client = short.groupby("client_ip", observed=True)["outcome"].apply(
        lambda o: (o != "completed").mean())
    assert per_client.between(0.3, 0.95).sum() >= 10  # re-resolved: mixed outcomes


def test_a_retransmitted_syn_gets_through_once_a_partition_heals():
    """node-2 is cut off from 10 s to 12.5 s. A client connecting there at t sends SYNs
    at t, t+1, t+3, t+7, ...; the first one sent after 12.5 s connects."""
    c = client(rate=20.0, entry={"node": "node-2"})
    c["connectTimeout"] = None
    d = scenario_dict(nodes=2, replicas=2, service_time=constant(1e-3), workers=8,
                      clients=[c], duration=30.0, placement={"node-1": 2})
    d["events"] = [{"at": "10s", "until": "12.5s", "nodePartition": {"node": "node-2"}}]
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    during = req[(req["t_start"] >= 10.0) & (req["t_start"] < 12.5)]
    assert len(during) > 20 and (during["outcome"] == "completed").all()
    offsets = np.array(syn_send_times(6))
    expected = [offsets[np.argmax(t + offsets >= 12.5)] for t in during["t_start"]]
    assert np.allclose(during["latency"] - during["service"] - during["queue_wait"].fillna(0),
                       expected)
    assert set(np.round(expected, 6)) == {1.0, 3.0}


def test_a_failed_keep_alive_connection_reconnects_and_the_retry_succeeds():
    """Keep-alive users on web-0 when it crashes (and restarts at once): the request on
    the dead connection fails once, the retry opens a new connection (kube-proxy
    chooses again) and completes."""
    c = client(users=10, think=constant(0.05), requests_per_connection=1000)
    c["retries"] = {"attempts": 1, "backoff": {"base": "10ms", "jitter": "none"}}
    d = scenario_dict(nodes=2, replicas=2, service_time=constant(1e-3), workers=4,
                      clients=[c], duration=6.0)
    d["events"] = [{"at": "2s", "podCrash": {"pod": "web-0"}}]
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    failed = req[req["outcome"] == "failed"]
    assert len(failed) >= 1 and (failed["pod"] == "web-0").all()
    retried = req[req["retry_of"].isin(failed["request"])]
    assert len(retried) == len(failed)
    assert retried["new_connection"].all() and (retried["outcome"] == "completed").all()
    # one failure per user that was on web-0; afterwards every request completes
    assert failed["client_ip"].is_unique
    after = req[req["t_start"] > failed["t_end"].max() + 0.011]
    assert (after["outcome"] == "completed").all()


def test_the_summary_counts_retries_and_what_users_finally_saw_fail():
    result = _retrying()
    req = result.requests
    assert result.metric("retries") == (req["attempt"] > 0).sum()
    final = req[(req["outcome"] == "failed") & ~req["request"].isin(req["retry_of"])]
    assert result.metric("requests_failed_after_retries") == len(final)
    assert 0 < len(final) < result.metric("requests_failed")
