"""Which endpoints a node's kube-proxy may use for Cluster-policy traffic: topology.

The EndpointSlice controller puts hints on ready endpoints; kube-proxy on each node
filters its *Cluster* endpoint set by them (``pkg/proxy/topology.go``
``CategorizeEndpoints``, ``topologyModeFromHints``; KEP-2433, KEP-4444):

1. if every ready endpoint has a node hint and one is hinted for this node: only those;
2. else if every ready endpoint has a zone hint and one is hinted for this node's zone:
   only those;
3. else no filtering.

Hints come from ``spec.trafficDistribution`` (PreferSameZone and its deprecated alias
PreferClose: each endpoint is hinted for its own zone; PreferSameNode: also for its own
node) or from the ``service.kubernetes.io/topology-mode: Auto`` annotation (endpoints are
allotted to zones in proportion to the zones' allocatable CPU; no hints when there are
fewer endpoints than zones or when the expected overload reaches 20%). The annotation
wins when both are set. Local traffic policies ignore hints.
"""

from __future__ import annotations

from dataclasses import dataclass

from npsim.cluster.model import Endpoint, Node, slice_hints
from npsim.scenario.objects import Service

OVERLOAD_THRESHOLD = 0.2  # topology cache overloadThreshold


@dataclass(frozen=True)
class Hints:
    zones: dict[int, str] | None  # endpoint pod index -> zone it is hinted for
    nodes: dict[int, int] | None  # endpoint pod index -> node it is hinted for


def hints_for(service: Service, endpoints: tuple[Endpoint, ...], nodes: list[Node],
              node_cpu: list[float]) -> Hints:
    """The hints the EndpointSlice controller would set on these ready endpoints (or,
    for a selector-less Service, the hints its hand-made slices carry)."""
    if service.endpoint_slices:
        return Hints(*slice_hints(service, endpoints, nodes))
    if service.topology_mode in ("Auto", "auto"):
        return Hints(_auto_zone_hints(endpoints, nodes, node_cpu), None)
    mode = service.traffic_distribution
    if mode in ("PreferClose", "PreferSameZone"):
        return Hints({e.pod: nodes[e.node].zone for e in endpoints}, None)
    if mode == "PreferSameNode":
        return Hints({e.pod: nodes[e.node].zone for e in endpoints},
                     {e.pod: e.node for e in endpoints})
    return Hints(None, None)


def _auto_zone_hints(endpoints: tuple[Endpoint, ...], nodes: list[Node],
                     node_cpu: list[float]) -> dict[int, str] | None:
    """Topology Aware Routing: endpoints allotted to zones by allocatable CPU share."""
    zones = sorted({n.zone for n in nodes})
    if len(endpoints) < len(zones):
        return None
    cpu = {z: sum(c for n, c in zip(nodes, node_cpu, strict=True) if n.zone == z)
           for z in zones}
    total = sum(cpu.values())
    want = {z: len(endpoints) * cpu[z] / total for z in zones}
    # expected overload: a zone served by fewer endpoints than its share
    quota = {z: max(1, round(want[z])) for z in zones}
    if sum(quota.values()) != len(endpoints):
        quota[max(zones, key=lambda z: want[z] - quota[z])] += len(endpoints) - sum(
            quota.values())
    if any(quota[z] <= 0 or want[z] / quota[z] - 1 >= OVERLOAD_THRESHOLD for z in zones):
        return None
    own: dict[str, list[Endpoint]] = {z: [] for z in zones}
    for e in endpoints:
        own[nodes[e.node].zone].append(e)
    hints: dict[int, str] = {}
    spare: list[Endpoint] = []
    for z in zones:
        keep, extra = own[z][: quota[z]], own[z][quota[z]:]
        hints.update({e.pod: z for e in keep})
        spare.extend(extra)
    for z in zones:  # zones short of endpoints borrow the surplus of others
        need = quota[z] - sum(1 for v in hints.values() if v == z)
        for _ in range(max(need, 0)):
            if spare:
                hints[spare.pop(0).pod] = z
    return hints if len(hints) == len(endpoints) else None


def cluster_set(
    endpoints: tuple[Endpoint, ...], hints: Hints, node: Node
) -> tuple[Endpoint, ...]:
    """The Cluster endpoint set one node uses, after topology filtering."""
    if not endpoints:
        return endpoints
    if hints.nodes is not None and all(e.pod in hints.nodes for e in endpoints):
        mine = tuple(e for e in endpoints if hints.nodes[e.pod] == node.index)
        if mine:
            return mine
    if hints.zones is not None and all(e.pod in hints.zones for e in endpoints):
        mine = tuple(e for e in endpoints if hints.zones[e.pod] == node.zone)
        if mine:
            return mine
    return endpoints


def local_set(endpoints: tuple[Endpoint, ...], node: Node) -> tuple[Endpoint, ...]:
    """This node's own ready endpoints (Local policies; hints ignored)."""
    return tuple(e for e in endpoints if e.node == node.index)


