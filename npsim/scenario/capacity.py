"""Offered load per pod, from the scenario alone (before anything runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from npsim.scenario.objects import SelectorIndex

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario


def offered_utilisation(scenario: Scenario) -> dict[str, float]:
    """Per Deployment: peak open-loop request rate x mean service time / workers, per pod.

    Assumes the even spread kube-proxy's random choice gives on average; closed-loop
    populations are self-limiting and are left out.
    """
    spec = scenario.spec
    rate_per_pod: dict[str, float] = {name: 0.0 for name in scenario.deployments}
    index = SelectorIndex(scenario.deployments.values())
    for client in spec.clients:
        if client.arrival.closed:
            continue
        svc = scenario.services.get(client.service)
        if svc is None:
            continue
        backing = [d for d in index.selected(svc.selector) if d.replicas > 0]
        pods = sum(d.replicas for d in backing)
        if not pods:
            continue
        peak = max(rate for _, rate in client.arrival.steps())
        for dep in backing:
            rate_per_pod[dep.name] += peak / pods
    out: dict[str, float] = {}
    for name, rate in rate_per_pod.items():
        workload = spec.workloads.get(name)
        if workload is not None and rate > 0:
            out[name] = rate * workload.service_time.mean / workload.workers
    return out
