"""The cluster a scenario describes: nodes, pods with IPs, Service ports and endpoints.

Built once per run from a :class:`~npsim.scenario.loader.Scenario`; plain data that the
SimPy processes read. Addresses are kept as integers (cheap to compare and store in
columns) and shown with :func:`ip_str`.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from npsim.cluster.placement import Placer, initial_placement
from npsim.cluster.pod_room import pods_made
from npsim.cluster.reserved import reserved_pod_addresses
from npsim.dists import Distribution
from npsim.scenario.nodeports import allocate_scenario
from npsim.scenario.objects import Service, ServicePort, pick_port, selector_matches
from npsim.scenario.problems import Problem, ScenarioError

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario

# kind-style node addresses and flannel-style per-node /24 pod CIDRs when a scenario gives
# none. The /24s are carved from 10.244.0.0 upwards (10.244.0.0/24 for the first node, as
# flannel's default 10.244.0.0/16 does), then from 10.0.0.0 up to 10.243.255.0: unique
# for up to 65,536 nodes; a larger cluster must give podCIDR per node.
DEFAULT_NODE_BASE = int(ipaddress.IPv4Address("172.18.0.2"))
DEFAULT_POD_BASE = int(ipaddress.IPv4Address("10.244.0.0"))
CLUSTER_CIDR_BASE = int(ipaddress.IPv4Address("10.0.0.0"))
_ABOVE_POD_BASE = (1 << 24) - (DEFAULT_POD_BASE - CLUSTER_CIDR_BASE)  # /24s in 10.244-10.255
MAX_DEFAULT_POD_CIDRS = 1 << 16  # every /24 of 10.0.0.0/8
# 198.18.0.0/15 is reserved for benchmarking (RFC 2544): 2^17 client addresses per population
DEFAULT_CLIENT_BASE = int(ipaddress.IPv4Address("198.18.0.0"))


def ip_str(address: int) -> str:
    """Dotted quad of an IPv4 address held as an int (no ipaddress object: this runs
    once per endpoint per table)."""
    return f"{address >> 24 & 255}.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}"


def default_pod_cidr(i: int) -> ipaddress.IPv4Network:
    """Node ``i``'s default pod CIDR, unique for ``i < MAX_DEFAULT_POD_CIDRS``."""
    if not 0 <= i < MAX_DEFAULT_POD_CIDRS:
        raise ValueError(f"no default pod CIDR for node {i}: 10.0.0.0/8 holds "
                         f"{MAX_DEFAULT_POD_CIDRS} /24s; give podCIDR for every node")
    offset = i << 8
    start = (DEFAULT_POD_BASE + offset if offset < _ABOVE_POD_BASE
             else CLUSTER_CIDR_BASE + offset - _ABOVE_POD_BASE)
    return ipaddress.IPv4Network((start, 24))


@dataclass(frozen=True)
class Node:
    index: int
    name: str
    zone: str
    ip: int
    pod_cidr: ipaddress.IPv4Network

    @property
    def bridge_ip(self) -> int:
        """The host side of the pod network (cni0 takes .1): the source a same-node pod
        sees after SNAT (MASQUERADE picks the egress address; CNI-dependent)."""
        return int(self.pod_cidr.network_address) + 1


@dataclass(slots=True)
class Pod:
    """One pod. ``labels`` and ``container_ports`` are shared by the pods of one
    Deployment template (read-only: 10,000 copies were 2 MB of a large cluster)."""

    index: int
    name: str
    deployment: str
    node: int
    ip: int
    labels: dict[str, str]
    workers: int
    queue_limit: int | None
    service_time: Distribution
    container_ports: dict[str, int] = field(default_factory=dict)
    namespace: str = "default"
    created_at: float = 0.0
    deleted_at: float | None = None
    # endpoint conditions of a hand-placed pod at the start (discovery.k8s.io/v1
    # EndpointConditions); the control plane's pod lifecycle takes them from here
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def starts_serving(self) -> bool:
        """The Ready condition at the start (a terminating pod's is its serving)."""
        return self.serving if self.terminating else self.ready

    def alive_during(self, start: float, end: float) -> bool:
        return self.created_at < end and (self.deleted_at is None or self.deleted_at > start)


@dataclass(frozen=True, slots=True)
class Endpoint:
    pod: int
    node: int
    ip: int
    port: int
    # "IP:port": kube-proxy orders endpoints by this string, lexicographically
    # (pkg/proxy/endpointslicecache.go byEndpoint.Less). Made with the endpoint, in a
    # slot: no per-endpoint __dict__ (a cached_property needed one)
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{ip_str(self.ip)}:{self.port}")


@dataclass
class ServicePortModel:
    """One (Service, port) as kube-proxy sees it: a NodePort and its endpoints."""

    index: int
    service: Service
    port: ServicePort
    node_port: int
    endpoints: tuple[Endpoint, ...]
    # the Service's healthCheckNodePort (LoadBalancer + Local only; 0: none), where
    # kube-proxy answers an external balancer's probes (pkg/proxy/healthcheck)
    health_check_node_port: int = 0

    @property
    def name(self) -> str:
        """kube-proxy's ServicePortName: namespace/name:port (port name may be empty)."""
        return f"{self.service.namespace}/{self.service.name}:{self.port.name}"


@dataclass
class Cluster:
    nodes: list[Node]
    pods: list[Pod]
    service_ports: list[ServicePortModel]
    # network.links: (node index, node index) -> latency, both directions (a link is
    # symmetric; a later entry for the same pair wins). Plain dicts, not a networkx graph:
    # importing networkx in every run cost 9 MB and 300 modules for two lookups.
    links: dict[tuple[int, int], Distribution]
    same_node: Distribution
    same_zone: Distribution
    cross_zone: Distribution
    # next host number per node's pod CIDR, and pods made so far per Deployment
    next_host: dict[int, int] = field(default_factory=dict)
    made: dict[str, int] = field(default_factory=dict)
    # addresses of hand-placed pods: pods made later skip them
    taken_ips: set[int] = field(default_factory=set)
    # per Deployment, the labels and named container ports its pods share (read-only)
    templates: dict[str, tuple[dict[str, str], dict[str, int]]] = field(default_factory=dict)
    # how many pods (the first ones) the service ports' endpoints were worked out from
    endpoints_over: int = 0
    # kube-proxy --cluster-cidr (cluster.clusterCIDR); None: derived from the podCIDRs
    cluster_cidr: ipaddress.IPv4Network | None = None
    service_cidr: str = "10.96.0.0/12"  # kube-apiserver --service-cluster-ip-range
    # node name -> index
    node_indexes: dict[str, int] = field(default_factory=dict)
    # the scheduler (placement: scheduler; None: no workload uses it), and the pods it
    # placed nowhere at the start: Deployment -> (count, kube-scheduler's message)
    placer: Placer | None = None
    pending: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def pod_network(self) -> ipaddress.IPv4Network:
        """The range kube-proxy's local-traffic detector calls "pod traffic": the
        configured clusterCIDR, else the smallest network holding every node's podCIDR
        (what kubeadm's --pod-network-cidr would be)."""
        if self.cluster_cidr is not None:
            return self.cluster_cidr
        nets = [n.pod_cidr for n in self.nodes]
        net = nets[0]
        while not all(n.subnet_of(net) for n in nets):
            net = net.supernet()
        return net

    def node_index(self, name: str) -> int:
        return self.node_indexes[name]

    def hop_latency(self, a: int, b: int) -> Distribution:
        """Round-trip extra latency of the hop from node ``a`` to a pod on node ``b``."""
        link = self.links.get((a, b))
        if link is not None:
            return link
        na, nb = self.nodes[a], self.nodes[b]
        if a == b:
            return self.same_node
        return self.same_zone if na.zone == nb.zone else self.cross_zone

    def endpoints_of(self, sp: ServicePortModel, pods: list[Pod],
                     made: dict[tuple[int, int], Endpoint] | None = None
                     ) -> tuple[Endpoint, ...]:
        """The endpoints of ``sp`` over ``pods`` (in index order): the Service port's own
        tuple when they are exactly the pods it was worked out from (at 10,000 pods a
        second set of endpoints was 2 MB), else made (reusing ``made``)."""
        built = self.endpoints_over
        if built > 0 and len(pods) == built and pods[-1].index == built - 1:
            return sp.endpoints
        return endpoints_for(sp.service, sp.port, pods, made)

    def service_port_for(self, service: str, port: int | str | None) -> ServicePortModel:
        for sp in self.service_ports:
            if sp.service.name == service and sp.port == pick_port(sp.service, port):
                return sp
        raise KeyError(f"no service port {service}:{port}")


def endpoints_for(service: Service, port: ServicePort, pods: list[Pod],
                  made: dict[tuple[int, int], Endpoint] | None = None) -> tuple[Endpoint, ...]:
    """Ready endpoints of a Service port, in kube-proxy's order.

    A named targetPort resolves per pod to the container port of that name; a pod
    without it is not an endpoint (as the EndpointSlice controller does). A selector-less
    Service's endpoints are those of its hand-made EndpointSlices (:func:`slice_endpoints`).
    Which pods are ready is the caller's (the control plane's pod lifecycle). ``made``
    (pod index, target port) -> Endpoint: endpoints made before, reused and added to
    (the control plane publishes many versions of the same endpoints).
    """
    if service.endpoint_slices:
        return slice_endpoints(service, port, pods)
    out = []
    for pod in pods:
        if pod.namespace != service.namespace or not selector_matches(service.selector,
                                                                      pod.labels):
            continue
        target = port.target_port
        if isinstance(target, str):
            if target not in pod.container_ports:
                continue
            target = pod.container_ports[target]
        target = int(target)
        if made is None:
            out.append(Endpoint(pod.index, pod.node, pod.ip, target))
            continue
        endpoint = made.get((pod.index, target))
        if endpoint is None:
            endpoint = made[pod.index, target] = Endpoint(pod.index, pod.node, pod.ip, target)
        out.append(endpoint)
    return tuple(sorted(out, key=_by_key))


def _by_key(endpoint: Endpoint) -> str:
    return endpoint.key


def slice_endpoints(service: Service, port: ServicePort, pods: list[Pod]) -> tuple[Endpoint, ...]:
    """Endpoints of a selector-less Service from its EndpointSlices: the slice port with
    the Service port's name and protocol gives the target port, each address the pod
    placed there, if it is among ``pods`` (the caller's ready, or serving-terminating,
    ones). A slice endpoint neither ready nor serving is never used."""
    by_ip = {pod.ip: pod for pod in pods}
    out: list[Endpoint] = []
    for sl in service.endpoint_slices:
        target = next((sp.port for sp in sl.ports
                       if sp.name == port.name and sp.protocol == port.protocol), None)
        if target is None:
            continue
        for ep in sl.endpoints:
            pod = by_ip.get(int(ipaddress.IPv4Address(ep.address)))
            if pod is None:
                continue
            if ep.ready or ep.serving:
                out.append(Endpoint(pod.index, pod.node, pod.ip, target))
    return tuple(sorted(set(out), key=_by_key))


def slice_hints(service: Service, endpoints: tuple[Endpoint, ...],
                nodes: list[Node]) -> tuple[dict[int, str] | None, dict[int, int] | None]:
    """The hints a hand-made slice carries (forZones, forNodes), per endpoint pod; a map
    is None when no endpoint has that kind of hint."""
    node_index = {n.name: n.index for n in nodes}
    zones: dict[int, str] = {}
    on_nodes: dict[int, int] = {}
    by_ip = {e.ip: e.pod for e in endpoints}
    for sl in service.endpoint_slices:
        for ep in sl.endpoints:
            pod = by_ip.get(int(ipaddress.IPv4Address(ep.address)))
            if pod is None:
                continue
            if ep.hint_zones:
                zones[pod] = ep.hint_zones[0]
            if ep.hint_nodes and ep.hint_nodes[0] in node_index:
                on_nodes[pod] = node_index[ep.hint_nodes[0]]
    return zones or None, on_nodes or None


def build_cluster(scenario: Scenario) -> Cluster:
    spec = scenario.spec
    nodes: list[Node] = []
    for i, ns in enumerate(spec.cluster.nodes):
        ip = int(ipaddress.IPv4Address(ns.address)) if ns.address else DEFAULT_NODE_BASE + i
        cidr = ipaddress.IPv4Network(ns.pod_cidr) if ns.pod_cidr else default_pod_cidr(i)
        node = Node(i, ns.name, ns.zone, ip, cidr)
        nodes.append(node)
    indexes = {node.name: node.index for node in nodes}
    links: dict[tuple[int, int], Distribution] = {}
    for link in spec.cluster.network.links:
        a, b = indexes[link.from_], indexes[link.to]
        links[(a, b)] = links[(b, a)] = link.latency

    cluster = Cluster(nodes, [], [], links, spec.cluster.network.same_node,
                      spec.cluster.network.same_zone, spec.cluster.network.cross_zone,
                      node_indexes=indexes)
    if spec.cluster.cluster_cidr:
        cluster.cluster_cidr = ipaddress.IPv4Network(spec.cluster.cluster_cidr)
    cluster.service_cidr = spec.cluster.service_cidr
    for name, workload in spec.workloads.items():
        if workload.pods is not None:
            place_explicit_pods(scenario, cluster, name)
    plan = initial_placement(scenario)  # spread, counts, or the scheduler's choices
    cluster.placer, cluster.pending = plan.placer, plan.pending
    unplaced: dict[int, int] = {}  # node index -> pods its pod CIDR had no address for
    for dep_name in scenario.deployments:
        workload = spec.workloads[dep_name]
        if workload.pods is not None:
            continue
        for node_index in plan.nodes.get(dep_name, []):
            if node_index in unplaced:  # already full: no need to scan it again
                unplaced[node_index] += 1
                continue
            try:
                new_pod(scenario, cluster, dep_name, node_index)
            except ValueError:
                unplaced[node_index] = 1
    if unplaced:  # one problem per node, however many pods missed it
        raise ScenarioError([_full_cidr_problem(nodes[i], count)
                             for i, count in sorted(unplaced.items())])
    pods = cluster.pods

    allocation = allocate_scenario(list(scenario.services.values()), spec.cluster,
                                   spec.run.seed)
    if allocation.rejected:  # the loader reports these; a scenario changed in Python
        raise ScenarioError([Problem(None, f"Service {r.service!r}", str(r))
                             for r in allocation.rejected])
    service_ports: list[ServicePortModel] = []
    for svc in scenario.services.values():
        given = allocation.services[svc.name]
        for i, port in enumerate(svc.ports):
            # a ClusterIP Service has no NodePort (0): in-cluster clients reach its ClusterIP
            service_ports.append(ServicePortModel(
                len(service_ports), svc, port, given.node_ports[i],
                endpoints_for(svc, port, pods), given.health_check_node_port))
    cluster.service_ports = service_ports
    cluster.endpoints_over = len(pods)
    return cluster


def _full_cidr_problem(node: Node, unplaced: int) -> Problem:
    """The problem for a node whose pod CIDR ran out: how many pods did not fit, and the
    CIDR's room (one line per node, not one per pod)."""
    return Problem(None, f"cluster.nodes[{node.index}].podCIDR",
                   f"pod CIDR {node.pod_cidr} of node {node.name} has room for "
                   f"{pod_capacity(node.pod_cidr)} pods; {unplaced} more did not fit; give "
                   "the node a larger podCIDR or spread the pods over more nodes")


def new_pod(scenario: Scenario, cluster: Cluster, deployment: str,
            node_index: int | None = None, live: set[int] | None = None) -> Pod:
    """Create a pod of ``deployment`` with the next free address of its node's pod CIDR
    (.1 is the bridge). Without ``node_index`` it goes to the node with the fewest
    ``live`` pods of the Deployment (a spread, as the scheduler's topology spreading)."""
    dep = scenario.deployments[deployment]
    workload = scenario.spec.workloads[deployment]
    if node_index is None:
        counts = [0] * len(cluster.nodes)
        for p in cluster.pods:
            if p.deployment == deployment and (live is None or p.index in live):
                counts[p.node] += 1
        node_index = counts.index(min(counts))
    node = cluster.nodes[node_index]
    host = cluster.next_host.get(node_index, 2)
    base = int(node.pod_cidr.network_address)
    while base + host in cluster.taken_ips:
        host += 1
    if host >= node.pod_cidr.num_addresses - 1:
        raise ValueError(f"pod CIDR {node.pod_cidr} of node {node.name} has no address "
                         f"left for another {deployment} pod")
    cluster.next_host[node_index] = host + 1
    ordinal = cluster.made.get(deployment, 0)
    cluster.made[deployment] = ordinal + 1
    template = cluster.templates.get(deployment)
    if template is None:
        template = cluster.templates[deployment] = (
            dict(dep.pod_labels), {c.name: c.container_port for c in dep.container_ports
                                   if c.name})
    labels, ports = template
    pod = Pod(len(cluster.pods), f"{deployment}-{ordinal}", deployment, node_index,
              int(node.pod_cidr.network_address) + host, labels,
              workload.workers, workload.queue_limit, workload.service_time, ports,
              dep.namespace)
    cluster.pods.append(pod)
    return pod


def pod_capacity(cidr: ipaddress.IPv4Network) -> int:
    """Pods a pod CIDR holds: hosts .2 up to the one below broadcast (.1 is the bridge)."""
    return max(cidr.num_addresses - 3, 0)


def address_problems(scenario: Scenario) -> list[tuple[list[object], str]]:
    """(field path, message) for every address clash or full pod CIDR the run would meet.

    Node addresses must be unique and pod CIDRs disjoint; each node's pod CIDR must hold
    every pod ever placed on it (pod addresses are not reused; scale events, rollouts
    and evictions counted by :mod:`npsim.cluster.pod_room`), plus in-cluster client pods
    that take addresses from its top and hand-placed pods' addresses inside it.
    """
    spec = scenario.spec
    nodes = spec.cluster.nodes
    out: list[tuple[list[object], str]] = []
    if len(nodes) > MAX_DEFAULT_POD_CIDRS and any(n.pod_cidr is None for n in nodes):
        return [(["cluster", "nodes"], f"{len(nodes)} nodes: default pod CIDRs (a /24 each "
                 f"from 10.0.0.0/8) run out after {MAX_DEFAULT_POD_CIDRS}; give podCIDR for "
                 "every node")]
    owner: dict[int, int] = {}
    cidrs: list[tuple[int, int, int]] = []
    nets: list[ipaddress.IPv4Network] = []
    cluster_net = (ipaddress.IPv4Network(spec.cluster.cluster_cidr)
                   if spec.cluster.cluster_cidr else None)
    for i, ns in enumerate(nodes):
        ip = int(ipaddress.IPv4Address(ns.address)) if ns.address else DEFAULT_NODE_BASE + i
        if ip in owner:
            out.append((["cluster", "nodes", i, "address"],
                        f"address {ip_str(ip)} is also node {nodes[owner[ip]].name!r}'s"))
        owner.setdefault(ip, i)
        net = ipaddress.IPv4Network(ns.pod_cidr) if ns.pod_cidr else default_pod_cidr(i)
        if cluster_net is not None and not ns.pod_cidr and not net.subnet_of(cluster_net):
            # a given podCIDR outside it is refused by the schema; a default one here
            out.append((["cluster", "nodes", i],
                        f"node {ns.name!r} has no podCIDR and its default {net} is outside "
                        f"clusterCIDR {cluster_net}: kube-proxy would take its pods' "
                        "traffic for outside traffic; give the node a podCIDR inside it"))
        cidrs.append((int(net.network_address), int(net.broadcast_address), i))
        nets.append(net)
    cidrs.sort()
    for (_, end, a), (start, _, b) in zip(cidrs, cidrs[1:], strict=False):
        if start <= end:
            first, second = sorted((a, b))
            out.append((["cluster", "nodes", second, "podCIDR"],
                        f"pod CIDR overlaps node {nodes[first].name!r}'s; pods would share "
                        "addresses"))
    if not out:  # a hand-placed pod at the bridge's (or network, broadcast) address
        out += reserved_pod_addresses(spec, nets)
    if out:
        return out
    capacity = [0] * len(nodes)
    for start, end, i in cidrs:
        capacity[i] = max(end - start + 1 - 3, 0)
    for client in spec.clients:  # client pods take addresses from the top of the CIDR
        if client.source is not None and client.source.kind == "pod" \
                and client.source_ip_base is None:
            home = next((i for i, n in enumerate(nodes) if n.name == client.source.node), None)
            if home is not None:
                capacity[home] -= client.n_source_ips
    taken = sorted(int(ipaddress.IPv4Address(pod.ip)) for w in spec.workloads.values()
                   for pod in (w.pods or []))
    for start, end, i in cidrs:  # hand-placed addresses new pods must skip
        capacity[i] -= bisect.bisect_left(taken, end) - bisect.bisect_left(taken, start + 2)
    placed = pods_made(scenario, capacity)
    made, where = placed.count, placed.where
    for i, count in enumerate(made):
        if count > capacity[i]:
            node = nodes[i]
            cidr = node.pod_cidr or str(default_pod_cidr(i))
            out.append((where.get(i, ["cluster", "nodes", i]),
                        f"node {node.name!r}: pod CIDR {cidr} has room for "
                        f"{max(capacity[i], 0)} pods but "
                        + (f"up to {count} could be placed there over the run (rollouts and "
                           "replacements of evicted pods included; "
                           if i in placed.bounded else
                           f"{count} would be placed there over the run (")
                        + "addresses are not reused); give the node a larger podCIDR "
                        "or spread the pods over more nodes"))
    return out


def place_explicit_pods(scenario: Scenario, cluster: Cluster, workload_name: str) -> None:
    """The hand-placed pods of a workload (``workloads.NAME.pods``), at their own
    addresses on their own nodes, with their endpoint conditions. Labels, ports and
    namespace come from the workload's Deployment, else from the workload itself."""
    workload = scenario.spec.workloads[workload_name]
    dep = scenario.deployments.get(workload_name)
    labels = dict(dep.pod_labels) if dep else dict(workload.labels or {})
    namespace = dep.namespace if dep else (workload.namespace or "default")
    ports = {c.name: c.container_port for c in dep.container_ports if c.name} if dep else {}
    for spec in workload.pods or []:
        ip = int(ipaddress.IPv4Address(spec.ip))
        ordinal = cluster.made.get(workload_name, 0)
        cluster.made[workload_name] = ordinal + 1
        ready = spec.ready
        pod = Pod(len(cluster.pods), spec.name or f"{workload_name}-{ordinal}", workload_name,
                  cluster.node_index(spec.node), ip, labels, workload.workers,
                  workload.queue_limit, workload.service_time, ports, namespace,
                  ready=ready, serving=ready if spec.serving is None else spec.serving,
                  terminating=spec.terminating)
        cluster.pods.append(pod)
        cluster.taken_ips.add(ip)
