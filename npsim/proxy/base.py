"""kube-proxy on one node: its own view of the endpoints and its own choices.

Every node runs a separate :class:`KubeProxy` with a private endpoint table per
Service port and a private random stream. Views are programmed per node
(:meth:`KubeProxy.program`), so a later sync-delay model can let nodes disagree for a
while; per-node IPVS counters and affinity tables hang off the same object.

A mode supplies an :class:`EndpointTable` subclass: ``pick()`` returns the endpoint a
*new* connection goes to (established connections follow conntrack and never ask).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from npsim.cluster.model import Endpoint, Node, ServicePortModel


class EndpointTable:
    """The endpoints one node's kube-proxy has programmed for one Service port."""

    __slots__ = ("service_port", "endpoints", "pods", "nodes", "n")

    def __init__(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...]) -> None:
        self.service_port = service_port
        self.endpoints = endpoints
        self.pods = [e.pod for e in endpoints]
        self.nodes = [e.node for e in endpoints]
        self.n = len(endpoints)

    def pick(self) -> int:
        """Index into ``endpoints`` for a new connection (called only when ``n > 0``)."""
        raise NotImplementedError


class KubeProxy:
    mode = "base"
    table_class: type[EndpointTable] = EndpointTable

    def __init__(self, node: Node, rng: np.random.Generator) -> None:
        self.node = node
        self.rng = rng
        self.tables: dict[int, EndpointTable] = {}

    def program(self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...]) -> None:
        """Install this node's view of a Service port's endpoints (a sync)."""
        self.tables[service_port.index] = self.make_table(service_port, endpoints)

    def make_table(
        self, service_port: ServicePortModel, endpoints: tuple[Endpoint, ...]
    ) -> EndpointTable:
        return self.table_class(service_port, endpoints)

    def first_packet_cost(self) -> float:
        """Seconds a new connection's first packet spends in this node's rules."""
        return 0.0


ProxyFactory = Callable[[Node, np.random.Generator], KubeProxy]
