"""The checks across sections of a scenario, in one list, run in its order.

Each section validates on its own (the schema, a kind's parser); what one section says
about another is checked here: names that must refer to something (Deployments,
Services, ports, nodes, pods), the firewall rules, the NodePorts the API server would
allocate, the port plan, hand-placed addresses, and the warnings that a run would
refuse every connection or overload a pod. When some sections did not validate, the
checks that read only the others still run (:func:`check_partial`), so one typo does not
hide every reference error: all problems are reported at once.

A check is a function of the :class:`Sections` it reads and the problems it adds to;
add one to :data:`CHECKS` (or :data:`WHOLE_CHECKS` when it needs every section).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from npsim.scenario.call_checks import check_calls, warn_calls_never_made
from npsim.scenario.capacity import offered_utilisation
from npsim.scenario.client_spec import ClientSpec
from npsim.scenario.cluster_spec import ClusterSpec
from npsim.scenario.faultplan import FaultPlan, Scale
from npsim.scenario.firewall import build_node_firewall, build_security_group
from npsim.scenario.manifests import Unresolved
from npsim.scenario.nodeports import scenario_refusals
from npsim.scenario.objects import SelectorIndex, pick_port
from npsim.scenario.problems import Problems
from npsim.scenario.scenario import Scenario
from npsim.scenario.schema import WorkloadSpec
from npsim.scenario.unique import repeats
from npsim.units import format_duration


@dataclass
class Sections:
    """What the checks read: the scenario's manifests and the sections that validated
    (every one, or those that did when others did not; ``None``: this one did not)."""

    scenario: Scenario  # services and deployments; its spec is None in a partial check
    tree: Any  # the marked YAML problems are placed in (None: a scenario made in Python)
    cluster: ClusterSpec | None
    workloads: dict[str, WorkloadSpec | None]
    clients: list[tuple[int, ClientSpec]]  # (position in the file, client)
    unresolved: Unresolved  # manifests reported as broken: references to them are not

    @property
    def nodes(self) -> set[str] | None:
        return {n.name for n in self.cluster.nodes} if self.cluster is not None else None


Check = Callable[[Sections, Problems], None]


def check_firewalls(s: Sections, p: Problems) -> None:
    """Every firewall's rules read as iptables would (a rule npsim cannot read names
    its line)."""
    if s.cluster is None:
        return
    sections: list[tuple[list[Any], Any, Callable[[Any], Any]]] = [
        (["cluster", "nodes", i, "firewall"], node.firewall, build_node_firewall)
        for i, node in enumerate(s.cluster.nodes)]
    sections += [(["cluster", "firewall"], s.cluster.firewall, build_node_firewall),
                 (["cluster", "securityGroup"], s.cluster.security_group, build_security_group)]
    for loc, spec, build in sections:
        if spec is None:
            continue
        try:
            build(spec)
        except ValueError as exc:
            p.at(s.tree, loc, str(exc))


def check_workloads(s: Sections, p: Problems) -> None:
    """Each workload has its Deployment (unless its pods are placed by hand), places
    its pods on known nodes, as many as the Deployment's replicas; each Deployment has
    its workload."""
    scenario, nodes = s.scenario, s.nodes
    for name, workload in s.workloads.items():
        dep = scenario.deployments.get(name)
        if dep is None:
            if name in s.unresolved or workload is not None and workload.pods is not None:
                continue  # reported already, or hand-placed pods without a Deployment
            known = ", ".join(sorted(scenario.deployments)) or "none"
            p.at(s.tree, ["workloads", name],
                 f"no Deployment named {name!r} among the manifests (known: {known})")
            continue
        if workload is not None and isinstance(workload.placement, dict):
            for node in workload.placement:
                if nodes is not None and node not in nodes:
                    p.at(s.tree, ["workloads", name, "placement", node],
                         f"unknown node {node!r} (nodes: {', '.join(sorted(nodes))})")
            total = sum(workload.placement.values())
            if total != dep.replicas:
                p.at(s.tree, ["workloads", name, "placement"],
                     f"placement puts {total} pods but Deployment {name!r} has replicas: "
                     f"{dep.replicas}")
    for name in scenario.deployments:
        if name not in s.workloads:
            p.at(s.tree, ["workloads"],
                 f"Deployment {name!r} has no workload entry (workers, serviceTime)")


def check_clients(s: Sections, p: Problems) -> None:
    """Each client aims at a Service and port that exist, reachable its way, from and
    to known nodes."""
    nodes = s.nodes
    for i, client in s.clients:
        svc = s.scenario.services.get(client.service)
        if svc is None:
            if client.service in s.unresolved:
                continue
            known = ", ".join(sorted(s.scenario.services)) or "none"
            p.at(s.tree, ["clients", i, "service"],
                 f"no Service named {client.service!r} among the manifests (known: {known})")
        elif svc.type == "ClusterIP" and client.target == "nodePort":
            p.at(s.tree, ["clients", i, "service"],
                 f"Service {svc.name!r} is type ClusterIP: it has no NodePort to reach")
        elif client.target == "externalIP" and not svc.external_ips:
            p.at(s.tree, ["clients", i, "target"],
                 f"Service {svc.name!r} has no spec.externalIPs to send to")
        elif client.target == "loadBalancerIP" and not svc.load_balancer_ips:
            p.at(s.tree, ["clients", i, "target"],
                 f"Service {svc.name!r} has no LoadBalancer ingress IP (status.loadBalancer."
                 "ingress[].ip with ipMode VIP, on a type LoadBalancer Service) to send to")
        elif pick_port(svc, client.port) is None:
            names = ", ".join(repr(x.name or x.port) for x in svc.ports)
            p.at(s.tree, ["clients", i, "port"],
                 f"Service {svc.name!r} has no port {client.port!r} (ports: {names})")
        if nodes is not None and client.entry.node is not None and client.entry.node not in nodes:
            p.at(s.tree, ["clients", i, "entry", "node"], f"unknown node {client.entry.node!r}")
        if nodes is not None and client.source is not None and client.source.node not in nodes:
            p.at(s.tree, ["clients", i, "source", client.source.kind],
                 f"unknown node {client.source.node!r}")
        elif client.source is not None and client.source.node in _down(s):
            p.at(s.tree, ["clients", i, "source", client.source.kind], _on_down_node(
                client.source.node))
        if client.entry.address == "localhost" and client.entry.node in _down(s):
            p.at(s.tree, ["clients", i, "entry", "address"], _on_down_node(client.entry.node))


def _on_down_node(node: str | None) -> str:
    return (f"node {node!r} is down for the whole run (its down: true, or "
            "--each-node-down): a client cannot run on it; send from another node")


def _down(s: Sections) -> set[str]:
    """The nodes down from the start (``cluster.nodes[].down``)."""
    return {n.name for n in s.cluster.nodes if n.down} if s.cluster is not None else set()


def check_node_ports(s: Sections, p: Problems) -> None:
    """Create the scenario's Services through the API server's NodePort allocator and
    report each refusal at the Service's manifest, in the API server's words
    (``spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid
    range. The range of valid ports is 30000-32767``)."""
    scenario, tree = s.scenario, s.tree
    spec = scenario.spec
    if s.cluster is None and isinstance(tree, dict) and tree.get("cluster") is not None:
        return  # the cluster section did not validate: its range is unknown (reported there)
    try:
        allocation = scenario_refusals(list(scenario.services.values()), s.cluster,
                                       spec.run.seed if spec is not None else 1)
    except ValueError:  # an unreadable range is reported by the schema
        return
    for rejection in allocation.rejected:
        svc = scenario.services[rejection.service]
        where = f"Service {svc.name!r}: "
        if rejection.path:
            loc = [int(x) if x.isdigit() else x
                   for x in re.split(r"[.\[\]]+", rejection.path) if x]
            p.at(svc.doc if svc.doc is not None else tree, loc,
                 f"Invalid value: {rejection.port}: {rejection.message}" + _collision_hint(
                     rejection, allocation), svc.prefix)
        else:
            p.at(svc.doc if svc.doc is not None else tree, ["metadata", "name"],
                 where + f"Internal error occurred: {rejection.message}", svc.prefix)


def _collision_hint(rejection: Any, allocation: Any) -> str:
    """Name who holds a port asked for explicitly (an earlier Service's automatic port
    in the dynamic band is what the static band is there to avoid)."""
    if "already allocated" not in rejection.message:
        return ""
    for name, given in allocation.services.items():
        if rejection.port in given.node_ports or rejection.port == given.health_check_node_port:
            ports_range = allocation.range
            band = ports_range.bands()["static"]
            hint = f" (held by Service {name!r}"
            if band is not None and ports_range.band(rejection.port) == "dynamic":
                hint += (f"; explicit requests in the static band {band[0]}-{band[1]} "
                         "cannot collide with automatic allocations")
            return hint + ")"
    return ""


def check_port_plan(s: Sections, p: Problems) -> None:
    """Every Service a plan band names must exist, and belong to one band only."""
    spec = s.scenario.spec
    if spec is None:
        return
    seen: dict[str, str] = {}
    known = {n for svc in s.scenario.services.values() for n in (svc.name,
                                                                 f"{svc.namespace}/{svc.name}")}
    for i, band in enumerate(spec.port_plan):
        for j, name in enumerate(band.services):
            if name not in known:
                p.at(s.tree, ["portPlan", i, "services", j],
                     f"no Service named {name!r} among the manifests")
            elif name in seen:
                p.at(s.tree, ["portPlan", i, "services", j],
                     f"Service {name!r} is already in band {seen[name]!r}")
            seen[name] = band.name


def warn_no_endpoints(s: Sections, p: Problems) -> None:
    """A Service clients aim at that no pod will ever back: every connection refused."""
    scenario = s.scenario
    index = SelectorIndex(scenario.deployments.values())
    targeted = {c.service for _, c in s.clients}
    events = scenario.spec.events if scenario.spec is not None else []  # partial check
    scaled = {o.deployment for o in FaultPlan.of(events)
              if isinstance(o, Scale) and o.replicas > 0}
    for svc in scenario.services.values():
        if svc.name not in targeted or svc.endpoint_slices:
            continue
        selected = index.selected(svc.selector)
        if not selected:
            p.warn(s.tree, ["manifests"],
                   f"Service {svc.name!r} selects no pod of any Deployment: every connection "
                   "to it will be refused (no_endpoints)")
        elif not any(d.replicas or d.name in scaled for d in selected):
            p.warn(s.tree, ["manifests"],
                   f"Service {svc.name!r} selects only Deployments with replicas: 0 and no "
                   "scale event gives them pods: every connection to it will be refused "
                   "(no_endpoints)")


def check_client_names(s: Sections, p: Problems) -> None:
    for at, name in repeats(client.name for _, client in s.clients):
        p.at(s.tree, ["clients", s.clients[at][0], "name"], f'Duplicate value: "{name}"')


def check_events(s: Sections, p: Problems) -> None:
    """Every event names something that exists: a Deployment, a node, or a pod that is
    there from the start (``<deployment>-<ordinal>``)."""
    scenario, tree = s.scenario, s.tree
    nodes = [n.name for n in scenario.spec.cluster.nodes]
    for outage in FaultPlan.of(scenario.spec.events):
        at = ["events", outage.index, outage.key]
        deployment = getattr(outage, "deployment", None)
        node = getattr(outage, "node", None)
        pod = getattr(outage, "pod", None)
        if deployment is not None and deployment not in scenario.deployments:
            known = ", ".join(sorted(scenario.deployments)) or "none"
            p.at(tree, [*at, "deployment"],
                 f"no Deployment named {deployment!r} (known: {known})")
        elif node is not None and node not in nodes:
            p.at(tree, [*at, "node"], f"unknown node {node!r} (nodes: "
                 f"{', '.join(nodes)})")
        elif pod is not None and not _pod_at_start(scenario, pod):
            pods = [f"{name}-0..{dep.replicas - 1}" if dep.replicas > 1 else f"{name}-0"
                    for name, dep in scenario.deployments.items() if dep.replicas]
            p.at(tree, [*at, "pod"], f"no pod named {pod!r} at the start of the run "
                 f"(pods: {', '.join(pods) or 'none'})")


def _pod_at_start(scenario: Scenario, pod: str) -> bool:
    """Whether ``<deployment>-<ordinal>`` names a pod there at the start (no list of
    every pod: a Deployment may ask for a billion replicas before the limits refuse it)."""
    name, _, ordinal = pod.rpartition("-")
    dep = scenario.deployments.get(name)
    return (dep is not None and ordinal.isdigit() and str(int(ordinal)) == ordinal
            and int(ordinal) < dep.replicas)


def check_explicit_pods(s: Sections, p: Problems) -> None:
    """Hand-placed pods name known nodes and distinct addresses; every endpoint of a
    hand-made slice names a known node and the address of a hand-placed pod (the pod
    that serves it in the simulation)."""
    scenario, tree, nodes = s.scenario, s.tree, s.nodes
    owner: dict[str, str] = {}
    for name, workload in scenario.spec.workloads.items():
        for i, pod in enumerate(workload.pods or []):
            if nodes is not None and pod.node not in nodes:
                p.at(tree, ["workloads", name, "pods", i, "node"],
                     f"unknown node {pod.node!r}")
            if pod.ip in owner and owner[pod.ip] != name:
                p.at(tree, ["workloads", name, "pods", i, "ip"],
                     f"address {pod.ip} is also a pod of workload {owner[pod.ip]!r}")
            owner.setdefault(pod.ip, name)
    for svc in scenario.services.values():
        for sl in svc.endpoint_slices:
            for ep in sl.endpoints:
                at = ["endpoints", ep.index]
                if ep.node_name is not None and nodes is not None and ep.node_name not in nodes:
                    p.at(sl.doc, [*at, "nodeName"],
                         f"unknown node {ep.node_name!r}: the slice's endpoint must run on "
                         "a node of cluster.nodes", sl.prefix)
                elif ep.address not in owner:
                    p.at(sl.doc, [*at, "addresses", 0],
                         f"no pod has address {ep.address}: place the pod that serves it "
                         "under workloads.NAME.pods ({node: NODE, ip: " + ep.address + "})",
                         sl.prefix)


def check_front_ends(s: Sections, p: Problems) -> None:
    """A balancer checking the healthCheckNodePort needs a Service that has one: the API
    server allocates it only for type LoadBalancer with externalTrafficPolicy Local
    (k8s pkg/registry/core/service/storage/alloc.go: ``needsHCNodePort``)."""
    for i, client in enumerate(s.scenario.spec.clients):
        hc = client.balancer.health_check if client.balancer is not None else None
        svc = s.scenario.services.get(client.service)
        if hc is None or hc.port != "healthCheckNodePort" or svc is None:
            continue
        if svc.type != "LoadBalancer" or svc.external_traffic_policy != "Local":
            p.at(s.tree, ["clients", i, "balancer", "healthCheck", "port"],
                 f"Service {svc.name!r} has no healthCheckNodePort (only type LoadBalancer "
                 f"with externalTrafficPolicy Local gets one; it is type {svc.type}, "
                 f"policy {svc.external_traffic_policy or 'Cluster'}): check port nodePort")


def check_no_effect(s: Sections, p: Problems) -> None:
    """Settings that would change nothing are mistakes, not silence: TLS terminated at a
    balancer the population does not have, balancer cores for TLS terminated in the pod.
    An event or a population's start at or after the end of the run is a warning (a run
    shortened with ``--set run.duration=...`` to try a scenario quickly has them)."""
    spec, tree = s.scenario.spec, s.tree
    for i, client in enumerate(spec.clients):
        tls = client.tls
        if tls is not None and tls.terminate == "balancer" and client.balancer is None:
            p.at(tree, ["clients", i, "tls", "terminate"],
                 "TLS is terminated at the balancer, but this population has no balancer: "
                 "add one (balancer: {snat: true}) or terminate in the pod")
        elif (tls is not None and tls.terminate == "pod"
              and "balancer_cores" in tls.model_fields_set
              # scenario.resolved.yaml writes every default out, this one too (with_changes
              # re-reads only the keys the user set: npsim/scenario/userset.py)
              and tls.balancer_cores != type(tls).model_fields["balancer_cores"].default):
            p.at(tree, ["clients", i, "tls", "balancerCores"],
                 "no effect: TLS is terminated in the pod, so no balancer core handshakes; "
                 "leave balancerCores out or terminate at the balancer")
        duration = spec.run.duration
        if duration is not None and client.start >= duration:
            p.warn(tree, ["clients", i, "start"],
                   f"the population starts at {format_duration(client.start)}, not before "
                   f"the run ends ({format_duration(duration)}): it sends nothing")
    duration = spec.run.duration
    for i, event in enumerate(spec.events):
        if duration is not None and event.at >= duration:
            p.warn(tree, ["events", i, "at"],
                   f"the event happens at {format_duration(event.at)}, not before the run "
                   f"ends ({format_duration(duration)}): it changes nothing")


def warn_utilisation(s: Sections, p: Problems) -> None:
    """Warn before running a pod at utilisation >= 1 (random spread assumed); only for
    a scenario without errors (the estimate needs every reference resolved)."""
    if p.errors:
        return
    for deployment, rho in offered_utilisation(s.scenario).items():
        if rho >= 1:
            load = f"{rho:.2f}" if rho < 1e6 else f"{rho:.3g}"  # never 300 digits
            p.warn(s.tree, ["workloads", deployment],
                   f"offered load is {load} per pod (>= 1): queues will grow without bound "
                   "and latency will depend on the run length")


# the checks that read only the sections that validated (a partial check runs these)
CHECKS: list[Check] = [check_firewalls, check_workloads, check_clients, check_node_ports,
                       check_port_plan, warn_no_endpoints, check_client_names, check_calls]
# and those that need the whole scenario
WHOLE_CHECKS: list[Check] = [check_events, check_explicit_pods, check_front_ends,
                             check_no_effect, warn_utilisation, warn_calls_never_made]


def check_scenario(scenario: Scenario, tree: Any, p: Problems,
                   unresolved: Unresolved | None = None) -> None:
    """Every check, on a scenario whose every section validated."""
    spec = scenario.spec
    sections = Sections(scenario, tree, spec.cluster, dict(spec.workloads),
                        list(enumerate(spec.clients)), unresolved or set())
    for check in CHECKS + WHOLE_CHECKS:
        check(sections, p)


def check_partial(scenario: Scenario, tree: Any, p: Problems, unresolved: Unresolved) -> None:
    """The checks of :data:`CHECKS` on the sections that did validate, when others did
    not (``scenario`` holds the manifests; its spec is None)."""
    if not isinstance(tree, dict):
        return
    ctx = {"yaml": True}

    def valid(model: type, value: Any) -> Any:
        try:
            return model.model_validate(value, context=ctx)
        except ValidationError:
            return None

    raw_workloads = tree.get("workloads")
    workloads = ({name: valid(WorkloadSpec, w) for name, w in raw_workloads.items()}
                 if isinstance(raw_workloads, dict) else {})
    raw_clients = tree.get("clients")
    clients = ([(i, c) for i, c in enumerate(valid(ClientSpec, c) for c in raw_clients)
                if c is not None] if isinstance(raw_clients, list) else [])
    sections = Sections(scenario, tree, valid(ClusterSpec, tree.get("cluster")), workloads,
                        clients, unresolved)
    for check in CHECKS:
        check(sections, p)
