"""kube-proxy on one node: its own view of the endpoints and its own choices.

Every node runs a separate :class:`KubeProxy` with a private endpoint table per
Service port, a private random stream and (IPVS) private connection counters. Views are
programmed per node (:meth:`KubeProxy.program`) at that node's own sync time, so nodes
disagree for a while after an endpoint change.

A mode supplies an :class:`EndpointTable` subclass whose ``pick`` returns the endpoint a
*new* connection goes to; established connections follow conntrack and never ask.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npsim.cluster.model import Endpoint, Node, ServicePortModel


class EndpointTable:
    """The endpoints one node's kube-proxy has programmed for one Service port.

    ``endpoints`` are in kube-proxy's order (lexicographic "IP:port",
    kubernetes-semantics.md 1.2).
    """

    __slots__ = ("service_port", "endpoints", "pods", "nodes", "n", "keys")

    def __init__(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...]) -> None:
        self.service_port = service_port
        self.endpoints = endpoints
        self.pods = [e.pod for e in endpoints]
        self.nodes = [e.node for e in endpoints]
        self.keys = [e.key for e in endpoints]
        self.n = len(endpoints)

    def pick(self, client_ip: int, src_port: int, now: float) -> int:
        """Index into ``endpoints`` for a new connection (called only when ``n > 0``)."""
        raise NotImplementedError

    # connection lifecycle, for modes that count connections (IPVS)
    def opened(self, key: str, now: float) -> None:
        """A connection to the endpoint "IP:port" ``key`` was established."""

    def closed(self, key: str, now: float) -> None:
        """A connection to ``key`` closed (the endpoint may be gone by now)."""


class KubeProxy:
    """Base of every mode. Subclasses set ``mode`` and ``make_table``."""

    mode = "base"
    #: modes that need open/close notifications per connection (IPVS counters)
    counts_connections = False
    #: masquerade even for a same-node pod (userspace proxies every connection itself)
    pod_sees_node = False

    def __init__(self, node: Node, rng: np.random.Generator) -> None:
        self.node = node
        self.rng = rng
        self.tables: dict[int, EndpointTable] = {}
        self.cost: Callable[[], float] = lambda: 0.0

    def program(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...],
                now: float = 0.0) -> None:
        """Install this node's view of a Service port's endpoints (one sync)."""
        self.tables[service_port.index] = self.make_table(
            service_port, endpoints, self.tables.get(service_port.index), now)

    def make_table(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...],
                   previous: EndpointTable | None, now: float) -> EndpointTable:
        raise NotImplementedError

    def accepts(self, address_kind: str) -> bool:
        """Whether a NodePort answers on this kind of node address (primary, secondary,
        localhost). iptables: every local address incl. 127.0.0.1 with the default
        ``--iptables-localhost-nodeports=true`` (kubernetes-semantics.md 1.11)."""
        return True


ProxyFactory = Callable[[Node, np.random.Generator], KubeProxy]
