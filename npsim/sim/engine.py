"""One run of a scenario on SimPy: wire clients, kube-proxies and pods, then step time.

The path of one request: the client opens or reuses a connection -> (new connection)
the receiving node's kube-proxy picks an endpoint -> the request travels the client's
link and, if the pod lives elsewhere, the node-to-node hop -> the pod queues and serves
it -> the response travels back. Latencies that are only added to a timestamp get no
event of their own; a request costs three events (arrival at the client side, arrival
at the pod, end of service), four in userspace mode (the kube-proxy process relay), and
one where nothing disturbs the pods mid-service: such a pod (npsim/sim/pods.py
``QuietPod``) is served after the run from the request log, in arrival order. The hot
events are slotted Calls pushed on SimPy's own queue (npsim/sim/calls.py), not Timeouts.
"""

from __future__ import annotations

import gc
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from heapq import heappush
from typing import TYPE_CHECKING

import numpy as np
import simpy

from npsim.cluster.lifecycle import timing_for
from npsim.cluster.model import DEFAULT_CLIENT_BASE, Cluster, Pod, build_cluster, new_pod
from npsim.outcomes import (
    CONNECT_TIMEOUT,
    CONNECTION_REFUSED,
    DIAL_FAILED,
    DROPPED,
    ENDPOINT_GONE,
    FAILED,
    NO_ENDPOINTS,
    NO_UPSTREAM,
    NODEPORT_CLOSED,
    REPLY_LOST,
)
from npsim.proxy import MODES, KubeProxy
from npsim.proxy.base import SharedColumns
from npsim.proxy.cost import cost_sampler, quantiles_at, table_for
from npsim.sim.balancer import make_balancer
from npsim.sim.calls import NORMAL, Call, call_later
from npsim.sim.clients import (
    Addresses,
    ClosedLoop,
    OpenLoop,
    Population,
    connect_give_up,
    make_entry,
    needs_done,
    retry_spec,
    syn_answered,
)
from npsim.sim.controlplane import ControlPlane
from npsim.sim.faults import Conntrack, FaultInjector, Kubelets, pods_touched
from npsim.sim.guard import Guard
from npsim.sim.pods import PodServer, QuietPod, Relay, settle
from npsim.sim.probes import Blackbox, blackbox_probers
from npsim.sim.records import NAN, RequestLog
from npsim.sim.timeline import EventLog
from npsim.sim.tls import TlsCosts, pod_server_class
from npsim.streams import Streams

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario

EPHEMERAL_LOW, EPHEMERAL_SPAN = 32768, 28232  # Linux ip_local_port_range 32768-60999


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What the frames read of a client population once the run is over."""

    name: str
    client_ips: np.ndarray  # its source addresses, as the client has them
    wire_ips: np.ndarray  # the same, as the receiving node sees them (after a NAT)
    retry_of: dict[int, int]  # request -> the failed request it repeats (retries only)
    attempt: dict[int, int]  # request -> its attempt number (retries only)
    balanced: bool  # sent through an external balancer


@dataclass
class RunOutput:
    """What one replication leaves behind: the cluster it ran, its request columns and
    timeline, and plain records of the rest. Nothing in it refers to the live
    simulation (populations, kube-proxies, control plane, SimPy environment), so all of
    that is freed before the frames are built (at 10,000 pods, several MB)."""

    replication: int
    seed: int
    cluster: Cluster
    log: RequestLog
    clients: list[ClientRecord]
    # per node: its kube-proxy relays every connection itself (userspace), so its pods
    # see the node's address whatever the policy
    pod_sees_node: list[bool]
    # per node: (time, ready endpoints of the simulated Services) as its kube-proxy
    # programmed them, from the start
    ready_history: list[list[tuple[float, int]]]
    events: EventLog
    end_time: float
    warmup: float
    wall_seconds: float
    probes: dict[str, Blackbox] = field(default_factory=dict)  # alert rule -> its samples


def client_record(pop: Population) -> ClientRecord:
    return ClientRecord(pop.name, np.asarray(pop.client_ips, dtype=np.int64)[:pop.n_ips],
                        np.asarray(pop.wire_ips, dtype=np.int64)[:pop.n_ips], pop.retry_of,
                        pop.attempt, getattr(pop, "balancer", None) is not None)


def make_proxies(scenario: Scenario, cluster: Cluster, streams: Streams) -> list[KubeProxy]:
    """One kube-proxy per node, in the node's mode, with its first-packet cost model.
    They share one cache of endpoint columns, this run's own (dropped when they retire)."""
    spec = scenario.spec.cluster
    shared = SharedColumns()
    services = len(cluster.service_ports) + spec.other_services.count
    clusterip = any(c.target == "clusterIP" for c in scenario.spec.clients)
    proxies: list[KubeProxy] = []
    for node, ns in zip(cluster.nodes, spec.nodes, strict=True):
        mode = ns.proxy_mode or spec.proxy_mode
        rng = streams.generator(f"proxy/{node.name}")
        proxy = MODES[mode].create(node, rng, spec)
        proxy.sync_delay = ns.sync_delay
        proxy.serves_clusterip = clusterip
        proxy.shared_columns = shared
        if mode != "userspace":
            override = spec.cost_model.get(mode)
            quantiles = quantiles_at(table_for(mode, override), services, floor=not override)
            proxy.cost = cost_sampler(quantiles, streams.generator(f"cost/{node.name}"))
        proxies.append(proxy)
    return proxies


class Simulation:
    """A scenario wired onto a fresh SimPy environment. Use :meth:`run` once."""

    def __init__(self, scenario: Scenario, replication: int = 0) -> None:
        self.scenario = scenario
        spec = scenario.spec
        self.replication = replication
        self.streams = streams = Streams(spec.run.seed, replication)
        self.env = simpy.Environment()
        self.cluster = cluster = build_cluster(scenario)
        self.log = RequestLog()
        self.events = EventLog()  # transitions (faults, syncs, health checks, alerts)
        self._appenders = tuple(getattr(self.log, name).append for name in RequestLog.COLUMNS)
        self.budget = spec.run.requests  # None: run for a duration
        self.generated = 0
        self.next_conn = 0
        self.tracked: dict[int, list] = {}  # IPVS: conn -> [in flight, all sent, table, key]
        self._progress: Callable[[float], None] | None = None
        self._progress_every = max((self.budget or 0) // 100, 1)

        self.proxies = make_proxies(scenario, cluster, streams)
        # firewalls in the traffic path: None (and free) when the scenario has none
        self.guard = Guard.build(scenario, cluster, [p.mode for p in self.proxies], self.events)
        # pods report each end only to populations that ask (closed loops, retries,
        # timeouts, least-connections balancers) and to connection counters
        self._report_done = any(needs_done(c) for c in spec.clients) or any(
            p.counts_connections for p in self.proxies) or (
            self.guard is not None and self.guard.counts_connections)
        self.pods: list[PodServer] = []
        # each pod's service-time sampler (None for a quiet pod: see _serve)
        self._samplers: list[Callable[[], float] | None] = []
        self._timeouts = [connect_give_up(c.syn_retries, c.connect_timeout)
                          for c in spec.clients]
        self.node_down = [False] * len(cluster.nodes)  # crashed or cut off: see node_answers
        # connections that change under their client: True = the entry node went down
        # (no answer), False = a UDP conntrack entry was flushed (the next packet is a
        # new flow, balanced afresh through the same node)
        self.broken: dict[int, bool] = {}
        # per pod, its arrive method as a Call's callbacks (npsim/sim/calls.py); None for
        # a quiet pod, which takes no event
        self._arrive: list[tuple[Callable[[simpy.Event], None]] | None] = []
        tls_at_pods = any(c.tls is not None and c.tls.terminate == "pod" for c in spec.clients)
        self._pod_class = pod_server_class(tls_at_pods)
        # How each pod is served, decided once: a QuietPod, served after the run from the
        # request log (npsim.sim.pods.settle), when nothing disturbs it mid-service and
        # the log holds when its requests arrive; else an event-driven PodServer. Quiet:
        # the first pods that no event touches, when no one waits for ends, no TLS ends
        # at a pod and no userspace relay hands requests on at times the log lacks.
        self._quiet = (set() if self._report_done or tls_at_pods or any(
            p.mode == "userspace" for p in self.proxies) else
            set(range(len(cluster.pods))) - pods_touched(spec.events, cluster))
        self.relays: list[Relay | None] = [
            Relay(self.env, p.node.index, spec.cluster.userspace.workers,
                  spec.cluster.userspace.latency.sampler(
                      streams.generator(f"relay/{p.node.name}")), self.log, self._to_pod)
            if p.mode == "userspace" else None
            for p in self.proxies
        ]
        for pod in cluster.pods:
            self._serve(pod)
        self.control = ControlPlane(
            self.env, cluster, self.proxies, spec.cluster.kube_proxy,
            lambda name: spec.cluster.kube_proxy.propagation.sampler(
                streams.generator(f"propagation/{name}")),
            (spec.cluster.other_services.count, spec.cluster.other_services.endpoints_each),
            self._add_pod, self._stop_pod, [n.cpu for n in spec.cluster.nodes],
            events=self.events,
            timing=timing_for(spec.cluster.kubernetes_version, spec.cluster.control_plane),
            phases=lambda name: float(streams.generator(f"phase/{name}").random()),
            deployments=scenario.deployments,
            placement=lambda name: spec.workloads[name].placement)
        self.conntrack = Conntrack(self)
        self.control.flush_udp = self.conntrack.flush_udp
        self.kubelets = Kubelets(self)
        FaultInjector(self, self.kubelets).schedule(spec.events)

        self.populations: list[Population] = []
        client_pods: dict[int, int] = {}  # client pod addresses used per node
        for i, cs in enumerate(spec.clients):
            sp = cluster.service_port_for(cs.service, cs.port)
            n_slots = cs.arrival.users if cs.arrival.closed else cs.n_source_ips
            entry = make_entry(cs.entry, cluster.node_index, len(cluster.nodes), n_slots,
                               streams.generator(f"entry/{cs.name}"))
            ip_base = (int(ipaddress.IPv4Address(cs.source_ip_base))
                       if cs.source_ip_base else DEFAULT_CLIENT_BASE + (i << 17))
            if cs.source is not None:
                home = cluster.node_index(cs.source.node)
                addresses = Addresses.in_cluster(cs, cluster.nodes[home],
                                                 client_pods.get(home, 0))
                if cs.source.kind == "pod":
                    client_pods[home] = client_pods.get(home, 0) + cs.n_source_ips
            else:
                addresses = Addresses.external(cs, ip_base, streams.generator(f"nat/{cs.name}"),
                                               i)
            balancer = None
            if cs.balancer is not None and cs.balancer.in_front:
                entry = balancer = make_balancer(self, cs, sp.index)
            common = dict(index=i, spec=cs, n_slots=n_slots, entry=entry,
                          service_port=sp.index,
                          rtt=cs.rtt.sampler(streams.generator(f"rtt/{cs.name}")),
                          ip_base=ip_base, addresses=addresses, log=self.log,
                          retry_rng=(streams.generator(f"retry/{cs.name}")
                                     if retry_spec(cs) is not None else None))
            if cs.arrival.closed:
                assert cs.arrival.think_time is not None
                think = cs.arrival.think_time.sampler(streams.generator(f"think/{cs.name}"))
                self.populations.append(ClosedLoop(think=think, **common))
            else:
                arrivals = streams.generator(f"arrivals/{cs.name}")
                self.populations.append(OpenLoop(arrivals=arrivals, **common))
            if balancer is not None:
                pop = self.populations[-1]
                pop.balancer = balancer
                # the client hears of a node that does not answer when the balancer's
                # own connect attempt gives up (nginx proxy_connect_timeout): a 502/504
                pop.connect_timeout = min(pop.connect_timeout, connect_give_up(
                    cs.syn_retries, cs.balancer.connect_timeout))
                self._timeouts[i] = pop.connect_timeout
        self._init_hops()
        # HTTPS handshakes per new connection: None (and free) without any `tls`
        self.tls = (TlsCosts(self.populations, streams.generator)
                    if TlsCosts.wanted(spec.clients) else None)
        self.blackbox = blackbox_probers(self)

    def sending(self) -> bool:
        """Whether clients may still send: periodic processes (health checks, probes)
        stop after that in a request-count run, so that the run can drain and end."""
        return self.budget is None or (self.generated < self.budget
                                       and any(p.active for p in self.populations))

    # --- pods coming and going ----------------------------------------------------------

    def _serve(self, pod: Pod) -> PodServer:
        streams = self.streams  # not self: a quiet pod keeps this, the run must not cycle

        def stream() -> Callable[[], float]:
            return pod.service_time.sampler(streams.generator(f"service/{pod.name}"))

        # a quiet pod draws only after the run: its stream is made then (at 10,000 pods
        # the streams were 15 MB and a third of the build)
        quiet = pod.index in self._quiet
        sampler = None if quiet else stream()
        self._samplers.append(sampler)
        server = self._process(pod.index, sampler)
        if quiet:
            server.stream = stream  # type: ignore[attr-defined]  # a QuietPod
        self.pods.append(server)
        self._arrive.append(None if quiet else (server.arrive,))
        return server

    def _process(self, index: int, sampler: Callable[[], float] | None) -> PodServer:
        pod = self.cluster.pods[index]
        kind = QuietPod if index in self._quiet else self._pod_class
        server = kind(self.env, index, pod.workers, pod.queue_limit, sampler,
                      self.log, self._done if self._report_done else None)
        server.timeouts = self._timeouts
        return server

    def fresh_process(self, index: int) -> PodServer:
        """The pod's container (re)starts: a new process, with no connection of the old
        one (connections opened before now are broken)."""
        self.disturbed(index)
        server = self._process(index, self._samplers[index])
        server.first_conn = self.next_conn + 1
        self.pods[index] = server
        self._arrive[index] = (server.arrive,)
        return server

    def disturbed(self, index: int) -> PodServer:
        """The pod's server, for a fault or the control plane to change. A QuietPod has
        no state during the run (it is served after it) and cannot be changed: reaching one here
        means :func:`~npsim.sim.faults.pods_touched` missed a kind of event (a bug)."""
        server = self.pods[index]
        if isinstance(server, QuietPod):
            raise RuntimeError(f"internal error: pod {self.cluster.pods[index].name} was "
                               "judged undisturbed by the scenario's events")
        return server

    def service_sampler(self, index: int) -> Callable[[], float]:
        """A pod's service-time sampler (a disturbed pod's: quiet pods make theirs when
        they are served, after the run)."""
        sampler = self._samplers[index]
        if sampler is None:
            raise RuntimeError(f"internal error: quiet pod {self.cluster.pods[index].name} "
                               "asked for its sampler during the run")
        return sampler

    def node_answers(self, node_index: int) -> bool:
        """Whether the node answers on its addresses (False while crashed or cut off:
        its NodePort accepts nothing and a client connecting there times out)."""
        return not self.node_down[node_index]

    def _add_pod(self, deployment: str, node: int) -> Pod:
        pod = new_pod(self.scenario, self.cluster, deployment, node)
        pod.created_at = self.env.now
        server = self._serve(pod)
        server.alive = False  # no process until the kubelet starts the container
        return pod

    def _stop_pod(self, pod: Pod) -> None:
        """A deleted pod's address is gone: packets to it get no answer (a client waits
        for its timeout); its process was stopped by the kubelet before."""
        server = self.disturbed(pod.index)
        server.alive = server.serves_existing = server.hung = False
        server.silent = True
        pod.deleted_at = self.env.now

    # --- hot path ---------------------------------------------------------------------

    def _init_hops(self) -> None:
        """Hop latency samplers, shared per kind of hop rather than made per node pair.

        A hop's latency depends only on its kind: the same node, the same zone, a pair of
        zones, or an explicit ``network.links`` entry. One sampler (and stream) per kind:
        ``hop/same-node``, ``hop/zone/<from>/<to>``, ``link/<from>/<to>`` for explicit
        links. A per-pair stream cost a numpy Generator per pair used (about a million
        pairs at 1000 nodes). Each stream still depends only on its own name and on how
        many hops of its kind were drawn, never on which other nodes exist.
        """
        cluster = self.cluster
        zones: dict[str, int] = {}
        self._zone_of = [zones.setdefault(n.zone, len(zones)) for n in cluster.nodes]
        self._zone_names = list(zones)
        self._zone_hops: dict[int, object] = {}
        self._same_node = cluster.same_node.sampler(self.streams.generator("hop/same-node"))
        self._links: dict[tuple[int, int], object] | None = None
        if cluster.links:
            self._links = {}
            for (a, b), latency in cluster.links.items():  # one stream per direction
                rng = self.streams.generator(
                    f"link/{cluster.nodes[a].name}/{cluster.nodes[b].name}")
                self._links[(a, b)] = latency.sampler(rng)

    def _hop(self, a: int, b: int):  # noqa: ANN202 - Sampler
        """The latency sampler of the hop from node ``a`` to a pod on node ``b``."""
        links = self._links
        if links is not None:
            sampler = links.get((a, b))
            if sampler is not None:
                return sampler
        if a == b:
            return self._same_node
        za, zb = self._zone_of[a], self._zone_of[b]
        key = za * len(self._zone_names) + zb
        sampler = self._zone_hops.get(key)
        if sampler is None:
            dist = self.cluster.same_zone if za == zb else self.cluster.cross_zone
            names = self._zone_names
            sampler = self._zone_hops[key] = dist.sampler(
                self.streams.generator(f"hop/zone/{names[za]}/{names[zb]}"))
        return sampler

    def send(self, pop: Population, slot: int, now: float) -> bool:
        """A client sends one request; False once the request budget is spent."""
        if self.budget is not None:
            if self.generated >= self.budget:
                return False
            if self._progress is not None and self.generated % self._progress_every == 0:
                self._progress(self.generated / self.budget)
        self.generated += 1
        request = len(self.log.t_start)
        handshake = 0.0
        if pop.remaining[slot] == 0:
            new_conn = 1
            proxy_cost = self._connect(pop, slot, now)
            if proxy_cost is None:  # the connection failed; the request is recorded
                return True
        else:
            new_conn = 0
            proxy_cost = 0.0
            server = self.pods[pop.conn_pod[slot]]
            if self.broken and pop.conn_id[slot] in self.broken:
                if self.broken.pop(pop.conn_id[slot]):
                    return self._lost_connection(pop, slot, now, True)
                return self.conntrack.reflow(pop, slot, now)
            if (not server.alive and not server.serves_existing
                    or pop.conn_id[slot] < server.first_conn):
                return self._lost_connection(pop, slot, now, server.silent)
        entry = pop.conn_entry[slot]
        pop.remaining[slot] -= 1
        pod = pop.conn_pod[slot]
        hop = self._hop(entry, pop.conn_pod_node[slot])()
        if new_conn and self.tls is not None:
            terminator = self.tls.by_population[pop.index]
            if terminator is not None:  # HTTPS: the handshake before the first request
                handshake = terminator.handshake(now, pop.rtt, hop, self.pods, pod, request)
        network = pop.rtt() + hop + handshake
        self._append(now, pop, slot, entry, pod, new_conn, network, hop, proxy_cost,
                     pop.conn_snat[slot])
        tracked = self.tracked.get(pop.conn_id[slot]) if self.tracked else None
        if tracked is not None:
            tracked[0] += 1
            tracked[1] = pop.remaining[slot] == 0
        relay = self.relays[entry]
        if relay is None:  # on to the pod: a Call (as a Timeout), or served after the run
            callbacks = self._arrive[pod]
            if callbacks is not None:
                call = Call()
                call.callbacks = callbacks
                call._value = request
                env = self.env
                heappush(env._queue, (now + (network * 0.5 + proxy_cost), NORMAL,
                                      next(env._eid), call))
        else:  # to the node's userspace relay first
            call_later(self.env, (network - hop) * 0.5 + proxy_cost, (relay.arrive,), request)
        return True

    def _lost_connection(self, pop: Population, slot: int, now: float,
                         silent: bool = True) -> bool:
        """A request on a keep-alive connection whose process is gone: a reset comes back,
        or (``silent``: the pod's node or address is gone) nothing until the timeout."""
        tracked = self.tracked.pop(pop.conn_id[slot], None) if self.tracked else None
        if tracked is not None:  # the connection is dead: IPVS stops counting it
            tracked[2].closed(tracked[3], now)
        self._fail(pop, slot, now, pop.conn_entry[slot], pop.conn_pod[slot], ENDPOINT_GONE,
                   pop.connect_timeout if silent else 0.0, new_conn=0)
        return True

    def _connect(self, pop: Population, slot: int, now: float) -> float | None:
        """Open a connection: the receiving node's kube-proxy picks an endpoint.

        Returns the kube-proxy time of the new connection (its state is stored on
        ``pop``), or None when it failed and the request was recorded as failed. Which
        endpoint set applies and whether the source is NATed follow
        kube-proxy's ``pkg/proxy/iptables/proxier.go`` (KUBE-EXT/KUBE-SVL chains),
        ``pkg/proxy/ipvs/proxier.go`` and ``pkg/proxy/topology.go``.
        """
        clusterip = pop.target == "clusterIP"
        entry = pop.home if clusterip else pop.entry(slot, now)
        self.next_conn += 1
        conn = self.next_conn
        pop.conn_id[slot] = conn
        pop.conn_entry[slot] = entry
        if entry < 0:  # the balancer in front has every node marked down: 503
            return self._fail(pop, slot, now, -1, -1, NO_UPSTREAM)
        waited = 0.0
        if self.node_down[entry]:  # nothing answers on that node: the SYN goes unanswered
            late = syn_answered(self.scenario.spec.events, self.cluster.node_index, pop,
                                entry, now)
            if late is None:
                return self._fail(pop, slot, now, entry, -1, CONNECT_TIMEOUT,
                                  pop.connect_timeout)
            waited = late  # a retransmitted SYN reaches the node once it is back
        proxy = self.proxies[entry]
        view = proxy.views[pop.service_port]
        if not view.any:  # REJECT: refused within a round trip
            return self._fail(pop, slot, now, entry, -1, NO_ENDPOINTS)
        if not clusterip and not proxy.accepts(pop.address):
            return self._fail(pop, slot, now, entry, -1, NODEPORT_CLOSED)
        table, snat, reply_lost = proxy.route(view, pop.kind, clusterip, entry == pop.home)
        if table.n == 0:  # endpoints exist, none here: DROP, the client times out
            return self._fail(pop, slot, now, entry, -1, DROPPED, pop.connect_timeout)
        src_port = EPHEMERAL_LOW + (conn * 7919) % EPHEMERAL_SPAN
        source = pop.wire_ips[slot % pop.n_ips]
        guard = self.guard
        if guard is not None:  # security group, PREROUTING, INPUT: before the choice
            kind = "clusterip" if clusterip else pop.kind
            sp = table.service_port
            stop = guard.before_choice(entry, kind, source, sp.port.protocol, sp.node_port,
                                       now)
            if stop is not None:
                return self._fail(pop, slot, now, entry, -1, stop.reason,
                                  pop.connect_timeout if stop.times_out else 0.0)
        affinity = view.affinity_internal if clusterip else view.affinity
        if affinity is not None:
            choice = affinity.pick(table, source, src_port, now)
        else:
            choice = table.pick(source, src_port, now)
        pod = table.pods[choice]
        if guard is not None:  # FORWARD and NetworkPolicy: after the DNAT
            stop = guard.after_choice(entry, kind, source, sp.port.protocol, sp.node_port,
                                      snat, pod, table.endpoints[choice].port, now)
            if stop is not None:
                return self._fail(pop, slot, now, entry, -1, stop.reason,
                                  pop.connect_timeout if stop.times_out else 0.0)
        if reply_lost:  # IPVS Local without local endpoint: forwarded unNATed, reply dropped
            return self._fail(pop, slot, now, entry, pod, REPLY_LOST, pop.connect_timeout,
                              snat=0)
        server = self.pods[pod]
        if not server.alive and not server.hung:  # a hung process still accepts
            redialled = proxy.redial(table, choice, source, src_port, now, self.pods, affinity)
            if redialled is None:  # the connection fails
                if server.silent:  # no such address (any more): SYNs go unanswered
                    return self._fail(pop, slot, now, entry, pod, CONNECT_TIMEOUT,
                                      pop.connect_timeout)
                return self._fail(pop, slot, now, entry, pod, CONNECTION_REFUSED)
            choice, dialling = redialled
            waited += dialling
            if choice < 0:
                return self._fail(pop, slot, now, entry, -1, DIAL_FAILED, waited)
            pod = table.pods[choice]
        pop.conn_pod[slot] = pod
        pop.conn_pod_node[slot] = table.nodes[choice]
        pop.conn_snat[slot] = int(snat)
        pop.remaining[slot] = pop.per_connection
        tracker = proxy.opened(table, choice, now)
        if tracker is not None:
            self.tracked[conn] = tracker
        if self.guard is not None and self.guard.pending:
            closer = self.guard.opened(table if tracker is not None else None)
            self.tracked[conn] = [0, False, closer, table.keys[choice]]
        return waited + proxy.cost()

    def _to_pod(self, request: int, delay: float) -> None:
        """After the userspace relay: on to the pod across the hop."""
        call_later(self.env, delay, self._arrive[self.log.pod[request]], request)

    def _fail(self, pop: Population, slot: int, now: float, entry: int, pod: int,
              reason: int, wait: float = 0.0, new_conn: int = 1, snat: int = 1) -> None:
        """Record a request that failed before reaching a pod. The client learns of it
        after ``wait`` (its timeout) or, for a refusal, one round trip."""
        rtt = pop.rtt()
        t_end = now + max(wait, rtt)
        log = self.log
        request = len(log.t_start)
        pop.remaining[slot] = 0
        self._append(now, pop, slot, entry, pod, new_conn, rtt, 0.0, 0.0, snat)
        log.outcome[request] = FAILED
        log.reason[request] = reason
        log.t_end[request] = t_end
        pop.done(request, slot, t_end)

    def _append(self, now: float, pop: Population, slot: int, entry: int, pod: int,
                new_conn: int, network: float, hop: float, proxy_cost: float,
                snat: int) -> None:
        (t_start, population, client, conn, new, entry_, pod_, network_, hop_, proxy,
         service_start, service, t_end, outcome, reason, snat_) = self._appenders  # COLUMNS order
        t_start(now)
        population(pop.index)
        client(slot)
        conn(pop.conn_id[slot])
        new(new_conn)
        entry_(entry)
        pod_(pod)
        network_(network)
        hop_(hop)
        proxy(proxy_cost)
        service_start(NAN)
        service(NAN)
        t_end(NAN)
        outcome(0)
        reason(0)
        snat_(snat)

    def _done(self, request: int, t_end: float) -> None:
        log = self.log
        if self.tracked:
            conn = log.conn[request]
            tracked = self.tracked.get(conn)
            if tracked is not None:
                tracked[0] -= 1
                if tracked[0] == 0 and tracked[1]:
                    tracked[2].closed(tracked[3], self.env._now)
                    del self.tracked[conn]
        pop = self.populations[log.population[request]]
        if pop.notify:
            pop.done(request, log.client[request], t_end)

    # --- driving ---

    def _release(self) -> None:
        """Break the reference cycles of a finished run (callbacks bound to the
        simulation, pending events), so its request log is freed as soon as the caller
        drops it rather than whenever the cyclic collector runs."""
        self.env._queue.clear()  # type: ignore[attr-defined]
        for proxy in self.proxies:  # the output keeps them: not their random streams
            proxy.retire()
        for server in self.pods:  # a served quiet pod's stream and buffered draws
            if isinstance(server, QuietPod):
                server.sample = server.stream = None  # type: ignore[assignment]
        # checks and probes answer from the simulation: the balancers' and the probers'
        for pop in self.populations:
            if pop.balancer is not None:
                pop.balancer.stop()
        for prober in self.blackbox.values():
            prober.stop()
        for pop in self.populations:
            pop.send = None  # type: ignore[assignment]
            pop.__dict__.pop("_arrive", None)
            pop.__dict__.pop("_again", None)
        for server in self.pods:
            server.on_done = None
        for relay in self.relays:
            if relay is not None:
                relay.forward = None  # type: ignore[assignment]
        self.control.add_pod = self.control.stop_pod = None  # type: ignore[assignment]
        self.control.retire()  # per-node propagation streams
        # components that keep the simulation (or one of its bound methods) by attribute
        for value in list(vars(self).values()):
            members = (value.values() if isinstance(value, dict) else value
                       if isinstance(value, list | tuple) else (value,))
            for member in members:
                attrs = getattr(member, "__dict__", None)
                if not attrs or member is self:
                    continue
                for name, attr in list(attrs.items()):
                    if attr is self or getattr(attr, "__self__", None) is self:
                        attrs[name] = None
        self._arrive = []
        self._appenders = ()
        self._progress = None

    def _report(self, progress: Callable[[float], None], duration: float):  # noqa: ANN202
        """A cheap periodic SimPy process: one event per 1% of a timed run."""
        step = duration / 100
        while True:
            yield self.env.timeout(step)
            progress(min(self.env.now / duration, 1.0))

    def advance(self, until: float) -> None:
        """Run the clients and the timeline up to ``until`` (``npsim explain --at``)."""
        if until < 0:
            raise ValueError("must not be negative")
        for pop in self.populations:
            pop.start(self.env, self.send)
        if until > self.env.now:  # at the start: the state as built (SimPy refuses 0)
            self.env.run(until=until)
        self._settle(until, final=False)

    def _settle(self, until: float | None, final: bool = True) -> None:
        """Serve what quiet pods were sent and would have received before ``until``."""
        settle(self.pods, self.log, until, final)

    def run(self, progress: Callable[[float], None] | None = None) -> RunOutput:
        """Run to the end; ``progress(fraction)`` is called about 100 times on the way."""
        run = self.scenario.spec.run
        started = time.perf_counter()
        for pop in self.populations:
            pop.start(self.env, self.send)
            if pop.balancer is not None:
                pop.balancer.start(self.sending)
        for prober in self.blackbox.values():
            prober.start(self.sending)
        # The cyclic collector found nothing to free during a run (requests live in
        # arrays, events are freed by reference counting) but walked the model and the
        # in-flight events again and again: at 10,000 pods it took a third of the run.
        # It is paused for the run and restored after; _release() breaks the run's cycles.
        collecting = gc.isenabled()
        gc.disable()
        try:
            if run.duration is not None:
                if progress is not None:
                    self.env.process(self._report(progress, run.duration))
                self.env.run(until=run.duration)
                self._settle(run.duration)
                end = float(run.duration)
            else:
                # a request-count run drains; it ends when the client has seen the last
                # answer (progress is reported by send() every 1% of the budget)
                self._progress = progress
                self.env.run()
                self._settle(None)
                ends = self.log.columns()["t_end"]
                end = float(np.nanmax(ends)) if len(ends) else float(self.env.now)
        finally:
            if collecting:
                gc.enable()
            self._release()
        if self.tls is not None:  # what the handshakes cost, one line per population
            for pop, t in zip(self.populations, self.tls.by_population, strict=True):
                if t is not None:
                    self.events.record(end, "tls_handshakes", pop.name, t.describe())
        return RunOutput(self.replication, run.seed, self.cluster, self.log,
                         [client_record(pop) for pop in self.populations],
                         [proxy.pod_sees_node for proxy in self.proxies],
                         self.control.ready_history(), self.events, end, float(run.warmup),
                         time.perf_counter() - started, self.blackbox)
