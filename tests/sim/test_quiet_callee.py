"""Callees served at each call's arrival (npsim/sim/quiet_callee.py).

A leaf callee nothing can disturb gives each call its start and end when it arrives
and resumes the caller at the answer's time, or leaves a call whose deadline comes
first to its timeout; the numbers must be those the event-driven pod gives (the
build's decision is forced off to compare). A callee a fault, a queue limit, a client
that waits for ends or connection counting touches stays event-driven.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from conftest import deployment_manifest, exponential, scenario_dict, service_manifest

import npsim
import npsim.sim.build
from npsim.sim.engine import Simulation
from npsim.sim.pods import PodServer
from npsim.sim.quiet_callee import QuietCallee

BACKEND = {"app": "backend"}
CACHE = {"app": "cache"}


def _cluster_ip(name: str, labels: dict[str, str], port: int) -> dict[str, Any]:
    svc = service_manifest(name, labels)
    svc["spec"]["type"] = "ClusterIP"
    del svc["spec"]["ports"][0]["nodePort"]
    svc["spec"]["ports"][0]["port"] = port
    return svc


def shop(*, duration: float = 3.0, hops: bool = True, **backend: Any) -> dict[str, Any]:
    """web (2 pods, 4 blocking workers) calls backend twice, then backend and cache in
    parallel (cache with probability 0.5); backend 3 pods of 2 workers, cache 1 pod
    with 1 worker; 3 nodes, random hops between nodes when ``hops``."""
    net = {"sameNode": {"dist": "constant", "value": 0},
           "sameZone": exponential(2e-4), "crossZone": exponential(5e-4)}
    d = scenario_dict(nodes=3, replicas=2, workers=4, service_time=exponential(1e-3),
                      duration=duration, warmup=0.0, network=net if hops else None,
                      clients=[{"name": "load", "service": "web", "entry": "random",
                                "arrival": {"rate": "900/s"},
                                "rtt": exponential(1e-3)}])
    d["manifests"] += [_cluster_ip("backend", BACKEND, 9000),
                       deployment_manifest("backend", 3, BACKEND),
                       _cluster_ip("cache", CACHE, 6379), deployment_manifest("cache", 1, CACHE)]
    d["workloads"]["backend"] = {"workers": 2, "serviceTime": exponential(1e-3),
                                 "placement": "spread", **backend}
    d["workloads"]["cache"] = {"workers": 1, "serviceTime": exponential(2e-4)}
    d["workloads"]["web"]["calls"] = [
        {"service": "backend", "port": 9000, "count": 2},
        {"parallel": [{"service": "backend", "port": 9000},
                      {"service": "cache", "port": 6379, "probability": 0.5}]}]
    return d


def kinds(d: dict[str, Any]) -> dict[str, set[str]]:
    """Per pod name prefix (Deployment): the server classes its pods got."""
    sim = Simulation(npsim.scenario_from_dict(d), 0)
    out: dict[str, set[str]] = {}
    for pod, server in zip(sim.cluster.pods, sim.registry.servers, strict=True):
        out.setdefault(pod.deployment, set()).add(type(server).__name__)
    return out


def event_driven(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build makes no quiet callee: every callee is an event-driven PodServer."""
    monkeypatch.setattr(npsim.sim.build, "quiet_callees", lambda *a, **k: set())


@pytest.mark.parametrize(("hops", "call"), [
    (True, {}), (False, {}),
    (True, {"timeout": "2ms"}),
    (True, {"timeout": "2ms", "retries": {"attempts": 2, "retryOn": ["request_timeout"]}}),
    (False, {"timeout": "2ms", "onFailure": "continue"}),
], ids=["random-hops", "zero-network", "timeouts", "timeouts-retried",
        "zero-network-timeouts"])
def test_quiet_callees_give_the_event_driven_frames(monkeypatch, hops, call):
    """Exactly the same frames; with a 2 ms deadline a share of the calls time out
    (and are retried), decided at arrival by the quiet callee, by the timeout's event
    at the event-driven one."""
    d = shop(hops=hops)
    for step in d["workloads"]["web"]["calls"]:
        for c in step.get("parallel", [step]):
            c.update(call)
    assert kinds(d) == {"web": {"CallingPodServer"}, "backend": {"QuietCallee"},
                        "cache": {"QuietCallee"}}
    quiet = npsim.run(npsim.scenario_from_dict(d))
    with monkeypatch.context() as m:
        event_driven(m)
        assert kinds(d)["backend"] == {"PodServer"}
        evented = npsim.run(npsim.scenario_from_dict(d))
    calls = quiet.requests[quiet.requests["population"] != "load"]
    assert len(calls) > 2000 and (calls["queue_wait"] > 0).mean() > 0.01  # some queued
    timed_out = (calls["reason"] == "request_timeout").mean()
    assert (0.01 < timed_out < 0.5) if call else timed_out == 0
    for name in ("requests", "calls", "pods", "summary"):
        pd.testing.assert_frame_equal(getattr(quiet, name), getattr(evented, name),
                                      check_exact=True, obj=name)


def test_a_callee_a_fault_touches_stays_event_driven():
    d = shop()
    d["events"] = [{"at": "1s", "until": "2s", "podHang": {"pod": "backend-1"}}]
    sim = Simulation(npsim.scenario_from_dict(d), 0)
    by_name = {p.name: s for p, s in zip(sim.cluster.pods, sim.registry.servers,
                                         strict=True)}
    assert type(by_name["backend-1"]) is PodServer
    assert isinstance(by_name["backend-0"], QuietCallee)
    assert isinstance(by_name["cache-0"], QuietCallee)
    with pytest.raises(RuntimeError, match="judged undisturbed"):
        sim.registry.disturbed(sim.cluster.pods.index(
            next(p for p in sim.cluster.pods if p.name == "backend-0")))
    # the hung pod holds its calls until the hang ends; the quiet ones answer on
    calls = npsim.run(npsim.scenario_from_dict(d)).requests
    calls = calls[calls["population"] != "load"]
    assert calls[calls["pod"] == "backend-1"]["latency"].max() > 0.5
    assert calls[calls["pod"] == "backend-0"]["latency"].max() < 0.1


def test_a_node_crash_keeps_its_callees_event_driven():
    d = shop()
    d["events"] = [{"at": "1s", "until": "2s", "nodeCrash": {"node": "node-1"}}]
    sim = Simulation(npsim.scenario_from_dict(d), 0)
    for pod, server in zip(sim.cluster.pods, sim.registry.servers, strict=True):
        if pod.deployment != "web":
            assert isinstance(server, QuietCallee) == (pod.node != 0), pod.name


@pytest.mark.parametrize("change", ["queue-limit", "waiting-client", "ipvs-lc"])
def test_what_needs_events_keeps_a_callee_event_driven(change):
    d = shop(**({"queueLimit": 5} if change == "queue-limit" else {}))
    if change == "waiting-client":  # a client of the backend with a request timeout
        d["clients"].append({"name": "direct", "service": "backend", "port": 9000,
                             "source": {"pod": "node-1"}, "target": "clusterIP",
                             "arrival": {"rate": "10/s"}, "requestTimeout": "1s"})
    elif change == "ipvs-lc":  # connections counted per real server
        d["cluster"]["proxyMode"] = "ipvs"
        d["cluster"]["ipvs"] = {"scheduler": "lc"}
        d["cluster"]["costModel"] = {"ipvs": {0: [0, 0, 0, 0]}}
    got = kinds(d)
    assert got["backend"] == {"PodServer"}
    assert got["web"] == {"CallingPodServer"}  # a caller never is one
    # the cache is untouched by the change (except where connections are counted)
    assert got["cache"] == ({"PodServer"} if change == "ipvs-lc" else {"QuietCallee"})
