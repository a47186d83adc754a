"""From a sorted dump to the scenario's contents: nodes, manifests, workloads, clients.

Pods are placed where the EndpointSlices say they run, at their own addresses, with
their conditions (``workloads.NAME.pods``). A Service with a selector gets its pods from
the Deployment or StatefulSet its selector matches (or, when the dump has none, from a
workload of hand-placed pods carrying the selector's labels); a selector-less Service
keeps its hand-made slices and a workload that places the pods behind their addresses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from npsim.importer.inventory import Inventory, NodeInfo
from npsim.importer.load import CsvRow
from npsim.scenario.deployments import deployment_manifest
from npsim.scenario.objects import (
    SERVICE_NAME_LABEL,
    Deployment,
    EndpointSlice,
    SelectorIndex,
    Service,
    SliceEndpoint,
)
from npsim.scenario.problems import Problem, Problems
from npsim.scenario.services import svc_manifest

DEFAULT_RATE = 100.0  # requests/s per population when --rates gives none
DEFAULT_SERVICE_TIME = 0.010  # 10 ms mean, exponential
DEFAULT_WORKERS = 1


@dataclass
class CallLine:
    """One entry of a workload's ``calls:`` as written, with its trailing comment."""

    service: str
    port: int | str
    count: int
    note: str


@dataclass
class WorkloadPlan:
    name: str
    comment: list[str]
    pods: list[dict[str, Any]] | None  # None: spread the Deployment's replicas
    labels: dict[str, str] | None = None
    namespace: str | None = None
    service_time: float = DEFAULT_SERVICE_TIME
    workers: int = DEFAULT_WORKERS
    measured: bool = False  # service time from --service-times
    scheduled: bool = False  # a Deployment's: placement: scheduler
    calls: list[CallLine] = field(default_factory=list)  # set by --calls: written as is
    proposed: list[CallLine] = field(default_factory=list)  # read off env: commented out
    call_notes: list[str] = field(default_factory=list)  # comments above the proposals


@dataclass
class ClientPlan:
    name: str
    service: str
    rate: float
    measured: bool
    cluster_ip_from: str | None = None  # in-cluster clients on this node (ClusterIP Service)


@dataclass
class ScenarioPlan:
    nodes: list[NodeInfo]
    manifests: list[dict[str, Any]] = field(default_factory=list)
    workloads: list[WorkloadPlan] = field(default_factory=list)
    clients: list[ClientPlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # where each of ``manifests`` was read in the dump (its marked document and path
    # prefix), when the dump has it: a problem with a manifest points at the dump's line
    sources: list[tuple[Any, str] | None] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)  # as written (unique names)
    deployments: list[Deployment] = field(default_factory=list)  # and StatefulSets


def plan_scenario(inv: Inventory, rates: list[CsvRow], times: list[CsvRow],
                  p: Problems) -> ScenarioPlan:
    plan = ScenarioPlan(inv.nodes)
    node_names = {n.name for n in inv.nodes}
    services = _unique_by_name(inv.services, "Service", plan)
    workloads = _unique_by_name([w.deployment for w in inv.workloads], "workload", plan)
    kinds = {(w.deployment.namespace, w.deployment.name): w for w in inv.workloads}
    slices_of: dict[tuple[str, str], list[EndpointSlice]] = {}
    for sl in inv.slices:
        slices_of.setdefault((sl.namespace, sl.service_name), []).append(sl)
        _check_nodes(sl, node_names, p)
    taken: dict[str, str] = {}  # pod address -> workload name
    explicit: dict[str, list[dict[str, Any]]] = {}
    standalone: dict[str, WorkloadPlan] = {}
    names = {d.name for d in workloads}
    kept_slices: list[dict[str, Any]] = []
    index = SelectorIndex(workloads)
    owner_of: dict[str, str] = {}
    # selector Services first: a pod a hand-made slice also names stays with its workload
    for svc in sorted(services, key=lambda s: not s.selector):
        slices = slices_of.get((svc.namespace, svc.name), [])
        owner = None
        if svc.selector:
            owner = _selected_workload(svc, index)
            if owner is None and any(sl.endpoints for sl in slices):
                owner = _fresh(f"{svc.name}-pods", names)
                standalone[owner] = WorkloadPlan(
                    owner, [f"pods of Service {svc.namespace}/{svc.name} (no Deployment or "
                            "StatefulSet in the dump selects them): placed as its "
                            "EndpointSlices say"], [], dict(svc.selector), svc.namespace)
            if owner is not None:
                for sl in slices:
                    _take_pods(sl, owner, explicit, taken, plan)
        elif slices:
            owner = _fresh(f"{svc.name}-endpoints", names)
            kept = [_take_pods(sl, owner, explicit, taken, plan) for sl in slices]
            standalone[owner] = WorkloadPlan(
                owner, [f"backends of selector-less Service {svc.namespace}/{svc.name} "
                        "(hand-made EndpointSlices)"], [], None, svc.namespace)
            kept_slices.extend(k for k in kept if k is not None)
        if owner is not None:
            owner_of[svc.name] = owner
    for name, w in standalone.items():
        w.pods = explicit.get(name, [])
    plan.services, plan.deployments = services, workloads
    plan.manifests = [svc_manifest(s) for s in services]
    plan.sources = [(s.doc, s.prefix) if s.doc is not None else None for s in services]
    plan.manifests += [_workload_manifest(d, kinds[(d.namespace, d.name)].kind)
                       for d in workloads]
    plan.manifests += kept_slices + inv.network_policies
    for dep in workloads:
        w = kinds[(dep.namespace, dep.name)]
        pods = explicit.get(dep.name)
        comment = [f"{w.kind} {dep.namespace}/{dep.name}: replicas {dep.replicas}"
                   + (f"; {len(pods)} pods where its EndpointSlices put them"
                      f"{_condition_summary(pods)}" if pods else
                      "; no EndpointSlice names its pods: placed by the scheduler")]
        comment += [f"probe {line}" for line in w.probes]
        plan.workloads.append(WorkloadPlan(dep.name, comment, pods, scheduled=True))
    plan.workloads += [w for w in standalone.values() if w.pods]
    _apply_times(plan, workloads, times, p)
    replicas = {d.name: d.replicas for d in workloads}
    backed = {svc: owner for svc, owner in owner_of.items()
              if explicit.get(owner) or replicas.get(owner) or
              (owner in standalone and standalone[owner].pods)}
    _plan_clients(plan, services, rates, p, backed)
    return plan


def _selected_workload(svc: Service, index: SelectorIndex) -> str | None:
    """The first workload (in dump order) of the Service's namespace it selects."""
    return next((d.name for d in index.selected(svc.selector)
                 if d.namespace == svc.namespace), None)


def _unique_by_name(items: list[Any], what: str, plan: ScenarioPlan) -> list[Any]:
    """A scenario names Services and workloads without their namespace: the first of a
    name is kept, later ones are skipped with a warning (import one namespace instead)."""
    seen: dict[str, str] = {}
    out = []
    for item in items:
        if item.name in seen:
            plan.warnings.append(f"{what} {item.namespace}/{item.name} skipped: the name is "
                                 f"taken by {seen[item.name]}/{item.name} (npsim names "
                                 f"{what}s without namespace; use --namespace)")
            continue
        seen[item.name] = item.namespace
        out.append(item)
    return out


def _fresh(name: str, names: set[str]) -> str:
    out, n = name, 2
    while out in names:
        out, n = f"{name}-{n}", n + 1
    names.add(out)
    return out


def _check_nodes(sl: EndpointSlice, nodes: set[str], p: Problems) -> None:
    for ep in sl.endpoints:
        if ep.node_name is not None and ep.node_name not in nodes:
            known = ", ".join(sorted(nodes)[:5]) + (", ..." if len(nodes) > 5 else "")
            p.at(sl.doc, ["endpoints", ep.index, "nodeName"],
                 f"unknown node {ep.node_name!r}: no Node of that name in the dump "
                 f"(nodes: {known or 'none'})", sl.prefix)


def _pod(ep: SliceEndpoint, sl: EndpointSlice) -> dict[str, Any]:
    out: dict[str, Any] = {"node": ep.node_name, "ip": ep.address}
    raw = sl.doc["endpoints"][ep.index]
    ref = raw.get("targetRef") if isinstance(raw, dict) else None
    if isinstance(ref, dict) and isinstance(ref.get("name"), str):
        out["name"] = ref["name"]
    if not ep.ready:
        out["ready"] = False
    if ep.serving != ep.ready:
        out["serving"] = ep.serving
    if ep.terminating:
        out["terminating"] = True
    return out


def _take_pods(sl: EndpointSlice, owner: str, explicit: dict[str, list[dict[str, Any]]],
               taken: dict[str, str], plan: ScenarioPlan) -> dict[str, Any] | None:
    """The slice's endpoints as pods of ``owner``; returns the cleaned slice manifest
    (endpoints outside the cluster, with no nodeName, are left out with a warning)."""
    kept_endpoints = []
    for ep in sl.endpoints:
        if ep.node_name is None:
            plan.warnings.append(
                f"EndpointSlice {sl.namespace}/{sl.name}: endpoint {ep.address} has no "
                "nodeName (outside the cluster): not simulated")
            continue
        kept_endpoints.append(ep)
        if ep.address in taken:
            continue
        taken[ep.address] = owner
        explicit.setdefault(owner, []).append(_pod(ep, sl))
    if not kept_endpoints:
        return None
    return _slice_manifest(sl, kept_endpoints)


def _slice_manifest(sl: EndpointSlice, endpoints: list[SliceEndpoint]) -> dict[str, Any]:
    def endpoint(ep: SliceEndpoint) -> dict[str, Any]:
        out: dict[str, Any] = {"addresses": [ep.address],
                               "conditions": {"ready": ep.ready, "serving": ep.serving,
                                              "terminating": ep.terminating},
                               "nodeName": ep.node_name}
        if ep.zone:
            out["zone"] = ep.zone
        hints = {k: [{"name": n} for n in v] for k, v in (("forZones", ep.hint_zones),
                                                         ("forNodes", ep.hint_nodes)) if v}
        if hints:
            out["hints"] = hints
        return out

    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": sl.name, "namespace": sl.namespace,
                         "labels": {SERVICE_NAME_LABEL: sl.service_name}},
            "addressType": "IPv4",
            "ports": [{"name": sp.name, "port": sp.port, "protocol": sp.protocol}
                      for sp in sl.ports],
            "endpoints": [endpoint(ep) for ep in endpoints]}


def _workload_manifest(dep: Any, kind: str) -> dict[str, Any]:
    out = deployment_manifest(dep)
    out["kind"] = kind
    if kind == "StatefulSet":
        out["spec"].pop("strategy", None)  # a Deployment's field (StatefulSets: updateStrategy)
    return out


def _condition_summary(pods: list[dict[str, Any]]) -> str:
    not_ready = sum(1 for p in pods if p.get("ready") is False)
    terminating = sum(1 for p in pods if p.get("terminating"))
    parts = [f"{not_ready} not ready"] if not_ready else []
    parts += [f"{terminating} terminating"] if terminating else []
    return f" ({', '.join(parts)})" if parts else ""


def _apply_times(plan: ScenarioPlan, workloads: list[Any], rows: list[CsvRow],
                 p: Problems) -> None:
    by_key = {(d.namespace, d.name): d.name for d in workloads}
    plans = {w.name: w for w in plan.workloads}
    for row in rows:
        name = by_key.get(row.key)
        if name is None:
            p.errors.append(Problem(row.mark, "deployment", f"no Deployment or StatefulSet "
                                    f"{row.key[0]}/{row.key[1]} among the imported objects"))
            continue
        plans[name].service_time = row.value
        plans[name].measured = True
        if row.workers is not None:
            plans[name].workers = row.workers


def _plan_clients(plan: ScenarioPlan, services: list[Service], rows: list[CsvRow],
                  p: Problems, backed: dict[str, str]) -> None:
    """One population per Service with endpoints: NodePort/LoadBalancer Services from
    outside, ClusterIP Services only when a rate is given (from a pod)."""
    rate_of = {}
    by_key = {(s.namespace, s.name): s for s in services}
    for row in rows:
        if row.key not in by_key:
            p.errors.append(Problem(row.mark, "service", f"no Service {row.key[0]}/"
                                    f"{row.key[1]} among the imported objects"))
        else:
            rate_of[row.key] = row.value
    first_node = plan.nodes[0].name if plan.nodes else ""
    names: set[str] = set()
    for svc in services:
        rate = rate_of.get((svc.namespace, svc.name))
        if rate == 0 or not svc.ports or svc.name not in backed:
            continue
        external = svc.type in ("NodePort", "LoadBalancer")
        if not external and rate is None:
            continue
        plan.clients.append(ClientPlan(_fresh(f"{svc.namespace}-{svc.name}", names), svc.name,
                                       DEFAULT_RATE if rate is None else rate, rate is not None,
                                       None if external else first_node))
