"""Pods that call Services against queueing theory: an open network of three Services.

The README's "Pods that call Services" promises that a call queues at its callee pod as
any request does and that routing by ``probability`` splits the traffic; an open
Jackson network (Jackson 1957), here with routes chosen per request (Kelly 1975), has
a product-form answer for every Service's mean sojourn, so the whole call path can be
checked against it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from conftest import client, deployment_manifest, exponential, scenario_dict, service_manifest

import npsim
from npsim.results.student import t975

LAM = 500.0  # client requests per second into the entry Service (web)
MU = {"web": 1000.0, "b": 600.0, "c": 800.0}  # one pod, one worker: service rate each
P, Q, R = 0.6, 0.5, 0.5  # web calls b with P, then c with Q; b calls c with R
PORTS = {"b": 9000, "c": 9100}


def network(*, duration: float, replications: int, seed: int) -> dict[str, Any]:
    d = scenario_dict(workers=1, service_time=exponential(1 / MU["web"]),
                      clients=[client(rate=LAM)], duration=duration, warmup=1.0,
                      seed=seed, replications=replications)
    for name, port in PORTS.items():
        svc = service_manifest(name, {"app": name})
        svc["spec"]["type"] = "ClusterIP"
        del svc["spec"]["ports"][0]["nodePort"]
        svc["spec"]["ports"][0]["port"] = port
        d["manifests"] += [svc, deployment_manifest(name, 1, {"app": name})]
        d["workloads"][name] = {"workers": 1, "serviceTime": exponential(1 / MU[name]),
                                "placement": "spread", "blocking": False}
    d["workloads"]["web"]["blocking"] = False
    d["workloads"]["web"]["calls"] = [
        {"service": "b", "port": PORTS["b"], "probability": P},
        {"service": "c", "port": PORTS["c"], "probability": Q}]
    d["workloads"]["b"]["calls"] = [{"service": "c", "port": PORTS["c"], "probability": R}]
    return d


def within_ci(values: np.ndarray, theory: float, what: str) -> None:
    """Theory inside the 95% t-interval over replications (npsim's own t table), with
    1% of slack for the warm-up's leftover bias; the interval must be narrow (5%)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    half = t975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    detail = f"{what}: simulated {mean:.6g} +- {half:.3g} ({len(x)} reps), theory {theory:.6g}"
    assert half <= 0.05 * theory, f"interval too wide to test anything. {detail}"
    assert abs(mean - theory) <= half + 0.01 * theory, detail


@pytest.mark.slow
def test_three_service_network_matches_its_product_form_means():
    """web (entry, 500/s) calls b with p = 0.6 and then c with q = 0.5; b calls c with
    r = 0.5. Every Service is one pod with one worker and exponential service; the
    network costs nothing (one node, zero hops and kube-proxy cost).

    Traffic equations: lambda_web = 500, lambda_b = p lambda = 300, lambda_c = (q + p r)
    lambda = 400 per second. Each Service's mean sojourn (queue + own work) is
    W_i = 1 / (mu_i - lambda_i): 2, 3.33 and 2.5 ms; the end-to-end mean is the sum of
    visit ratios times W_i: W_web + p W_b + (q + p r) W_c = 6 ms.

    Why ``blocking: false``: product form needs each station's service to be its own
    exponential work. A blocking worker is held for its own work plus its calls, so web
    and b would be M/G/1 stations whose holding time includes the callees' sojourns (no
    product form). Non-blocking callers free the worker when their own work ends and
    wait for the answers as an event-loop server does; the request then moves on to its
    callees in order (b, and c under it, then c), a route drawn per request whatever
    the queues hold, so this is a Kelly network of FCFS exponential stations with one
    rate per station, and each station is M/M/1 at its total arrival rate in the mean.
    Call steps run one after the other: a ``parallel:`` fork-join would break the
    product form of the end-to-end figure."""
    reps, duration = 10, 20.0
    result = npsim.run(npsim.scenario_from_dict(network(duration=duration,
                                                        replications=reps, seed=11)))
    req = result.requests
    measured = req[~req["warmup"]]
    done = measured[measured["outcome"] == "completed"]
    assert (measured["outcome"] != "failed").all()
    lam = {"web": LAM, "b": P * LAM, "c": (Q + P * R) * LAM}
    w = {s: 1.0 / (MU[s] - lam[s]) for s in MU}
    service_of = done["pod"].astype(str).str.rsplit("-", n=1).str[0]
    sojourn = done["queue_wait"] + done["service"]
    window = duration - 1.0
    for s in MU:
        mine = service_of == s
        within_ci(sojourn[mine].groupby(done["replication"][mine]).mean().to_numpy(),
                  w[s], f"W at {s}")
        arrived = (measured["pod"].astype(str).str.rsplit("-", n=1).str[0] == s)
        rate = measured[arrived].groupby("replication").size().to_numpy() / window
        within_ci(rate, lam[s], f"arrival rate at {s}")
    entry = done[done["population"] == "load"]
    within_ci(entry.groupby("replication")["latency"].mean().to_numpy(),
              w["web"] + P * w["b"] + (Q + P * R) * w["c"], "end to end")
    # a call's latency is its callee's sojourn plus the callee's own calls: b answers
    # web after its call to c (taken with probability r)
    via_b = done[done["population"] == "web>b:9000"]
    within_ci(via_b.groupby("replication")["latency"].mean().to_numpy(),
              w["b"] + R * w["c"], "web -> b call latency")


def test_blocking_caller_holds_its_workers_for_its_calls():
    """The pods frame of a multi-tier run: ``utilisation`` is the share of worker time
    held (own work plus waiting for calls, for a blocking caller), ``cpu_utilisation``
    the own work's. By Little's law, busy workers = arrival rate x holding time: a web
    pod with 4 workers at 300/s, 1 ms of own work and a 5 ms call holds about
    300 x 6 ms / 4 = 45% of its workers while using 7.5% on its own work."""
    from test_calls import two_tier

    d = two_tier(rate=300.0, fe_workers=4, fe_service=1e-3, be_service=5e-3,
                 call={"count": 1}, duration=6.0, warmup=1.0)
    d["workloads"]["backend"]["workers"] = 64  # no queue at the callee: a slow call only
    result = npsim.run(npsim.scenario_from_dict(d))
    req = result.requests
    done = req[~req["warmup"] & (req["outcome"] == "completed")]
    arrived = (~req["warmup"] & (req["population"] == "load")).sum() / 5.0
    own = done.loc[done["population"] == "load", "service"].mean()
    call = done.loc[done["population"] == "web>backend:9000", "latency"].mean()
    pods = result.pods.set_index("pod")
    web, backend = pods.loc["web-0"], pods.loc["backend-0"]
    assert web["cpu_utilisation"] == pytest.approx(arrived * own / 4, rel=0.05)
    assert web["utilisation"] == pytest.approx(arrived * (own + call) / 4, rel=0.05)
    assert web["utilisation"] == pytest.approx(300 * 6e-3 / 4, rel=0.1)
    assert backend["utilisation"] == backend["cpu_utilisation"]  # it calls nothing
    # the summary's pod figures read the held share: the thread pool's saturation
    assert result.metric("pod_utilisation_max") == pytest.approx(web["utilisation"])
    d["workloads"]["web"]["blocking"] = False  # an async server: held = own work
    pods = npsim.run(npsim.scenario_from_dict(d)).pods.set_index("pod")
    assert pods.loc["web-0", "utilisation"] == pods.loc["web-0", "cpu_utilisation"]
    assert pods.loc["web-0", "utilisation"] == pytest.approx(arrived * own / 4, rel=0.05)
