"""Every generated request is accounted for: completed, failed (with a reason) or in
flight at the end, and the frames and the summary agree on the counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import (
    ZERO,
    assert_matches_theory,
    build,
    client,
    constant,
    exponential,
    scenario_dict,
)

import npsim

WARMUP = 0.5


@pytest.fixture(scope="module")
def overloaded():
    """One pod, one worker, queueLimit 2, offered load 1.5: many rejections.
    A small constant rtt makes the client-side ends differ from the pod-side ones."""
    return npsim.run(build(
        nodes=1, replicas=1, workers=1, service_time=exponential(1e-3), queue_limit=2,
        clients=[client(rate=1500.0, entry={"node": "node-1"}, rtt=constant(1e-4))],
        duration=4.0 + WARMUP, warmup=WARMUP, seed=201, replications=10,
    ))


def test_generated_is_completed_plus_failed_plus_in_flight(overloaded):
    frame = overloaded.requests
    assert set(frame["outcome"].cat.categories) == {"completed", "failed", "in_flight"}
    for _rep, part in frame.groupby("replication"):
        outcome = part["outcome"].value_counts()
        assert len(part) == outcome["completed"] + outcome["failed"] + outcome["in_flight"]
        assert outcome["failed"] > 0 and outcome["completed"] > 0
        # request ids are 0..n-1 in sending order
        assert (part["request"].to_numpy() == np.arange(len(part))).all()
        assert (np.diff(part["t_start"].to_numpy()) >= 0).all()


def test_failures_are_queue_full_and_rows_are_consistent(overloaded):
    frame = overloaded.requests
    failed = frame[frame["outcome"] == "failed"]
    done = frame[frame["outcome"] == "completed"]
    flying = frame[frame["outcome"] == "in_flight"]
    assert (failed["reason"] == "queue_full").all()
    assert (done["reason"] == "").all() and (flying["reason"] == "").all()
    # completed: every time known, latency = network + queue wait + service
    for column in ("t_end", "latency", "service_start", "service", "queue_wait"):
        assert not done[column].isna().any(), column
    assert np.allclose(done["latency"],
                       done["network"] + done["queue_wait"] + done["service"], atol=1e-12)
    assert (done["queue_wait"] >= 0).all()
    # failed at the pod: never served, the client learns it half a round trip later
    assert failed["service_start"].isna().all() and failed["service"].isna().all()
    assert not failed["t_end"].isna().any()
    assert np.allclose(failed["latency"], failed["network"], atol=1e-12)
    assert failed["pod"].notna().all()
    # in flight: no end, no latency
    assert flying["t_end"].isna().all() and flying["latency"].isna().all()
    assert (flying["t_start"] > overloaded.end_time - 0.1).all()
    assert (done["t_end"] <= overloaded.end_time).all()


def _in_pod(arrivals: np.ndarray, departures: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Requests in the pod (arrived, not yet finished) just after each time in ``t``,
    from sorted arrival and departure times."""
    return (np.searchsorted(arrivals, t, side="right")
            - np.searchsorted(departures, t, side="right"))


def test_queue_limit_bounds_the_pod_population(overloaded):
    """A request is refused exactly when the pod holds workers + queueLimit requests.

    Checked up to the first request still in flight at the end (an in-flight row may be
    queued, or refused with the refusal still on its way back to the client)."""
    frame = overloaded.requests
    for _rep, part in frame.groupby("replication"):
        outcome = part["outcome"].to_numpy()
        flying = part.loc[outcome == "in_flight", "t_start"]
        horizon = flying.min() if len(flying) else np.inf
        arrive = (part["t_start"] + part["network"] / 2 + part["proxy"]).to_numpy()
        leave = (part["service_start"] + part["service"]).to_numpy()
        served = outcome == "completed"
        a = np.sort(arrive[served])
        d = np.sort(leave[served])
        rejected_at = arrive[(outcome == "failed") & (arrive < horizon)]
        assert (_in_pod(a, d, rejected_at) == 1 + 2).all()
        assert _in_pod(a, d, a[a < horizon]).max() == 1 + 2


def test_blocking_probability_is_mm1k(overloaded):
    """M/M/1/K with K = 1 + queueLimit = 3 at rho 1.5 (PASTA): P_block = (1-rho) rho^K /
    (1 - rho^(K+1)) = 0.41538."""
    rho, k = 1.5, 3
    p_block = (1 - rho) * rho**k / (1 - rho ** (k + 1))
    frame = overloaded.requests
    measured = frame[~frame["warmup"] & (frame["outcome"] != "in_flight")]
    blocked = (measured["outcome"] == "failed").groupby(measured["replication"]).mean()
    assert_matches_theory(blocked.to_numpy(), p_block, rel_tol=0.02, max_rel_half=0.03,
                          what="M/M/1/3 blocking")


def test_summary_counts_add_up(overloaded):
    summary = overloaded.summary
    s = summary[summary["scope"] == "all"].set_index("metric")["value"]
    frame = overloaded.requests
    assert s["requests_generated"] == len(frame)
    assert s["requests_generated"] == (s["requests_completed"] + s["requests_failed"]
                                       + s["requests_in_flight"])
    for name in ("completed", "failed", "in_flight"):
        assert s[f"requests_{name}"] == (frame["outcome"] == name).sum()
    measured = frame[~frame["warmup"]]
    assert s["requests_measured"] == len(measured)
    assert s["failed_queue_full"] == (measured["outcome"] == "failed").sum()
    assert not any(m.startswith("failed_")
                   and m not in ("failed_queue_full", "failed_share_queue_full") for m in s.index)
    assert s["failed_share_queue_full"] == 1.0
    assert s["replications"] == 10
    assert "queue_full" in overloaded.report()


def test_no_failures_without_a_queue_limit():
    result = npsim.run(build(
        nodes=1, service_time=exponential(1e-3), queue_limit=None,
        clients=[client(rate=1500.0)], duration=1.0, seed=202,
    ))
    outcomes = result.requests["outcome"].value_counts()
    assert outcomes["failed"] == 0
    assert outcomes["in_flight"] > 50  # overloaded: the queue grows without bound


@pytest.mark.slow  # queueing theory: long runs for tight bounds
def test_queue_limit_zero_is_erlang_b():
    """queueLimit 0 with c workers is the M/M/c/c loss system: P_block = Erlang B."""
    c, a = 3, 2.0
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    result = npsim.run(build(
        nodes=1, workers=c, service_time=exponential(1e-3), queue_limit=0,
        clients=[client(rate=a * 1000.0)], duration=6.0, warmup=0.1, seed=203,
        replications=10,
    ))
    frame = result.requests
    measured = frame[~frame["warmup"] & (frame["outcome"] != "in_flight")]
    assert (measured.loc[measured["outcome"] == "completed", "queue_wait"] == 0).all()
    blocked = (measured["outcome"] == "failed").groupby(measured["replication"]).mean()
    assert_matches_theory(blocked.to_numpy(), b, rel_tol=0.02, max_rel_half=0.03,
                          what="Erlang B c=3 a=2")


# --- runs with a request budget ---------------------------------------------------------------


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
def test_request_budget_drains_without_network(closed):
    pop = (client(users=8, think=exponential(5e-3)) if closed else client(rate=800.0))
    result = npsim.run(build(nodes=2, replicas=2, service_time=exponential(1e-3),
                             clients=[pop], requests=2000, seed=204, replications=2))
    frame = result.requests
    assert (frame.groupby("replication").size() == 2000).all()
    assert (frame["outcome"] == "completed").all()
    assert result.metric("requests_in_flight") == 0
    assert result.end_time >= frame["t_end"].max()


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
def test_request_budget_drains_with_network(closed):
    """The run ends when the client has seen the last answer, not when the pod finished
    it: with rtt > 0 the last response is still on the wire when the last event fires.
    (Was a bug for open loops before 81e38e6: the last request(s) came out in_flight.)"""
    rtt = constant(1e-3)
    pop = (client(users=8, think=exponential(5e-3), rtt=rtt) if closed
           else client(rate=800.0, rtt=rtt))
    result = npsim.run(build(nodes=2, replicas=2, service_time=exponential(1e-3),
                             clients=[pop], requests=2000, seed=204, replications=4))
    frame = result.requests
    assert (frame.groupby("replication").size() == 2000).all()
    assert result.metric("requests_in_flight") == 0
    assert (frame["outcome"] == "completed").all()
    assert result.end_time >= frame["t_end"].max()


# --- a Service without endpoints ---------------------------------------------------------------


def _check_no_endpoints(frame, rtt: float) -> None:
    assert len(frame) > 300
    late = frame["outcome"] == "in_flight"  # refused, but the client hears after the end
    assert late.sum() <= 2
    failed = frame[~late]
    assert (failed["outcome"] == "failed").all()
    assert (failed["reason"] == "no_endpoints").all()
    assert failed["pod"].isna().all() and failed["pod_node"].isna().all()
    assert failed["source_ip_seen"].isna().all()
    assert not failed["cross_node"].any()
    assert np.allclose(failed["latency"], rtt, atol=1e-12)  # refused within a round trip
    assert failed["service_start"].isna().all()
    assert frame["new_connection"].all()


NO_EP = dict(nodes=2, service_time=exponential(1e-3), duration=1.0, seed=205,
             clients=[client(rate=500.0, rtt=constant(3e-4))])


def test_zero_replicas_fail_every_request_with_no_endpoints_engine_level():
    """The engine and request frame alone (what npsim.run builds on) get it right."""
    from npsim.results.frames import request_frame
    from npsim.sim.engine import Simulation

    out = Simulation(build(replicas=0, **NO_EP)).run()
    _check_no_endpoints(request_frame(out), 3e-4)


def test_zero_replicas_fail_every_request_with_no_endpoints():
    result = npsim.run(build(replicas=0, **NO_EP))
    _check_no_endpoints(result.requests, 3e-4)
    assert result.pods.empty
    s = result.summary.query("scope == 'all'").set_index("metric")["value"]
    assert s["requests_completed"] == 0
    assert s["failed_no_endpoints"] == s["requests_failed"]


def test_selector_matching_no_pod_fails_every_request_with_no_endpoints():
    data = scenario_dict(replicas=2, **NO_EP)
    data["manifests"][0]["spec"]["selector"] = {"app": "typo"}
    result = npsim.run(npsim.scenario_from_dict(data))
    frame = result.requests
    _check_no_endpoints(frame, 3e-4)
    assert (result.pods["requests"] == 0).all() and (result.pods["utilisation"] == 0).all()
    s = result.summary.query("scope == 'all'").set_index("metric")["value"]
    assert s["requests_completed"] == 0
    assert s["failed_no_endpoints"] == s["requests_failed"] == (frame["outcome"] == "failed").sum()
    assert np.isnan(s["latency_mean"])


def test_no_endpoints_closed_loop_keeps_retrying():
    """A refused closed-loop user thinks and tries again: the budget is spent on
    failures, one every think time per user, and the run ends."""
    data = scenario_dict(nodes=1, replicas=1, service_time=exponential(1e-3),
                         clients=[client(users=3, think=constant(1e-3), rtt=ZERO)],
                         requests=300, seed=206)
    data["manifests"][0]["spec"]["selector"] = {"app": "typo"}
    result = npsim.run(npsim.scenario_from_dict(data))
    frame = result.requests
    assert len(frame) == 300
    assert (frame["reason"] == "no_endpoints").all()
    assert frame.groupby("client_ip", observed=True).size().tolist() == [100, 100, 100]
    # each user sends at 1, 2, ..., 100 ms; its wake-up at 101 ms finds the budget spent;
    # a request-count run ends when the client sees the last answer
    assert frame["t_start"].max() == pytest.approx(100 * 1e-3)
    assert result.end_time == pytest.approx(frame["t_end"].max())


def test_request_budget_run_ends_when_the_arrivals_stop_short_of_it() -> None:
    """A rate schedule that falls to zero before the budget is spent: the run ends at
    the last answer, with progress reports, instead of waiting for requests that never
    come."""
    seen: list[float] = []
    scn = build(clients=[client(schedule=[(0.0, 10.0), (1.0, 0.0)])], requests=1000)
    result = npsim.run(scn, progress=seen.append)
    assert 0 < len(result.requests) < 1000
    assert result.end_time == pytest.approx(result.requests["t_end"].max())
    assert seen and seen[-1] == 1.0
    assert (result.requests["outcome"] == "completed").all()


def test_progress_does_not_change_a_request_budget_run() -> None:
    scn = build(clients=[client(rate=200.0)], requests=2000)
    quiet = npsim.run(scn)
    reported = npsim.run(scn, progress=lambda _fraction: None)
    assert quiet.end_time == reported.end_time
    pd.testing.assert_frame_equal(quiet.requests, reported.requests)
