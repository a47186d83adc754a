"""kube-proxy on one node: its own view of the endpoints and its own choices.

Every node runs a separate :class:`KubeProxy` with a private endpoint table per
Service port, a private random stream and (IPVS) private connection counters. Views are
programmed per node (:meth:`KubeProxy.program`) at that node's own sync time, so nodes
disagree for a while after an endpoint change.

A mode supplies an :class:`EndpointTable` subclass whose ``pick`` returns the endpoint a
*new* connection goes to; established connections follow conntrack and never ask.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from npsim.cluster.model import Cluster, Endpoint, Node, ServicePortModel
from npsim.cluster.topology import Hints, cluster_set, local_set
from npsim.proxy.affinity import AffinityTable
from npsim.proxy.cost import cost_sampler, quantiles_at, table_for
from npsim.proxy.nodeport_addresses import NodePortAddresses, answering_kinds
from npsim.scenario.cluster_spec import ClusterSpec, KubeProxySpec

Columns = tuple[list[int], list[int], list[str], dict[str, int]]


class EndpointTable:
    """The endpoints one node's kube-proxy has programmed for one Service port.

    ``endpoints`` are in kube-proxy's order (lexicographic "IP:port",
    ``pkg/proxy/endpointslicecache.go``).
    """

    __slots__ = ("service_port", "endpoints", "pods", "nodes", "n", "keys", "index_of")

    def __init__(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...],
                 columns: Columns) -> None:
        self.service_port = service_port
        self.endpoints = endpoints
        # read-only columns of ``endpoints`` (:func:`endpoint_columns`), shared by every
        # node's table over the same endpoint tuple in a run (:class:`SharedColumns`)
        self.pods, self.nodes, self.keys, self.index_of = columns
        self.n = len(endpoints)

    def pick(self, client_ip: int, src_port: int, now: float) -> int:
        """Index into ``endpoints`` for a new connection (called only when ``n > 0``)."""
        raise NotImplementedError

    def retire(self) -> None:
        """The run is over: let go of random streams and their buffered draws."""

    # connection lifecycle, for modes that count connections (IPVS)
    def opened(self, key: str, now: float) -> None:
        """A connection to the endpoint "IP:port" ``key`` was established."""

    def closed(self, key: str, now: float) -> None:
        """A connection to ``key`` closed (the endpoint may be gone by now)."""


class Connection:
    """An established connection whose end a mode must hear of (IPVS counts each real
    server's connections): requests in flight on it, whether its client has sent all it
    will, and ``closer.closed(key, now)`` to call once it ends (``closer`` is the table,
    or a firewall's connlimit release wrapping it)."""

    __slots__ = ("in_flight", "all_sent", "closer", "key")

    @classmethod
    def of(cls, closer: Any, key: str) -> Connection:
        """A new connection, nothing sent on it yet. (No ``__init__``: IPVS makes one per
        connection on the hot path, where the call of an ``__init__`` cost 50 ns more
        than setting the four slots; :meth:`IpvsProxy.opened` sets them inline.)"""
        conn = cls()
        conn.in_flight = 0
        conn.all_sent = False
        conn.closer = closer
        conn.key = key
        return conn

    def close(self, now: float) -> None:
        """The connection is over (its last answer came, or it broke)."""
        self.closer.closed(self.key, now)


def endpoint_columns(endpoints: tuple[Endpoint, ...]) -> Columns:
    """Pod, node, "IP:port" and "IP:port" -> index columns of an endpoint tuple."""
    keys = [e.key for e in endpoints]
    return ([e.pod for e in endpoints], [e.node for e in endpoints], keys,
            {k: i for i, k in enumerate(keys)})


class SharedColumns:
    """One run's endpoint columns, made once per endpoint tuple for every node's tables.

    Every node's kube-proxy programs the same tuple of a Service port's endpoints (the
    control plane publishes one per version); building the columns per node cost
    O(nodes x endpoints) time and memory (1000 nodes x 10,000 pods: 10 million strings).
    The run's build (npsim/sim/build.py) makes one per simulation and gives it to that
    run's proxies, which let go of it when retired: nothing outlives the run, and two
    simulations in one process (a notebook, a sweep) never share one. Keyed by a tuple's
    identity while the tuple is held here, so the id cannot be reused.
    """

    __slots__ = ("_held", "__weakref__")

    #: tuples held at most; past it the cache starts again (only sharing is lost)
    LIMIT = 256

    def __init__(self) -> None:
        self._held: dict[int, tuple[tuple[Endpoint, ...], Columns]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def columns(self, endpoints: tuple[Endpoint, ...]) -> Columns:
        """:func:`endpoint_columns` of ``endpoints``, the same lists for the same tuple."""
        hit = self._held.get(id(endpoints))
        if hit is not None and hit[0] is endpoints:
            return hit[1]
        columns = endpoint_columns(endpoints)
        if len(endpoints) > 8:  # small tuples (per-node Local sets) are cheap: not held
            if len(self._held) >= self.LIMIT:
                self._held.clear()
            self._held[id(endpoints)] = (endpoints, columns)
        return columns


class ServiceView:
    """One node's programmed state for one Service port, per kind of traffic.

    ``cluster``: ready endpoints after topology filtering (Cluster policies and the
    short-circuit paths); ``local``: this node's ready endpoints (Local policies);
    ``external``: what outside traffic to the NodePort uses; ``internal``: what in-cluster
    ClusterIP traffic uses. ``reply_lost``: IPVS with externalTrafficPolicy Local and no
    local endpoint forwards to a remote pod without SNAT and the reply never returns
    (``pkg/proxy/ipvs/proxier.go``). ``affinity`` survives syncs.
    """

    __slots__ = ("cluster", "local", "external", "internal", "any", "reply_lost", "affinity",
                 "affinity_internal", "local_policy", "local_ready")

    def __init__(self) -> None:
        self.any = False
        self.reply_lost = False
        self.local_policy = False
        # this node's ready endpoints (terminating excluded): what the healthCheckNodePort
        # reports (pkg/proxy/healthcheck service_health.go: 200 iff > 0)
        self.local_ready = 0
        self.affinity: AffinityTable | None = None  # NodePort traffic
        self.affinity_internal: AffinityTable | None = None  # ClusterIP traffic


@dataclass(frozen=True, slots=True)
class ModeRules:
    """One kube-proxy mode's text for ``npsim explain``: every mode's rules module
    exposes one, ``RULES``, with these same signatures.

    ``tables(proxy, cluster, service)``: what the node's kube-proxy programs, for every
    Service port or one Service's; ``arrival(proxy, cluster, sp, table, other_services)``:
    a new NodePort connection's steps up to kube-proxy's choice (``table`` is the one the
    connection meets, None when the Service has no endpoints; ``other_services`` the
    Services the scenario does not model); ``choice(sp, table, choice, client_ip,
    affinity)``: how index ``choice`` of ``table`` is chosen (``affinity``: the Service
    has ClientIP affinity); ``masquerade``: how the node rewrites the source;
    ``closed_nodeport``: where a NodePort packet outside nodePortAddresses stops.
    """

    tables: Callable[[KubeProxy, Cluster, str | None], str]
    arrival: Callable[[KubeProxy, Cluster, ServicePortModel, EndpointTable | None, int],
                      Iterable[str]]
    choice: Callable[[ServicePortModel, EndpointTable, int, int, bool], Iterable[str]]
    masquerade: str
    #: where a NodePort packet to an address outside nodePortAddresses stops ({ip},
    #: {port}: the address and the NodePort)
    closed_nodeport: str


class KubeProxy:
    """Base of every mode. Subclasses set ``mode`` and ``make_table``.

    The engine's connect path (npsim/sim/engine.py ``_connect``) is one for every mode
    and knows no mode by name; a mode differs only in these hooks:

    * which addresses answer: :meth:`accepts`; which table and NAT: :meth:`route`;
    * choose: the table's ``pick`` (made by :meth:`make_table`);
    * dial: :meth:`redial` when the chosen endpoint has no process;
    * track: :meth:`opened` returns a :class:`Connection` to close when it ends (IPVS);
    * deliver: ``relays_connections`` (requests go through the node's relay process);
    * costs: :meth:`first_packet_cost` per new connection, :meth:`sync_seconds` per sync;
    * rule text: ``rules``, what ``npsim explain`` prints (npsim/proxy/rules/<mode>.py).
    """

    mode = "base"
    #: the text of what this mode programs, for ``npsim explain`` (each mode sets it)
    rules: ClassVar[ModeRules]
    #: modes that must hear of every request's end (IPVS counts open connections):
    #: the engine then reports ends (see :meth:`opened`)
    counts_connections = False
    #: masquerade even for a same-node pod (userspace proxies every connection itself)
    pod_sees_node = False
    #: ``-m recent`` lists hold 100 addresses (iptables only)
    affinity_cap: int | None = None
    #: pod traffic to a Local NodePort takes the Cluster set (iptables/nftables, not IPVS)
    short_circuits_pods = True
    #: ClusterIP and NodePort traffic meet separate schedulers and counters (IPVS)
    separate_virtual_servers = False
    #: Local policy with no local endpoint: forward to a remote one unNATed, so the
    #: reply is lost (IPVS), rather than drop
    local_misses_go_remote = False
    #: the kube-proxy process itself carries every connection (userspace): requests go
    #: through the node's relay (npsim/sim/pods.py Relay) on their way to the pod
    relays_connections = False
    #: the host chains a NodePort packet to a pod traverses, as node firewalls see it:
    #: DNAT in PREROUTING, then FORWARD to the pod (iptables, nftables); IPVS and the
    #: userspace relay take the packet in INPUT instead
    firewall_chains: tuple[str, ...] = ("PREROUTING", "FORWARD")
    #: KUBE-FORWARD, first in FORWARD, accepts the masquerade-marked packet before the
    #: user's own FORWARD rules (iptables mode's filter table)
    forward_accepts_marked = False
    #: the user's ``--dport`` rules see the NodePort (False: the relay's own port)
    input_sees_node_port = True

    #: kube-proxy's own flags (localhost NodePorts, --random-fully, nfacct counters)
    settings: KubeProxySpec = KubeProxySpec()

    @classmethod
    def create(cls, node: Node, rng: np.random.Generator, spec: ClusterSpec) -> KubeProxy:
        """This mode's kube-proxy for a node, configured from the scenario's cluster."""
        proxy = cls.make(node, rng, spec)
        proxy.settings = spec.kube_proxy
        secondary = spec.nodes[node.index].secondary_address
        proxy.secondary_ip = int(ipaddress.IPv4Address(secondary)) if secondary else None
        return proxy

    @classmethod
    def make(cls, node: Node, rng: np.random.Generator, spec: ClusterSpec) -> KubeProxy:
        """The mode's constructor with the settings it takes from the cluster."""
        return cls(node, rng)

    def __init__(self, node: Node, rng: np.random.Generator) -> None:
        self.node = node
        self.rng = rng
        self.sync_delay = 0.0  # this node applies endpoint changes this much later
        self.serves_clusterip = True  # build ClusterIP-only state (IPVS): False saves setup
        self.views: dict[int, ServiceView] = {}
        self.tables: dict[int, EndpointTable] = {}  # the external table per Service port
        self._tables: dict[tuple[int, str], EndpointTable] = {}
        self.cost: Callable[[], float] = lambda: 0.0
        # the run's columns cache (:func:`~npsim.sim.build.make_proxies`);
        # None, as for a proxy made on its own: every table makes its own columns
        self.shared_columns: SharedColumns | None = None
        # the node's secondaryAddress (None: not named; npsim/proxy/nodeport_addresses.py)
        self.secondary_ip: int | None = None
        self._answers_on: frozenset[str] | None = None  # worked out at the first accepts

    def program(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...],
                now: float = 0.0, hints: Hints | None = None,
                terminating: tuple[Endpoint, ...] = ()) -> None:
        """Install this node's view of a Service port's endpoints (one sync).

        ``endpoints`` are the ready ones; ``terminating`` the serving-terminating ones,
        which kube-proxy uses only as a fallback (KEP-1669, ``CategorizeEndpoints`` in
        pkg/proxy/topology.go): under Cluster policy when no endpoint is ready anywhere,
        under Local policy per node when the node has no ready local endpoint.
        Not-ready endpoints are never used.
        """
        svc = service_port.service
        view = self.views.get(service_port.index) or ServiceView()
        view.any = bool(endpoints) or bool(terminating)
        cluster = cluster_set(endpoints, hints, self.node) if hints else endpoints
        if not endpoints and terminating:
            cluster = terminating
        view.cluster = self._table(service_port, "cluster", cluster, now)
        local_ext = svc.external_traffic_policy == "Local"
        local_int = svc.internal_traffic_policy == "Local"
        view.local_policy = local_ext
        if local_ext or local_int:
            ready_here = local_set(endpoints, self.node)
            view.local_ready = len(ready_here)
            local = ready_here or local_set(terminating, self.node)
            view.local = self._table(service_port, "local", local, now)
        # IPVS's ClusterIP virtual server with no local endpoint takes the Cluster ones,
        # which exist only for a Service that is also reached from outside
        # (pkg/proxy/ipvs/proxier.go syncEndpoint, topology.go CategorizeEndpoints)
        if local_int and not (self.local_misses_go_remote and view.local.n == 0 and (
                service_port.node_port or svc.externally_accessible)):
            view.internal = view.local
        elif self.separate_virtual_servers and self.serves_clusterip:
            # IPVS: the ClusterIP virtual server has its own scheduler state
            view.internal = self._table(service_port, "internal", cluster, now)
        else:
            view.internal = view.cluster
        view.reply_lost = False
        if local_ext:
            view.external = view.local
            if view.local.n == 0 and view.any and self.local_misses_go_remote:
                view.external = self._table(service_port, "remote", endpoints or terminating,
                                            now)
                view.reply_lost = True
        else:
            view.external = view.cluster
        if svc.session_affinity == "ClientIP" and view.affinity is None:
            view.affinity = AffinityTable(float(svc.affinity_timeout), self.affinity_cap)
            # iptables/nftables pin per endpoint chain, whichever Service IP was used; IPVS
            # keeps a template per virtual server (pkg/proxy/ipvs/proxier.go)
            view.affinity_internal = (AffinityTable(float(svc.affinity_timeout),
                                                    self.affinity_cap)
                                      if self.separate_virtual_servers else view.affinity)
        self.views[service_port.index] = view
        self.tables[service_port.index] = view.external

    def route(self, view: ServiceView, source: str, clusterip: bool,
              from_this_node: bool) -> tuple[EndpointTable, bool, bool]:
        """Which endpoint table a new connection uses, whether it is source-NATed, and
        whether its reply is lost (``pkg/proxy/{iptables,ipvs}/proxier.go``, ``topology.go``).

        ``source`` is ``external``, ``pod`` or ``host``; ``clusterip`` marks in-cluster
        traffic to the ClusterIP; ``from_this_node`` a host sending to its own NodePort.
        """
        if clusterip:  # pod -> ClusterIP: internalTrafficPolicy; the pod IP is kept
            return view.internal, False, False
        if source == "pod" and view.local_policy:
            # iptables/nftables short-circuit pod traffic to the Cluster set without SNAT;
            # IPVS has one virtual server for every source: its local (or remote) set
            return (view.cluster if self.short_circuits_pods else view.external), False, False
        if source == "host" and from_this_node:  # the node to itself: masquerade + Cluster
            return view.cluster, True, False
        if view.local_policy:  # externalTrafficPolicy Local: no SNAT
            return view.external, False, view.reply_lost
        return view.external, True, False

    def _table(self, sp: ServicePortModel, kind: str, endpoints: tuple[Endpoint, ...],
               now: float) -> EndpointTable:
        table = self.make_table(sp, endpoints, self._tables.get((sp.index, kind)), now)
        self._tables[(sp.index, kind)] = table
        return table

    def make_table(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...],
                   previous: EndpointTable | None, now: float) -> EndpointTable:
        """This mode's table for ``endpoints`` (or ``previous``, updated in place), its
        columns from :meth:`columns`."""
        raise NotImplementedError

    def columns(self, endpoints: tuple[Endpoint, ...]) -> Columns:
        """The columns of ``endpoints`` for a new table: the run's shared ones."""
        shared = self.shared_columns
        return endpoint_columns(endpoints) if shared is None else shared.columns(endpoints)

    def first_packet_cost(self, spec: ClusterSpec, services: int,
                          generator: Callable[[str], np.random.Generator],
                          ) -> Callable[[], float] | None:
        """The sampler of what a new connection's first packet costs in this mode at
        ``services`` Services (npsim/proxy/cost.py), from its own stream; None: nothing
        (the mode's cost is elsewhere)."""
        override = spec.cost_model.get(self.mode)
        quantiles = quantiles_at(table_for(self.mode, override), services, floor=not override)
        return cost_sampler(quantiles, generator(f"cost/{self.node.name}"))

    def sync_seconds(self, spec: KubeProxySpec, services: int, endpoints_each: float) -> float:
        """How long one sync takes on this node (``syncBase``; iptables adds a cost per
        NAT rule it rewrites): the control plane's sync timing."""
        return spec.sync_base

    def redial(self, table: EndpointTable, choice: int, source: int, src_port: int,
               now: float, servers: Sequence[Any],
               affinity: AffinityTable | None) -> tuple[int, float] | None:
        """A new connection's endpoint ``choice`` has no process listening (crashed,
        exited, or its address is gone). The kernel modes forward the SYN and do not
        retry: None, the connection fails. Userspace overrides (it dials again).
        Otherwise: (endpoint finally used or -1 if every dial failed, time spent dialling).
        """
        return None

    def opened(self, table: EndpointTable, choice: int, now: float) -> Connection | None:
        """A connection to ``table``'s endpoint ``choice`` is established. Modes that
        count connections (IPVS) return its :class:`Connection`, which the engine closes
        when it ends; others None."""
        return None

    def retire(self) -> None:
        """The run is over: let go of the random streams and their buffered draws (at
        1000 nodes, 26 MB, as long as someone keeps the simulation: ``npsim explain``, a
        test, a notebook). The programmed tables stay, for inspection; nothing can be
        chosen any more."""
        self.rng = None  # type: ignore[assignment]
        self.cost = _retired
        self.shared_columns = None  # the run's cache goes with the run
        for table in self._tables.values():
            table.retire()

    #: whether NodePorts can answer on 127.0.0.1 at all (the userspace proxy's sockets
    #: can; nftables and IPVS never; iptables with --iptables-localhost-nodeports)
    def loopback_node_ports(self) -> bool:
        return True

    @property
    def nodeport_addresses(self) -> NodePortAddresses:
        """This node's ``--nodeport-addresses``, the mode's default when unset."""
        return NodePortAddresses.resolve(self.settings.node_port_addresses, self.mode,
                                         self.node.ip)

    def accepts(self, address_kind: str) -> bool:
        """Whether a NodePort answers on this kind of node address (primary, secondary,
        localhost): ``--nodeport-addresses`` (every local address when unset in
        iptables and IPVS, the primary one in nftables) less what the mode cannot serve
        (npsim/proxy/nodeport_addresses.py). Worked out once: the engine asks per
        connection of a client aiming off the primary address."""
        kinds = self._answers_on
        if kinds is None:
            kinds = self._answers_on = answering_kinds(
                self.nodeport_addresses, self.node, self.secondary_ip,
                self.loopback_node_ports())
        return address_kind in kinds


def _retired() -> float:
    raise RuntimeError("internal error: a kube-proxy was asked to choose after the run")
