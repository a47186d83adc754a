"""The offered-load warning counts the calls (npsim/scenario/capacity.py).

A Service that only other pods call gets their calls' rate, and a blocking caller's
workers are held for its own work plus its calls: both saturate before anything runs
as surely as a client's own requests do.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import client, deployment_manifest, exponential, scenario_dict, service_manifest

import npsim
from npsim.scenario.capacity import offered_utilisation

BACKEND = {"app": "backend"}


def two_tier(*, rate: float = 100.0, fe_workers: int = 8, be_service: float = 4e-3,
             call: dict[str, Any] | None = None, steps: list[Any] | None = None,
             blocking: bool = True) -> npsim.Scenario:
    """web (1 ms own work, 1 pod) calls backend (1 pod, 1 worker) twice per request."""
    d = scenario_dict(nodes=1, replicas=1, workers=fe_workers, service_time=exponential(1e-3),
                      clients=[client(rate=rate)], duration=1.0, warmup=0.0)
    svc = service_manifest("backend", BACKEND)
    svc["spec"]["type"] = "ClusterIP"
    del svc["spec"]["ports"][0]["nodePort"]
    svc["spec"]["ports"][0]["port"] = 9000
    d["manifests"] += [svc, deployment_manifest("backend", 1, BACKEND)]
    d["workloads"]["backend"] = {"workers": 1, "serviceTime": exponential(be_service)}
    d["workloads"]["web"]["calls"] = steps or [
        {"service": "backend", "port": 9000, "count": 2, **(call or {})}]
    d["workloads"]["web"]["blocking"] = blocking
    return npsim.scenario_from_dict(d)


def test_a_service_only_pods_call_gets_their_calls_rate():
    load = offered_utilisation(two_tier(rate=150.0))
    assert load["backend"] == pytest.approx(150 * 2 * 4e-3)  # 1.2: no client names it
    warned = [w for w in two_tier(rate=150.0).warnings if w.path == "workloads.backend"]
    assert warned and "offered load is 1.20 per pod" in warned[0].message


def test_a_blocking_callers_workers_are_held_for_its_calls():
    # 1 ms own work + 2 calls of at least 4 ms: 9 ms held per request, 1 worker, 100/s
    assert offered_utilisation(two_tier(fe_workers=1))["web"] == pytest.approx(0.9)
    assert offered_utilisation(two_tier(fe_workers=1, rate=120.0))["web"] >= 1
    # an async caller is held for its own work only
    assert offered_utilisation(two_tier(fe_workers=1, blocking=False))["web"] == (
        pytest.approx(0.1))


def test_a_calls_timeout_and_probability_bound_what_it_holds():
    capped = two_tier(fe_workers=1, call={"timeout": "2ms"})
    assert offered_utilisation(capped)["web"] == pytest.approx(100 * (1e-3 + 2 * 2e-3))
    sometimes = two_tier(fe_workers=1, call={"probability": 0.25})
    assert offered_utilisation(sometimes)["web"] == pytest.approx(100 * (1e-3 + 0.5 * 4e-3))
    assert offered_utilisation(sometimes)["backend"] == pytest.approx(100 * 0.5 * 4e-3)


def test_a_parallel_branch_holds_the_worker_for_its_slowest_call():
    steps = [{"parallel": [{"service": "backend", "port": 9000, "count": 3},
                           {"service": "backend", "port": 9000}]}]
    scenario = two_tier(fe_workers=1, steps=steps)
    # the branch's three calls go at once: held 1 ms + 4 ms, not 1 + 12
    assert offered_utilisation(scenario)["web"] == pytest.approx(100 * 5e-3)
    assert offered_utilisation(scenario)["backend"] == pytest.approx(100 * 4 * 4e-3)
