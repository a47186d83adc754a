"""Client populations: who sends, when, over which connection, to which node.

A population owns its clients' connection state. kube-proxy chooses an endpoint only
when a connection is opened; the next ``requestsPerConnection - 1`` requests on it
follow conntrack to the same pod through the same node (only a connection's first packet
traverses the nat table: kube-proxy ``pkg/proxy/iptables/proxier.go``). That is why
keep-alive makes the per-request spread lumpier.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable

import numpy as np
import simpy

from npsim.cluster.model import Node
from npsim.dists import Sampler, batched
from npsim.scenario.schema import ClientSpec, EntrySpec

SendFn = Callable[["Population", int, float], bool]


# --- how a client reaches a node -------------------------------------------------------


class FixedEntry:
    """Every connection goes to one named node."""

    def __init__(self, node: int) -> None:
        self.node = node

    def __call__(self, client: int, now: float) -> int:
        return self.node


class RandomEntry:
    """A uniformly random node per new connection (an even L4 balancer in front)."""

    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self._next = batched(lambda k: rng.integers(0, n_nodes, k))

    def __call__(self, client: int, now: float) -> int:
        return self._next()


class DnsEntry:
    """DNS round-robin over every node's address; each client caches its answer for a TTL.

    ``rotate`` answers like a classic round-robin server (the list rotates by one per
    query and the client takes the first address); ``random`` like CoreDNS
    ``loadbalance`` (shuffled answer; https://coredns.io/plugins/loadbalance/). Resolvers
    and runtimes cache the answer, so a client pins to one address for about the TTL.
    """

    def __init__(
        self, n_nodes: int, n_clients: int, ttl: float, order: str, rng: np.random.Generator
    ) -> None:
        self.n_nodes = n_nodes
        self.ttl = ttl
        self.cached = [0] * n_clients
        self.expires = [-math.inf] * n_clients
        self.queries = 0
        self._random = batched(lambda k: rng.integers(0, n_nodes, k)) if order == "random" else None

    def __call__(self, client: int, now: float) -> int:
        if now >= self.expires[client]:
            node = self._random() if self._random is not None else self.queries % self.n_nodes
            self.queries += 1
            self.cached[client] = node
            self.expires[client] = now + self.ttl
        return self.cached[client]


def make_entry(
    entry: EntrySpec, node_index: Callable[[str], int], n_nodes: int, n_clients: int,
    rng: np.random.Generator,
) -> Callable[[int, float], int]:
    if entry.node is not None:
        return FixedEntry(node_index(entry.node))
    if entry.dns is not None:
        return DnsEntry(n_nodes, n_clients, entry.dns.ttl, entry.dns.order, rng)
    return RandomEntry(n_nodes, rng)


# --- addresses ------------------------------------------------------------------------

# RFC 6598 shared space for NAT gateways, RFC 5737 TEST-NET-1 for balancers in front
NAT_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
BALANCER_BASE = int(ipaddress.IPv4Address("192.0.2.10"))


class Addresses:
    """Per source address of a population: the client's own address and the address the
    receiving node sees (after NAT gateways or a source-NATing balancer)."""

    def __init__(self, client: np.ndarray, wire: np.ndarray, home: int = -1) -> None:
        self.client = client
        self.wire = wire
        self.home = home  # node index of in-cluster clients

    @classmethod
    def external(cls, spec: ClientSpec, base: int, rng: np.random.Generator | None,
                 population: int = 0) -> Addresses:
        n = spec.n_source_ips
        client = base + np.arange(n, dtype=np.int64)
        wire = client.copy()
        if spec.nat_gateways:
            order = rng.permutation(n) if rng is not None else np.arange(n)
            start = 0
            for g, gateway in enumerate(spec.nat_gateways):
                count = round(gateway.share * n)
                members = order[start:start + count]
                start += count
                first = NAT_BASE + (population << 12) + (g << 8) + 1
                wire[members] = first + np.arange(len(members)) % gateway.addresses
        if spec.balancer is not None and spec.balancer.snat:
            wire = BALANCER_BASE + (population << 8) + np.arange(n) % spec.balancer.addresses
        return cls(client, wire)

    @classmethod
    def in_cluster(cls, spec: ClientSpec, node: Node, taken: int = 0) -> Addresses:
        """Client pods take addresses from the top of their node's pod CIDR, below the
        ``taken`` ones of earlier populations; a node's processes send from its address."""
        n = spec.n_source_ips
        assert spec.source is not None
        if spec.source.kind == "host":
            client = np.full(n, node.ip, dtype=np.int64)
        elif spec.source_ip_base is not None:  # chosen addresses: e.g. the same pods as
            first = int(ipaddress.IPv4Address(spec.source_ip_base))  # another population
            client = first + np.arange(n, dtype=np.int64)
        else:
            top = int(node.pod_cidr.broadcast_address) - 1 - taken
            client = top - np.arange(n, dtype=np.int64)
        return cls(client, client.copy(), node.index)


# --- populations ------------------------------------------------------------------------


class Population:
    """Connection state shared by open- and closed-loop populations."""

    closed = False

    def __init__(
        self,
        index: int,
        spec: ClientSpec,
        n_slots: int,
        entry: Callable[[int, float], int],
        service_port: int,
        rtt: Sampler,
        ip_base: int,
        addresses: Addresses | None = None,
    ) -> None:
        self.index = index
        self.spec = spec
        self.name = spec.name
        self.per_connection = spec.requests_per_connection
        self.entry = entry
        self.service_port = service_port
        self.rtt = rtt
        self.ip_base = ip_base
        self.n_ips = spec.n_source_ips
        self.address = spec.entry.address
        self.connect_timeout = spec.connect_timeout
        # per client slot: requests left on the open connection, its id, node and endpoint
        self.remaining = [0] * n_slots
        self.conn_id = [0] * n_slots
        self.conn_entry = [0] * n_slots
        self.conn_pod = [-1] * n_slots
        self.conn_pod_node = [-1] * n_slots
        self.conn_snat = [True] * n_slots
        # who sends: external, a pod on a node, or a node itself; and to what
        self.kind = spec.source.kind if spec.source is not None else "external"
        self.target = spec.target
        self.home = addresses.home if addresses is not None else -1
        if addresses is None:
            addresses = Addresses.external(spec, ip_base, None)
        self.client_ips = addresses.client
        self.wire_ips = addresses.wire.tolist()  # what the receiving node sees

    def start(self, env: simpy.Environment, send: SendFn) -> None:
        raise NotImplementedError

    def done(self, request: int, slot: int, t_end: float) -> None:
        """The client saw the end of a request (response or failure)."""


class OpenLoop(Population):
    """Poisson arrivals at a piecewise-constant rate, each from a random client IP."""

    def __init__(self, *args, arrivals: np.random.Generator, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.steps = self.spec.arrival.steps()
        self._unit_exp = batched(arrivals.standard_exponential)
        n = self.n_ips
        self._pick = batched(lambda k: arrivals.integers(0, n, k))

    def next_time(self, t: float) -> float:
        """Next arrival after ``t``: a unit exponential spent against the rate schedule
        (exact for piecewise-constant rates, by memorylessness)."""
        mass = self._unit_exp()
        steps = self.steps
        if len(steps) == 1:
            return t + mass / steps[0][1]
        seg = max(i for i, (at, _) in enumerate(steps) if at <= t)
        while True:
            rate = steps[seg][1]
            end = steps[seg + 1][0] if seg + 1 < len(steps) else math.inf
            if rate > 0 and t + mass / rate < end:
                return t + mass / rate
            if end == math.inf:
                return math.inf
            mass -= (end - t) * rate
            t = end
            seg += 1

    def start(self, env: simpy.Environment, send: SendFn) -> None:
        self.env = env
        self.send = send
        if len(self.steps) == 1:  # a constant rate: the short path
            self._arrive = self._arrive_constant  # type: ignore[method-assign]
        self._schedule(0.0)

    def _arrive_constant(self, event: simpy.Event) -> None:
        env = self.env
        now = env._now
        if self.send(self, self._pick(), now):
            gap = (now + self._unit_exp() / self.steps[0][1]) - now
            env.timeout(gap).callbacks.append(self._arrive_constant)

    def _schedule(self, t: float) -> None:
        nxt = self.next_time(t)
        if nxt != math.inf:
            self.env.timeout(nxt - self.env._now).callbacks.append(self._arrive)

    def _arrive(self, event: simpy.Event) -> None:
        now = self.env._now
        if self.send(self, self._pick(), now):
            self._schedule(now)


class ClosedLoop(Population):
    """``users`` users, each sending its next request a think time after the last ends."""

    closed = True

    def __init__(self, *args, think: Sampler, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.think = think

    def start(self, env: simpy.Environment, send: SendFn) -> None:
        self.env = env
        self.send = send
        for user in range(len(self.remaining)):
            env.timeout(self.think(), user).callbacks.append(self._wake)

    def _wake(self, event: simpy.Event) -> None:
        self.send(self, event._value, self.env._now)

    def done(self, request: int, slot: int, t_end: float) -> None:
        delay = t_end - self.env._now + self.think()
        self.env.timeout(delay, slot).callbacks.append(self._wake)
