"""Offered load per pod, from the scenario alone (before anything runs).

A pod's load counts the requests its Service's clients send and, in a run whose pods
call Services, the calls other pods send it (rates add along the call graph, which is
acyclic once the scenario validates). A blocking worker is held for its own work and
its calls, so its load counts at least the callees' own holding times: a frontend whose
CPU is idle but whose thread pool waits on a slow backend is as saturated as a busy one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from npsim.scenario.calls_spec import ParallelSpec, leaves, mean_count
from npsim.scenario.objects import SelectorIndex

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario


def offered_utilisation(scenario: Scenario) -> dict[str, float]:
    """Per Deployment: peak open-loop request rate x mean holding time / workers, per pod.

    Assumes the even spread kube-proxy's random choice gives on average; closed-loop
    populations are self-limiting and are left out. The holding time of a blocking
    caller is a lower bound (no queueing, no network at its callees).
    """
    spec = scenario.spec
    index = SelectorIndex(scenario.deployments.values())
    backing = {name: [d for d in index.selected(svc.selector) if d.replicas > 0]
               for name, svc in scenario.services.items()}
    into: dict[str, float] = {}
    for client in spec.clients:
        if client.arrival.closed or client.service not in backing:
            continue
        peak = max(rate for _, rate in client.arrival.steps())
        into[client.service] = into.get(client.service, 0.0) + peak
    rate_per_pod: dict[str, float] = {name: 0.0 for name in scenario.deployments}
    for service in _call_order(spec.workloads, backing):
        pods = sum(d.replicas for d in backing[service])
        rate = into.get(service, 0.0)
        if not pods or rate <= 0:
            continue
        for dep in backing[service]:
            rate_per_pod[dep.name] += rate / pods
            workload = spec.workloads.get(dep.name)
            for _, call in leaves(workload.calls) if workload is not None else []:
                if call.service in backing:
                    share = rate * dep.replicas / pods
                    into[call.service] = (into.get(call.service, 0.0)
                                          + share * call.probability * mean_count(call))
    holding = _HoldingTimes(spec.workloads, backing)
    out: dict[str, float] = {}
    for name, rate in rate_per_pod.items():
        workload = spec.workloads.get(name)
        if workload is not None and rate > 0:
            out[name] = rate * holding.of(name) / workload.workers
    return out


def _call_order(workloads: dict[str, Any], backing: dict[str, list[Any]]) -> list[str]:
    """Services in call order: a Service before every Service its pods call."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(service: str) -> None:
        seen.add(service)
        for dep in backing[service]:
            workload = workloads.get(dep.name)
            for _, call in leaves(workload.calls) if workload is not None else []:
                if call.service in backing and call.service not in seen:
                    visit(call.service)
        order.append(service)

    for service in backing:
        if service not in seen:
            visit(service)
    return order[::-1]


class _HoldingTimes:
    """Mean time a worker is held per request: its own work and, when it blocks, its
    calls (each at least its callee's own holding time, at most its timeout)."""

    def __init__(self, workloads: dict[str, Any], backing: dict[str, list[Any]]) -> None:
        self._workloads = workloads
        self._backing = backing
        self._known: dict[str, float] = {}

    def of(self, name: str) -> float:
        if name not in self._known:
            workload = self._workloads[name]
            held = workload.service_time.mean
            if workload.blocking:
                for step in workload.calls:
                    if isinstance(step, ParallelSpec):  # a branch's calls go at once
                        held += max(self._call(call, at_once=True) for call in step.parallel)
                    else:
                        held += self._call(step, at_once=False)
            self._known[name] = held
        return self._known[name]

    def _call(self, call: Any, at_once: bool) -> float:
        if call.external is not None:
            ext = call.external
            one = ext.latency.mean + (ext.service_time.mean if ext.service_time else 0.0)
        else:
            deps = [d for d in self._backing.get(call.service, [])
                    if d.name in self._workloads]
            pods = sum(d.replicas for d in deps)
            one = sum(self.of(d.name) * d.replicas for d in deps) / pods if pods else 0.0
        if call.timeout is not None:
            one = min(one, call.timeout)
        count = mean_count(call)
        return call.probability * (min(count, 1.0) if at_once else count) * one
