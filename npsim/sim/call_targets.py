"""Where a pod's call is addressed: a Service's NodePort, its external or LoadBalancer
address, or a dependency outside the cluster (a workload's ``calls:`` with ``target``
or ``external``; npsim/sim/rpc.py makes the ClusterIP calls and the plans).

A call to a Service address takes the engine's in-cluster client path, the one a
``clients[]`` population with ``source: {pod: NODE}`` takes, so the kube-proxy rules
are the same code: only which node's kube-proxy receives the connection, and the way
there, differ (kube-proxy ``pkg/proxy/iptables/proxier.go``; ``nftables/proxier.go``
and ``ipvs/proxier.go`` match the same packets):

- ``target: nodePort`` on the caller's own node: the caller's node catches it. In
  KUBE-SERVICES the last rule jumps to KUBE-NODEPORTS for ``--dst-type LOCAL``
  destinations (nftables: ``fib daddr type local`` to the ``nodeports`` map; IPVS:
  a virtual server on each of the node's own addresses), and the node's own IP is
  local there. KUBE-EXT then applies: with ``externalTrafficPolicy: Cluster`` the
  connection is masqueraded ("masquerade traffic for ... external destinations") and
  any endpoint may serve it; with ``Local`` the "pod traffic for ... external
  destinations" rule (the local-traffic detector, ``-s clusterCIDR``) sends a pod's
  connection to the Cluster chain without SNAT, "as if it went up to an external
  balancer and came back". IPVS has no such rule: its Local virtual server keeps to
  the node's own endpoints.
- ``target: nodePort`` with ``node: OTHER``: the destination is another node's address,
  not local on the caller's node, so nothing there matches (no DNAT, no SNAT). The
  packet is routed to that node (a node-to-node hop, drawn on this call edge's own
  stream so that the kube-proxy's and the hop's draws stay those of the equivalent
  population) and that node's KUBE-NODEPORTS/KUBE-EXT pick the endpoint: its
  externalTrafficPolicy, its SNAT for Cluster, its view of the endpoints, its state
  (down, partitioned, a stopped kube-proxy). The caller pod's address is still in
  the cluster CIDR there, so Local short-circuits as above.
- ``target: externalIP`` / ``loadBalancerIP``: KUBE-SERVICES matches
  ``-d <externalIP|LB VIP> --dport <port>`` on every node, with no dst-type match, so
  the caller's own node short-circuits the connection to KUBE-EXT (or, with
  ``loadBalancerSourceRanges``, KUBE-FW, which drops a caller pod outside the ranges):
  it never leaves for the balancer. Only ingress IPs with ``ipMode: VIP`` are written
  (``pkg/proxy/serviceport.go``; KEP-1860): an ``ipMode: Proxy`` balancer is reached
  through its NodePorts, which is what a ``target: nodePort`` call models.

An ``external:`` call leaves the cluster through the caller's node, masqueraded to the
node's address (the CNI's or ip-masq-agent's MASQUERADE of traffic leaving the pod
network), travels the dependency's round trip, waits for one of its ``concurrency``
slots (first come, first served) and is served; a ``failureProbability`` share is
answered with an error (``external_error``). Timeouts, retries and ``onFailure`` are
the call's as for any call. The row has no pod: ``entry_node`` is the caller's node,
``snat`` is set (the frames' ``source_ip_seen`` is the node's address), ``network`` is
the round trip, ``service_start``/``service`` are the dependency's. A partitioned
caller node cannot reach it (``connect_timeout``).
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import simpy

from npsim.cluster.model import Cluster
from npsim.dists import Sampler, batched
from npsim.outcomes import COMPLETED, CONNECT_TIMEOUT, EXTERNAL_ERROR, FAILED
from npsim.scenario.calls_spec import CallSpec, ExternalSpec
from npsim.scenario.client_spec import EntrySpec
from npsim.sim.records import RequestLog
from npsim.sim.rpc import CallPopulation, CallRecords, edge_client

if TYPE_CHECKING:
    from npsim.streams import Streams


class CallEntry:
    """The node whose kube-proxy receives a NodePort call: the named one, or the
    caller's own (read when the connection opens)."""

    def __init__(self, pop: CallPopulation, node: int) -> None:
        self.pop = pop
        self.node = node

    def __call__(self, client: int, now: float) -> int:
        return self.node if self.node >= 0 else self.pop.home


class Leg:
    """The round trip from the caller's node to the node it addressed (a call to
    another node's IP:NodePort is routed there first); nothing on the same node."""

    def __init__(self, pop: CallPopulation, cluster: Cluster, node: int,
                 rng: np.random.Generator) -> None:
        self.pop = pop
        self.cluster = cluster
        self.node = node
        self.rng = rng
        self.samplers: dict[int, Sampler] = {}  # caller node -> its leg's sampler

    def __call__(self) -> float:
        home = self.pop.home
        if home == self.node:
            return 0.0
        sampler = self.samplers.get(home)
        if sampler is None:
            sampler = self.samplers[home] = self.cluster.hop_latency(
                home, self.node).sampler(self.rng)
        return sampler()


class AddressedCallPopulation(CallPopulation):
    """Calls to a Service's NodePort or external address. A LoadBalancer VIP with
    ``loadBalancerSourceRanges`` drops caller pods outside the ranges (KUBE-FW)."""

    def __init__(self, *args, ranges: tuple[str, ...] = (), **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.ranges = [ipaddress.IPv4Network(r) for r in ranges]
        if self.ranges:
            self.blocked = set()  # type: ignore[assignment]  # grows with the slots

    def slot(self, pod: int) -> int:
        known = pod in self.slot_of
        slot = super().slot(pod)
        if self.ranges and not known:
            ip = self.cluster.pods[pod].ip
            if not any(ipaddress.IPv4Address(ip) in net for net in self.ranges):
                self.blocked.add(ip)  # type: ignore[union-attr]
        return slot


class ExternalDependency:
    """A dependency outside the cluster: ``concurrency`` slots (None: as many as
    asked), a FIFO queue in front of them, a service time and an error share."""

    def __init__(self, env: simpy.Environment, spec: ExternalSpec,
                 rng: np.random.Generator) -> None:
        self.env = env
        self.free = spec.concurrency if spec.concurrency is not None else math.inf
        self.queue: deque[tuple[int, Callable[[int, float, float], None]]] = deque()
        service = spec.service_time
        self.service: Sampler = service.sampler(rng) if service is not None else (
            lambda: 0.0)
        self.p_error = spec.failure_probability
        self.coin = batched(rng.random) if self.p_error > 0 else (lambda: 1.0)

    def arrive(self, row: int, answer: Callable[[int, float, float], None]) -> None:
        """Call ``row`` reaches the dependency; ``answer(row, start, duration)`` when
        it has been served."""
        if self.free > 0:
            self.free -= 1
            self._serve(row, answer)
        else:
            self.queue.append((row, answer))

    def _serve(self, row: int, answer: Callable[[int, float, float], None]) -> None:
        start, duration = self.env.now, self.service()
        self.env.timeout(duration).callbacks.append(
            lambda _e: self._end(row, answer, start, duration))

    def _end(self, row: int, answer: Callable[[int, float, float], None], start: float,
             duration: float) -> None:
        if self.queue:
            self._serve(*self.queue.popleft())
        else:
            self.free += 1
        answer(row, start, duration)

    def fails(self) -> bool:
        return self.coin() < self.p_error


class ExternalCallPopulation(CallPopulation):
    """Calls of one edge to a dependency outside the cluster: they leave through the
    caller's node (masqueraded) and never meet a kube-proxy."""

    def __init__(self, *args, dependency: ExternalDependency, latency: Sampler,  # noqa: ANN002
                 **kwargs) -> None:  # noqa: ANN003
        super().__init__(*args, **kwargs)
        self.dependency = dependency
        self.latency = latency
        self.down: list[bool] = [False] * len(self.cluster.nodes)  # AddressedEdges.attach
        self.left: list[int] = []  # per slot: calls still to go on its connection
        self.conn_of: list[int] = []
        self.opened = 0

    def start(self, env: simpy.Environment, send: Callable) -> None:  # noqa: ARG002
        self._wire(env, self._send_out)

    def slot(self, pod: int) -> int:
        slot = super().slot(pod)
        if slot == len(self.left):
            self.left.append(0)
            self.conn_of.append(0)
        return slot

    def _send_out(self, pop: CallPopulation, slot: int, now: float) -> bool:
        log = self.log
        row = len(log.t_start)
        new = self.left[slot] == 0
        if new:  # a connection of its own: negative ids never meet the engine's
            self.opened += 1
            self.conn_of[slot] = -self.opened
            self.left[slot] = self.per_connection
        self.left[slot] -= 1
        home = self.home
        if self.down[home]:  # the caller's node is cut off: nothing gets out
            self.left[slot] = 0
            self._row(log, now, slot, home, new, 0.0)
            log.outcome[row] = FAILED
            log.reason[row] = CONNECT_TIMEOUT
            log.t_end[row] = now + self.connect_timeout
            self.done(row, slot, now + self.connect_timeout)
            return True
        rtt = self.latency()
        self._row(log, now, slot, home, new, rtt)
        self.env.timeout(rtt * 0.5).callbacks.append(
            lambda _e: self.dependency.arrive(row, self._answer))
        return True

    def _row(self, log: RequestLog, now: float, slot: int, home: int, new: bool,
             network: float) -> None:
        # as the engine's _append: the row's service, end and outcome are unwritten
        # (NaN, in flight) until known (npsim/sim/records.py)
        row = len(log.t_start)
        if row >= log.capacity:
            log.reserve()
        log.t_start.append(now)
        for column, value in ((log.population, self.index), (log.client, slot),
                              (log.conn, self.conn_of[slot]), (log.new_conn, int(new)),
                              (log.entry, home), (log.pod, -1), (log.network, network),
                              (log.hop, 0.0), (log.proxy, 0.0), (log.snat, 1)):
            column[row] = value

    def _answer(self, row: int, start: float, duration: float) -> None:
        log = self.log
        log.service_start[row] = start
        log.service[row] = duration
        end = self.env.now + log.network[row] * 0.5
        if self.dependency.fails():
            log.outcome[row] = FAILED
            log.reason[row] = EXTERNAL_ERROR
        else:
            log.outcome[row] = COMPLETED
        log.t_end[row] = end
        self.done(row, log.client[row], end)


class AddressedEdges:
    """Makes the call edges whose call is not to a ClusterIP (rpc.make_plans' hook):
    their client spec, population, name and streams."""

    def __init__(self, cluster: Cluster, env: simpy.Environment, log: RequestLog,
                 streams: Streams, records: CallRecords) -> None:
        self.cluster = cluster
        self.env = env
        self.log = log
        self.streams = streams
        self.records = records
        self.dependencies: dict[str, ExternalDependency] = {}
        self.external: list[ExternalCallPopulation] = []

    def __call__(self, index: int, edge: int, workload: str, call: CallSpec,
                 pops: list[CallPopulation], where: str) -> CallPopulation:
        cluster, streams = self.cluster, self.streams
        retry = streams.generator(f"{where}/retry") if call.retries is not None else None
        client = edge_client(
            f"{workload}>{self._callee(call)}", pops, call, cluster.nodes[0].name,
            service=call.callee,
            target=call.target if call.external is None else "clusterIP",
            entry=EntrySpec(node=call.node) if call.node else EntrySpec(random=True))
        external = call.external
        if external is not None:
            self.records.externals.add(external.label)
            dependency = self.dependencies.get(external.label)
            if dependency is None:
                dependency = self.dependencies[external.label] = ExternalDependency(
                    self.env, external, streams.generator(f"external/{external.label}"))
            pop = ExternalCallPopulation(
                index, edge, client, -1, self.log, cluster, self.records, retry,
                dependency=dependency,
                latency=external.latency.sampler(streams.generator(f"{where}/latency")))
            self.external.append(pop)
            return pop
        sp = cluster.service_port_for(call.service, call.port)  # type: ignore[arg-type]
        ranges = (sp.service.load_balancer_source_ranges
                  if call.target == "loadBalancerIP" else ())
        pop = AddressedCallPopulation(index, edge, client, sp.index, self.log, cluster,
                                      self.records, retry, ranges=ranges)
        if call.target == "nodePort":
            node = cluster.node_index(call.node) if call.node is not None else -1
            pop.entry = CallEntry(pop, node)
            if node >= 0:
                pop.rtt = Leg(pop, cluster, node, streams.generator(f"{where}/leg"))
        return pop

    def _callee(self, call: CallSpec) -> str:
        """``service:port@target`` (``@nodePort/NODE`` for another node's NodePort), or
        the external dependency's name."""
        if call.external is not None:
            return call.external.label
        sp = self.cluster.service_port_for(call.service, call.port)  # type: ignore[arg-type]
        at = f"nodePort/{call.node}" if call.node is not None else call.target
        return f"{call.service}:{sp.port.name or sp.port.port}@{at}"

    def attach(self, down: list[bool]) -> None:
        """The node network's per-node "not answering" flags (made after the plans)."""
        for pop in self.external:
            pop.down = down

