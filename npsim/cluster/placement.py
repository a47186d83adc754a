"""Where a scenario's pods start, and the scheduler the control plane asks for new ones.

Three placements (``workloads.NAME.placement``): ``spread`` deals a Deployment's pods
over the nodes in turn from the first; a mapping gives counts per node; ``scheduler``
places each pod through kube-scheduler's default profile (npsim/cluster/scheduler.py),
the default for a Deployment whose pods request CPU or memory.

At the start, pods are placed one at a time in a stable order: first every pod that is
not the scheduler's (hand-placed pods, then spread and counted Deployments: they hold
their requests on their nodes), then the scheduler's Deployments in the order of the
manifests, each replica in turn. A pod no node can take stays Pending: it has no
address, is reported (a warning before the run, a ``pod_pending`` event at its start)
and is created when a node has room for it (npsim/sim/controlplane.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from npsim.cluster.lifecycle import spread
from npsim.cluster.scheduler import (
    HOSTNAME_LABEL,
    ZONE_LABEL,
    Decision,
    NodeFacts,
    NodeLoad,
    PodNeeds,
    Rotation,
    Taint,
    Term,
    Toleration,
    schedule,
)

if TYPE_CHECKING:
    from npsim.scenario.cluster_spec import ClusterSpec
    from npsim.scenario.scenario import Scenario

NOT_READY = "node(s) were not ready"  # a node the node controller has tainted


def placement_of(replicas: int, placement: object, names: list[str]) -> list[int]:
    """Node index per pod: ``spread`` deals pods to nodes in turn; a mapping gives counts."""
    if placement == "spread":
        return [i % len(names) for i in range(replicas)]
    by_name = {name: i for i, name in enumerate(names)}
    out: list[int] = []
    for name, count in placement.items():  # type: ignore[attr-defined]
        if name in by_name:
            out.extend([by_name[name]] * count)
    return out


def node_facts(spec: ClusterSpec) -> list[NodeFacts]:
    """Each node as the scheduler sees it; its name and zone are its hostname and zone
    labels (unless its own labels say otherwise)."""
    return [NodeFacts(n.name, round(n.cpu * 1000), n.memory, n.max_pods,
                      {HOSTNAME_LABEL: n.name, ZONE_LABEL: n.zone, **n.labels},
                      tuple(Taint(t.key, t.value, t.effect) for t in n.taints),
                      n.unschedulable)
            for n in spec.nodes]


def pod_needs(dep: Any) -> PodNeeds:
    """A Deployment's pod template as the scheduler reads it (no Deployment: a bare pod
    that asks for nothing)."""
    if dep is None:
        return PodNeeds()
    return PodNeeds(
        dep.cpu_request, dep.memory_request, dict(dep.node_selector),
        None if dep.required_terms is None else tuple(Term(*t) for t in dep.required_terms),
        tuple((w, Term(*t)) for w, t in dep.preferred_terms),
        tuple(Toleration(*t, seconds) for t, seconds in zip(
            dep.tolerations, dep.toleration_seconds or [None] * len(dep.tolerations),
            strict=True)))


def placement_in_force(scenario: Scenario, name: str) -> Any:
    """``spread``, ``scheduler`` or a mapping: the workload's, or its default."""
    dep = scenario.deployments.get(name)
    return scenario.spec.workloads[name].placement_for(bool(dep and dep.has_requests))


@dataclass
class Placer:
    """The scheduler of one run: the nodes, each Deployment's needs, its counters."""

    nodes: list[NodeFacts]
    needs: dict[str, PodNeeds]
    scheduled: set[str]  # Deployments placed by the scheduler
    rotation: Rotation = field(default_factory=Rotation)

    def __contains__(self, deployment: str) -> bool:
        return deployment in self.scheduled

    def loads(self, bound: Iterable[Any]) -> list[NodeLoad]:
        """What each node holds: the requests of the pods bound to it (``.node``,
        ``.deployment``), terminating ones included until they are gone."""
        out = [NodeLoad() for _ in self.nodes]
        empty = PodNeeds()
        for pod in bound:
            out[pod.node].add(self.needs.get(pod.deployment, empty))
        return out

    def place(self, deployment: str, bound: Iterable[Any], peers: Iterable[Any],
              candidates: Sequence[int]) -> Decision:
        """One new pod of ``deployment``: ``bound``, the pods that exist; ``peers``,
        those of its ReplicaSet (spreading); ``candidates``, the nodes that are Ready."""
        counts = [0] * len(self.nodes)
        for pod in peers:
            counts[pod.node] += 1
        ready = set(candidates)
        down = {i: NOT_READY for i in range(len(self.nodes)) if i not in ready}
        return schedule(self.needs[deployment], self.nodes, self.loads(bound), counts,
                        self.rotation, down)


def choose_node(placer: Placer | None, deployment: str, candidates: list[int],
                bound: Iterable[Any], active: list[Any], life: Mapping[int, Any],
                revision: int) -> tuple[int | None, str]:
    """The node a new pod of ``deployment`` goes to, and why none if none: kube-scheduler's
    choice for a Deployment it places (its peers: the ``active`` pods of ``revision``, one
    ReplicaSet), else the candidate with the fewest ``active`` pods (spread, counts)."""
    if not candidates:
        return None, "no schedulable node"
    if placer is None or deployment not in placer:
        counts = dict.fromkeys(candidates, 0)
        for pod in active:
            if pod.node in counts:
                counts[pod.node] += 1
        return spread(counts, 1)[0], ""
    decision = placer.place(deployment, bound, [p for p in active
                                                if life[p.index].revision == revision],
                            candidates)
    return decision.node, decision.message


@dataclass
class InitialPlacement:
    """Node index per pod of each Deployment placed at the start (hand-placed pods are
    not listed), the pods left Pending per Deployment (count, why), and the scheduler."""

    nodes: dict[str, list[int]]
    pending: dict[str, tuple[int, str]]
    placer: Placer | None


def initial_placement(scenario: Scenario) -> InitialPlacement:
    """The start of a run: every Deployment's pods on their nodes (module docstring)."""
    spec = scenario.spec
    names = [n.name for n in spec.cluster.nodes]
    out = InitialPlacement({}, {}, None)
    scheduled = []
    for name, dep in scenario.deployments.items():
        workload = spec.workloads.get(name)
        if workload is None or workload.pods is not None:
            continue
        placement = placement_in_force(scenario, name)
        if placement == "scheduler":
            scheduled.append(name)
        else:
            out.nodes[name] = placement_of(dep.replicas, placement, names)
    also = [name for name, w in spec.workloads.items()  # hand-placed, new pods scheduled
            if w.pods is not None and name in scenario.deployments
            and placement_in_force(scenario, name) == "scheduler"]
    if not scheduled and not also:
        return out
    nodes = node_facts(spec.cluster)
    needs = {name: pod_needs(scenario.deployments.get(name)) for name in spec.workloads}
    placer = out.placer = Placer(nodes, needs, set(scheduled) | set(also))
    index = {n: i for i, n in enumerate(names)}
    loads = [NodeLoad() for _ in nodes]
    for name, w in spec.workloads.items():
        for pod in w.pods or []:
            loads[index[pod.node]].add(needs[name])
    for name, where in out.nodes.items():
        for node in where:
            loads[node].add(needs[name])
    for name in scheduled:
        peers = [0] * len(nodes)
        where: list[int] = []
        for _ in range(scenario.deployments[name].replicas):
            decision = schedule(needs[name], nodes, loads, peers, placer.rotation)
            if decision.node is None:
                count, _ = out.pending.get(name, (0, ""))
                out.pending[name] = (count + 1, decision.message)
                continue
            where.append(decision.node)
            loads[decision.node].add(needs[name])
            peers[decision.node] += 1
        out.nodes[name] = where
    return out


def pending_problems(scenario: Scenario) -> list[tuple[list[object], str]]:
    """(field path, message) per Deployment with pods the scheduler can place nowhere
    at the start: they stay Pending (a warning: the run goes on without them)."""
    plan = initial_placement(scenario)
    out: list[tuple[list[object], str]] = []
    for name, (count, why) in plan.pending.items():
        replicas = scenario.deployments[name].replicas
        out.append((["workloads", name],
                    f"{count} of {replicas} pods of Deployment {name!r} fit on no node and "
                    f"stay Pending (kube-scheduler: {why}); lower their requests or give "
                    "the nodes more room (cluster.nodes[].cpu, memory, maxPods)"))
    return out
