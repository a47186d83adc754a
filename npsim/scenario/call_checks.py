"""Cross-checks of the workloads' ``calls:``: each call aims at a Service port that
exists, the call graph has no cycle (a request would never end), and a warning for
calls that no request can set off."""

from __future__ import annotations

from typing import Any

from npsim.scenario.calls_spec import call_path, find_cycle, leaves, mean_count
from npsim.scenario.objects import SelectorIndex, pick_port, selector_matches
from npsim.scenario.problems import Problems


def backing_workloads(s: Any, service: str) -> list[str]:
    """The workloads whose pods a Service selects (Deployments, and hand-placed pods
    with their ``labels``), or, for a selector-less Service, whose hand-placed pods its
    EndpointSlices list."""
    svc = s.scenario.services.get(service)
    if svc is None:
        return []
    names = [d.name for d in SelectorIndex(s.scenario.deployments.values()).selected(
        svc.selector)]
    listed = {e.address for sl in svc.endpoint_slices for e in sl.endpoints}
    for name, workload in s.workloads.items():
        if workload is None or workload.pods is None or name in names:
            continue
        if ((workload.labels and selector_matches(svc.selector, workload.labels))
                or any(pod.ip in listed for pod in workload.pods)):
            names.append(name)
    return names


def check_calls(s: Any, p: Problems) -> None:
    """Every call names a Service and port of the manifests; the workloads' call graph
    (caller -> the workloads behind the called Service) has no cycle."""
    edges: dict[str, list[str]] = {}
    externals: dict[str, Any] = {}  # an external dependency's name -> its settings
    for name, workload in s.workloads.items():
        if workload is None or not workload.calls:
            continue
        for place, call in leaves(workload.calls):
            loc = call_path(name, place)
            if call.external is not None:
                _check_external(s, p, call, loc, externals)
                continue
            svc = s.scenario.services.get(call.service)
            if svc is None:
                if call.service not in s.unresolved:
                    known = ", ".join(sorted(s.scenario.services)) or "none"
                    p.at(s.tree, [*loc, "service"], f"no Service named {call.service!r} "
                         f"among the manifests (known: {known})")
                continue
            if pick_port(svc, call.port) is None:
                ports = ", ".join(repr(x.name or x.port) for x in svc.ports)
                p.at(s.tree, [*loc, "port"],
                     f"Service {svc.name!r} has no port {call.port!r} (ports: {ports})")
                continue
            _check_target(s, p, svc, call, loc)
            for callee in backing_workloads(s, call.service):
                if callee not in edges.setdefault(name, []):
                    edges[name].append(callee)
    cycle = find_cycle(edges)
    if cycle is not None:
        p.at(s.tree, ["workloads", cycle[0], "calls"],
             "the call graph has a cycle (a request would call itself without end): "
             + " -> ".join(cycle))


def warn_calls_never_made(s: Any, p: Problems) -> None:
    """A workload whose pods no request reaches makes its ``calls:`` never (a load
    generator's, as ``npsim import`` proposes them from its env): a warning at them,
    since the run is silent about calls it never makes. Only for a scenario without
    errors and with clients (a run of calls alone has none to follow)."""
    callers = [name for name, w in s.workloads.items() if w is not None and w.calls]
    if p.errors or not s.clients or not callers:
        return
    reached: set[str] = set()
    todo = list(dict.fromkeys(client.service for _, client in s.clients))
    seen = set(todo)  # each Service followed once
    while todo:
        for name in backing_workloads(s, todo.pop()):
            workload = s.workloads.get(name)
            if name in reached or workload is None:
                continue
            reached.add(name)
            for _, call in leaves(workload.calls or []):
                if call.external is None and call.service not in seen:
                    seen.add(call.service)
                    todo.append(call.service)
    for name in callers:
        if name in reached:
            continue
        selecting = [svc for svc in s.scenario.services if name in backing_workloads(s, svc)]
        why = (f"no client population or call reaches {', '.join(selecting)}, the "
               f"Service{'s' if len(selecting) > 1 else ''} of its pods" if selecting
               else "no Service selects its pods (a load generator is a clients: "
               "population)")
        p.warn(s.tree, ["workloads", name, "calls"], f"these calls are never made: {why}")


def _check_target(s: Any, p: Problems, svc: Any, call: Any, loc: list[Any]) -> None:
    """The address a call is sent to exists: a NodePort (NodePort and LoadBalancer
    Services have one), an externalIP, a LoadBalancer VIP; ``node`` is a known node."""
    if call.target == "nodePort" and svc.type == "ClusterIP":
        p.at(s.tree, [*loc, "target"],
             f"Service {svc.name!r} is type ClusterIP: it has no NodePort to call")
    elif call.target == "externalIP" and not svc.external_ips:
        p.at(s.tree, [*loc, "target"],
             f"Service {svc.name!r} has no spec.externalIPs to call")
    elif call.target == "loadBalancerIP" and not svc.load_balancer_ips:
        p.at(s.tree, [*loc, "target"],
             f"Service {svc.name!r} has no LoadBalancer ingress IP that kube-proxy "
             "short-circuits (status.loadBalancer.ingress[].ip with ipMode VIP, on a type "
             "LoadBalancer Service); an ipMode Proxy balancer is reached through its "
             "NodePorts: call 'target: nodePort'")
    nodes = s.nodes
    if call.node is not None and nodes is not None and call.node not in nodes:
        p.at(s.tree, [*loc, "node"],
             f"unknown node {call.node!r} (nodes: {', '.join(sorted(nodes))})")


def _check_external(s: Any, p: Problems, call: Any, loc: list[Any],
                    seen: dict[str, Any]) -> None:
    """Calls that name the same external dependency share it (its concurrency slots),
    so they must describe it alike; its name must not be a Service's."""
    ext = call.external
    label = ext.label
    if label in s.scenario.services:
        p.at(s.tree, [*loc, "external"],
             f"external dependency {label!r} has the name of a Service of the manifests; "
             "give it another 'name'")
    first = seen.setdefault(label, ext)
    if first is not ext and first.model_dump() != ext.model_dump():
        p.at(s.tree, [*loc, "external"],
             f"external dependency {label!r} is described differently by another call; "
             "calls to one dependency share it and must give the same latency, "
             "serviceTime, failureProbability and concurrency")


def rows_per_request(scenario: Any, service: str, seen: frozenset[str] = frozenset()) -> float:
    """Expected request-log rows of one request to ``service``: itself and the calls its
    pods make, at every depth (preflight sizes a run with it). Averaged over the
    workloads behind the Service; 1 when none of them calls."""
    index = SelectorIndex(scenario.deployments.values())
    svc = scenario.services.get(service)
    names = [d.name for d in index.selected(svc.selector)] if svc is not None else []
    workloads = [(n, scenario.spec.workloads.get(n)) for n in names]
    workloads = [(n, w) for n, w in workloads if w is not None and n not in seen]
    if not workloads:
        return 1.0
    below = 0.0
    for name, workload in workloads:
        for _, call in leaves(workload.calls):
            below += call.probability * mean_count(call) * rows_per_request(
                scenario, call.service, seen | {name})
    return 1.0 + below / len(workloads)
