"""The simulator against closed-form queueing results (M/M/1, M/M/c with Erlang C, M/D/1).

Zero-cost network (single node, rtt 0, same-node hop 0), Poisson arrivals, FIFO pods:
a pod with c workers is an M/G/c queue, and the request latency is its sojourn time.
Each check runs >= 10 independent replications and asks that theory lie inside the
95% t-interval of the per-replication means (widened by a small relative tolerance),
*and* that the interval be narrow (so a broken model cannot hide behind noise).
Time unit: mean service 1 ms, so mu = 1000/s and values in units of 1/mu are in ms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import (
    assert_matches_theory,
    client,
    constant,
    exponential,
    per_replication_mean,
    simulate,
    t_interval,
)

pytestmark = pytest.mark.slow  # long runs to hold the theory within tight bounds

MU = 1000.0  # per worker, 1/s (mean service 1 ms)
REPS = 12
WARMUP = 1.0  # s; the M/M/1 relaxation time at rho 0.8 is ~ 1/(mu (1 - sqrt rho)^2) = 90 ms


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load a = lambda/mu, via the stable
    Erlang-B recursion B_k = a B_{k-1} / (k + a B_{k-1}), C = c B / (c - a (1 - B))."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1.0 - b))


def mmc_sojourn(c: int, rho: float, mu: float = 1.0) -> tuple[float, float]:
    """(W, Wq) of M/M/c at per-server utilisation rho."""
    lam = rho * c * mu
    wq = erlang_c(c, lam / mu) / (c * mu - lam)
    return wq + 1.0 / mu, wq


@pytest.mark.parametrize(
    ("c", "rho", "p_wait", "w"),
    [(4, 0.8, 0.5964, 1.7455), (2, 0.7, 0.5765, 1.9608), (8, 0.9, 0.7015, 1.8769),
     (16, 0.7, 0.1297, 1.0270), (1, 0.8, 0.8, 5.0)],
)
def test_erlang_c_helper_matches_golden_values(c, rho, p_wait, w):
    assert erlang_c(c, rho * c) == pytest.approx(p_wait, abs=1e-4)
    assert mmc_sojourn(c, rho)[0] == pytest.approx(w, abs=1e-4)


def _run(*, rate: float, service: dict, workers: int = 1, duration: float, seed: int):
    return simulate(
        nodes=1, replicas=1, workers=workers, service_time=service,
        clients=[client(rate=rate, entry={"node": "node-1"})],
        duration=duration, warmup=WARMUP, seed=seed, replications=REPS,
    )


def _check_zero_network(frame):
    """The setup really is a bare queue: no network, no proxy cost, no hop."""
    assert (frame["network"] == 0).all()
    assert (frame["proxy"] == 0).all()
    assert not frame["cross_node"].any()
    assert (frame["outcome"] != "failed").all()


# --- M/M/1 ------------------------------------------------------------------------------

MM1_RUNS = {0.7: (21.0, 11), 0.8: (41.0, 12)}  # rho -> (duration s, seed)


@pytest.fixture(scope="module", params=sorted(MM1_RUNS), ids=lambda r: f"rho={r}")
def mm1(request):
    rho = request.param
    duration, seed = MM1_RUNS[rho]
    result = _run(rate=rho * MU, service=exponential(1 / MU), duration=duration, seed=seed)
    return rho, result.requests, result


def test_mm1_mean_sojourn(mm1):
    rho, frame, _ = mm1
    _check_zero_network(frame)
    lam = rho * MU
    w = 1.0 / (MU - lam)  # reference golden values: 3.333 (rho .7), 5.000 (rho .8) x 1/mu
    assert_matches_theory(per_replication_mean(frame, "latency"), w, what=f"M/M/1 W rho={rho}")


def test_mm1_mean_queue_wait(mm1):
    rho, frame, _ = mm1
    lam = rho * MU
    wq = rho / (MU - lam)
    assert_matches_theory(per_replication_mean(frame, "queue_wait"), wq, rel_tol=0.04,
                          max_rel_half=0.07, what=f"M/M/1 Wq rho={rho}")


def test_mm1_probability_of_waiting_is_rho(mm1):
    """PASTA: an arrival finds the server busy with probability rho."""
    rho, frame, _ = mm1
    done = frame[~frame["warmup"] & (frame["outcome"] == "completed")]
    waited = (done["queue_wait"] > 0).groupby(done["replication"]).mean().to_numpy()
    assert_matches_theory(waited, rho, rel_tol=0.02, max_rel_half=0.03,
                          what=f"M/M/1 P(wait) rho={rho}")


def test_mm1_sojourn_is_exponential(mm1):
    """The sojourn time of M/M/1 is Exp(mu - lambda): check the p50 and p90 quantiles."""
    rho, frame, _ = mm1
    rate = MU - rho * MU
    done = frame[~frame["warmup"] & (frame["outcome"] == "completed")]
    for p in (0.5, 0.9):
        q = done.groupby("replication")["latency"].quantile(p).to_numpy()
        assert_matches_theory(q, -math.log(1 - p) / rate, rel_tol=0.04, max_rel_half=0.08,
                              what=f"M/M/1 T_p{int(p * 100)} rho={rho}")


def test_mm1_summary_agrees_with_frames(mm1):
    """The summary's latency_mean, queue_wait_mean and throughput are the per-replication
    t-intervals of the request frame."""
    _rho, frame, result = mm1
    summary = result.summary.query("scope == 'all'").set_index("metric")
    for metric, column in (("latency_mean", "latency"), ("queue_wait_mean", "queue_wait")):
        mean, half = t_interval(per_replication_mean(frame, column))
        row = summary.loc[metric]
        assert row["value"] == pytest.approx(mean, rel=1e-12), metric
        assert row["ci_high"] - row["value"] == pytest.approx(half, rel=1e-9), metric
        assert row["value"] - row["ci_low"] == pytest.approx(half, rel=1e-9), metric
    done = frame[~frame["warmup"] & (frame["outcome"] == "completed")]
    window = result.end_time - WARMUP
    throughput = done.groupby("replication").size().to_numpy() / window
    assert summary.loc["throughput", "value"] == pytest.approx(throughput.mean(), rel=1e-12)
    assert summary.loc["replications", "value"] == REPS


# --- M/M/c (Erlang C) -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mm4():
    c, rho = 4, 0.8
    result = _run(rate=rho * c * MU, service=exponential(1 / MU), workers=c, duration=16.0,
                  seed=3)
    return c, rho, result.requests


def test_mmc_mean_sojourn_erlang_c(mm4):
    c, rho, frame = mm4
    _check_zero_network(frame)
    w, _wq = mmc_sojourn(c, rho, MU)
    assert w == pytest.approx(1.7455e-3, rel=1e-4)  # golden value (units of 1/mu)
    assert_matches_theory(per_replication_mean(frame, "latency"), w, what="M/M/4 W rho=0.8")


def test_mmc_queue_wait_and_probability_of_waiting(mm4):
    c, rho, frame = mm4
    _w, wq = mmc_sojourn(c, rho, MU)
    assert_matches_theory(per_replication_mean(frame, "queue_wait"), wq, rel_tol=0.04,
                          max_rel_half=0.07, what="M/M/4 Wq rho=0.8")
    done = frame[~frame["warmup"] & (frame["outcome"] == "completed")]
    waited = (done["queue_wait"] > 0).groupby(done["replication"]).mean().to_numpy()
    assert_matches_theory(waited, erlang_c(c, rho * c), rel_tol=0.02, max_rel_half=0.03,
                          what="M/M/4 C(c, a)")


# --- M/D/1 (Pollaczek-Khinchine) -----------------------------------------------------------


@pytest.fixture(scope="module")
def md1():
    rho = 0.8
    result = _run(rate=rho * MU, service=constant(1 / MU), duration=21.0, seed=31)
    return rho, result.requests


def test_md1_pollaczek_khinchine(md1):
    rho, frame = md1
    _check_zero_network(frame)
    done = frame[frame["outcome"] == "completed"]
    assert np.allclose(done["service"], 1 / MU, rtol=0, atol=1e-15)
    wq = rho / (2 * MU * (1 - rho))  # half the M/M/1 queueing delay
    assert_matches_theory(per_replication_mean(frame, "queue_wait"), wq, rel_tol=0.04,
                          max_rel_half=0.07, what="M/D/1 Wq rho=0.8")
    # golden value: M/D/1 W = 3.000 (units of 1/mu) at rho 0.8
    assert_matches_theory(per_replication_mean(frame, "latency"), 3.0e-3, what="M/D/1 W")


# --- Little's law and utilisation -----------------------------------------------------------


@pytest.fixture(scope="module")
def spread_run():
    """Random dispatch over 3 pods (2 workers each) on 2 nodes, with a real network:
    each pod is M/M/2 at lambda/3 (a Poisson split), plus network time."""
    rtt = 2e-4
    result = simulate(
        nodes=2, replicas=3, workers=2, service_time=exponential(2 / MU),
        clients=[client(rate=1050.0, entry="random", rtt=constant(rtt))],
        network={"sameNode": {"dist": "constant", "value": 0},
                 "sameZone": constant(1e-4), "crossZone": constant(1e-4)},
        duration=11.0, warmup=WARMUP, seed=41, replications=REPS,
    )
    return result, rtt


def _time_average_in_system(frame, warmup: float, end: float) -> float:
    """Time-weighted mean number of requests in the system (client's view) on [warmup, end]."""
    t0 = frame["t_start"].to_numpy()
    t1 = np.nan_to_num(frame["t_end"].to_numpy(), nan=end)
    overlap = np.clip(np.minimum(t1, end) - np.maximum(t0, warmup), 0, None)
    return float(overlap.sum() / (end - warmup))


def test_littles_law_on_a_run(spread_run):
    result, _rtt = spread_run
    end = result.end_time
    for rep, frame in result.requests.groupby("replication"):
        measured = frame[~frame["warmup"]]
        lam = len(measured) / (end - WARMUP)
        w = measured["latency"].mean()
        big_l = _time_average_in_system(frame, WARMUP, end)
        assert big_l == pytest.approx(lam * w, rel=3e-3), f"replication {rep}"


def test_utilisation_is_lambda_es_over_c(spread_run):
    result, _rtt = spread_run
    lam, es, c, pods = 1050.0, 2 / MU, 2, 3
    rho = lam * es / (c * pods)
    util = result.pods.groupby("replication")["utilisation"].mean().to_numpy()
    assert_matches_theory(util, rho, rel_tol=0.01, max_rel_half=0.02, what="utilisation")
    assert result.metric("pod_utilisation_mean") == pytest.approx(util.mean(), rel=1e-9)
    shares = result.pods.groupby("replication")["share"].sum().to_numpy()
    assert np.allclose(shares, 1.0)


def test_random_dispatch_is_a_poisson_split(spread_run):
    """Each pod is M/M/2 at lambda/3; the client adds rtt, and the cross-node share of
    requests adds the 100 us hop: E[latency] = W_M/M/2 + rtt + P(cross) * hop."""
    result, rtt = spread_run
    rho = 1050.0 * (2 / MU) / (2 * 3)
    w, _ = mmc_sojourn(2, rho, MU / 2)
    # 2 nodes, 3 pods spread 2/1, random entry: P(cross) = 1/2 (1 - 2/3) + 1/2 (1 - 1/3) = 1/2
    expected = w + rtt + 0.5 * 1e-4
    assert_matches_theory(per_replication_mean(result.requests, "latency"), expected,
                          what="3 x M/M/2 + network")
