"""One run of a scenario on SimPy: the run loop and one request's hot path.

The parts of the run (kube-proxies, node network, pod registry, control plane with its
kubelets, faults, populations, probes) are made and connected by npsim/sim/build.py;
the engine keeps what the hot path reads of them, bound once.

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
import time
from collections.abc import Callable
from heapq import heappush
from typing import TYPE_CHECKING

import numpy as np

from npsim.outcomes import (
    CONNECT_TIMEOUT,
    CONNECTION_REFUSED,
    DIAL_FAILED,
    DROPPED,
    ENDPOINT_GONE,
    FAILED,
    FIREWALL_DROPPED,
    NO_ENDPOINTS,
    NO_UPSTREAM,
    NODEPORT_CLOSED,
    REPLY_LOST,
)
from npsim.proxy.base import Connection
from npsim.sim.build import build
from npsim.sim.calls import NORMAL, Call, call_later, drop_pending, event_queue
from npsim.sim.clients import Population
from npsim.sim.output import RunOutput, client_record
from npsim.sim.pods import settle
from npsim.sim.rpc import CallPopulation

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario

EPHEMERAL_LOW, EPHEMERAL_SPAN = 32768, 28232  # Linux ip_local_port_range 32768-60999


class Simulation:
    """A scenario wired onto a fresh SimPy environment. Use :meth:`run` once."""

    def __init__(self, scenario: Scenario, replication: int = 0) -> None:
        self.scenario = scenario
        self.replication = replication
        parts = build(scenario, replication, self._done)
        self.env = parts.env
        self.cluster = parts.cluster
        self.log = parts.log
        self.events = parts.events
        self.proxies = parts.proxies
        self.guard = parts.guard
        self.network = network = parts.network
        self.registry = parts.registry
        self.control = parts.control
        self.populations = parts.populations
        # populations whose flows are UDP: a flow keeps its conntrack entry (and its
        # endpoint) when that endpoint dies, until kube-proxy's sync deletes the entry
        ports = parts.cluster.service_ports
        self._datagrams = {p.index for p in parts.populations
                           if p.service_port >= 0 and ports[p.service_port].port.protocol == "UDP"}
        self.tls = parts.tls
        self.calls = parts.calls
        self.blackbox = parts.blackbox
        # what the hot path reads, bound once (the lists and dicts are the parts' own)
        self.pods = parts.registry.servers
        self._arrive = parts.registry.arrive
        self.relays = parts.relays
        self.broken = network.conntrack.broken
        self._down = network.down
        self._hop = network.hop
        self._syn_answered = network.syn_answered
        self._connections = parts.connections
        self._heap, self._ids = event_queue(self.env)
        self.budget = scenario.spec.run.requests  # None: run for a duration
        self.generated = 0
        self.tracked: dict[int, Connection] = {}  # connections a mode or firewall counts
        self._progress: Callable[[float], None] | None = None
        self._progress_every = max((self.budget or 0) // 100, 1)

    def sending(self) -> bool:
        """Whether clients may still send: periodic processes (health checks, probes)
        stop after that in a request-count run, so that the run can drain and end."""
        return self.budget is None or (self.generated < self.budget
                                       and any(p.active for p in self.populations))

    def send_call(self, pop: Population, slot: int, now: float) -> bool:
        """A pod's call to a Service (npsim/sim/rpc.py): sent as a client's request is,
        but outside the run's request budget (it is part of a request already counted)."""
        budget, self.budget = self.budget, None
        try:
            return self.send(pop, slot, now)
        finally:
            self.budget = budget
            self.generated -= 1

    def _sender(self, pop: Population) -> Callable[[Population, int, float], bool]:
        if isinstance(pop, CallPopulation) and self.budget is not None:
            return self.send_call
        return self.send  # a timed run counts no requests: a call needs no wrapper

    # --- hot path ---------------------------------------------------------------------

    def send(self, pop: Population, slot: int, now: float, via: int | None = None) -> bool:
        """A client sends one request; False once the request budget is spent. ``via``:
        a new connection goes through that node (a UDP flow balanced afresh)."""
        generated = self.generated
        if self.budget is not None:
            if generated >= self.budget:
                return False
            if self._progress is not None and generated % self._progress_every == 0:
                self._progress(generated / self.budget)
        self.generated = generated + 1
        handshake = 0.0
        if pop.remaining[slot] == 0:
            new_conn = 1
            proxy_cost = self._connect(pop, slot, now, via)
            if proxy_cost is None:  # the connection failed; the request is recorded
                return True
        else:
            new_conn = 0
            proxy_cost = 0.0
            server = self.pods[pop.conn_pod[slot]]
            if self.broken and pop.conn_id[slot] in self.broken:
                if self.broken.pop(pop.conn_id[slot]):
                    return self._lost_connection(pop, slot, now, True)
                return self._reflow(pop, slot, now)
            if not server.alive and not server.serves_existing:
                if pop.index in self._datagrams:
                    return self._lost_datagram(pop, slot, now, server.silent)
                return self._lost_connection(pop, slot, now, server.silent)
            # a restarted process: a TCP connection to the old one is gone, while a UDP
            # flow's next datagram reaches the new one on the same address and port
            if pop.conn_id[slot] < server.first_conn and pop.index not in self._datagrams:
                return self._lost_connection(pop, slot, now, server.silent)
        entry = pop.conn_entry[slot]
        pop.remaining[slot] -= 1
        pod = pop.conn_pod[slot]
        hop = self._hop(entry, pop.conn_pod_node[slot])()
        if new_conn and self.tls is not None:
            terminator = self.tls.by_population[pop.index]
            if terminator is not None:  # HTTPS: the handshake before the first request
                handshake = terminator.handshake(now, pop.rtt, hop, self.pods, pod,
                                                 len(self.log.t_start))  # the row to come
        network = pop.rtt() + hop + handshake
        request = self._append(now, pop, slot, entry, pod, new_conn, network, hop, proxy_cost,
                               pop.conn_snat[slot])
        tracked = self.tracked.get(pop.conn_id[slot]) if self.tracked else None
        if tracked is not None:
            tracked.in_flight += 1
            tracked.all_sent = pop.remaining[slot] == 0
        relay = self.relays[entry]
        if relay is None:  # on to the pod: a Call (as a Timeout), or served after the run
            callbacks = self._arrive[pod]
            if callbacks is not None:
                call = Call()  # npsim/sim/calls.py: the one inline push of the engine
                call.callbacks = callbacks
                call._value = request
                heappush(self._heap, (now + (network * 0.5 + proxy_cost), NORMAL,
                                      next(self._ids), call))
        else:  # to the node's userspace relay first
            call_later(self.env, (network - hop) * 0.5 + proxy_cost, (relay.arrive,), request)
        return True

    def _lost_connection(self, pop: Population, slot: int, now: float,
                         silent: bool = True) -> bool:
        """A request on a keep-alive connection whose process is gone: a reset comes back,
        or (``silent``: the pod's node or address is gone) nothing until the timeout."""
        tracked = self.tracked.pop(pop.conn_id[slot], None) if self.tracked else None
        if tracked is not None:  # the connection is dead: IPVS stops counting it
            tracked.close(now)
        self._fail(pop, slot, now, pop.conn_entry[slot], pop.conn_pod[slot], ENDPOINT_GONE,
                   pop.connect_timeout if silent else 0.0, new_conn=0)
        return True

    def _lost_datagram(self, pop: Population, slot: int, now: float, silent: bool) -> bool:
        """A UDP datagram on a flow whose endpoint is gone: its conntrack entry still
        DNATs it there, so it is lost, and so are the flow's next ones until kube-proxy's
        sync deletes the entry (:meth:`Conntrack.flush_udp`; the flow then goes afresh
        through :meth:`_reflow`) or the flow ends. Unlike a TCP client, a UDP sender
        learns nothing and keeps its socket: the stale-entry problem of UDP Services
        (kubernetes/kubernetes issues #66651 and #125979; pkg/proxy/conntrack/cleanup.go)."""
        self._fail(pop, slot, now, pop.conn_entry[slot], pop.conn_pod[slot], ENDPOINT_GONE,
                   pop.connect_timeout if silent else 0.0, new_conn=0,
                   snat=pop.conn_snat[slot], keep_flow=True)
        return True

    def _reflow(self, pop: Population, slot: int, now: float) -> bool:
        """A UDP packet whose conntrack entry was deleted: a new flow through the same
        node (the client still sends to it)."""
        left = pop.remaining[slot]
        pop.remaining[slot] = 0
        sent = self.send(pop, slot, now, pop.conn_entry[slot])
        if pop.remaining[slot]:
            pop.remaining[slot] = left - 1
        return sent

    def _connect(self, pop: Population, slot: int, now: float,
                 via: int | None) -> float | None:
        """Open a connection: the receiving node's kube-proxy picks an endpoint.

        Returns the kube-proxy time of the new connection (its state is stored on
        ``pop``), or None when it failed and the request was recorded as failed. Which
        endpoint set applies and whether the source is NATed follow
        kube-proxy's ``pkg/proxy/iptables/proxier.go`` (KUBE-EXT/KUBE-SVL chains),
        ``pkg/proxy/ipvs/proxier.go`` and ``pkg/proxy/topology.go``.
        """
        clusterip = pop.target == "clusterIP"
        entry = pop.home if pop.caught_at_home else pop.entry(slot, now) if via is None else via
        count = self._connections
        count.opened += 1
        conn = count.opened
        pop.conn_id[slot] = conn
        pop.conn_entry[slot] = entry
        if entry < 0:  # the balancer in front has every node marked down: 503
            return self._fail(pop, slot, now, -1, -1, NO_UPSTREAM)
        waited = 0.0
        if self._down[entry]:  # nothing answers on that node: the SYN goes unanswered
            late = self._syn_answered(pop, entry, now)
            if late is None:
                return self._fail(pop, slot, now, entry, -1, CONNECT_TIMEOUT,
                                  pop.connect_timeout)
            waited = late  # a retransmitted SYN reaches the node once it is back
        proxy = self.proxies[entry]
        view = proxy.views[pop.service_port]
        if not view.any:  # REJECT: refused within a round trip
            return self._fail(pop, slot, now, entry, -1, NO_ENDPOINTS)
        # every mode answers on a node's primary address unless nodePortAddresses
        # leaves it out (sim/build.py marks the population then): no call
        if pop.asks_accepts and not proxy.accepts(pop.address):
            return self._fail(pop, slot, now, entry, -1, NODEPORT_CLOSED)
        table, snat, reply_lost = proxy.route(view, pop.kind, clusterip, entry == pop.home)
        if table.n == 0:  # endpoints exist, none here: DROP, the client times out
            return self._fail(pop, slot, now, entry, -1, DROPPED, pop.connect_timeout)
        src_port = EPHEMERAL_LOW + (conn * 7919) % EPHEMERAL_SPAN
        source = pop.wire_ips[slot % pop.n_ips]
        if pop.blocked is not None and source in pop.blocked:
            # KUBE-FW-...: outside loadBalancerSourceRanges, not DNATed, then
            # KUBE-PROXY-FIREWALL drops it (proxier.go): the client times out
            return self._fail(pop, slot, now, entry, -1, FIREWALL_DROPPED,
                              pop.connect_timeout)
        guard = self.guard
        if guard is not None:  # security group, PREROUTING, INPUT: before the choice
            kind = "clusterip" if clusterip else pop.kind
            sp = table.service_port
            # an external IP or LB VIP is matched on the Service's own port
            dport = sp.node_port if pop.target == "nodePort" else sp.port.port
            stop = guard.before_choice(entry, kind, source, sp.port.protocol, dport, now)
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
            stop = guard.after_choice(entry, kind, source, sp.port.protocol, dport,
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
        pop.conn_snat[slot] = snat  # a bool: stored in the log as 0 / 1
        pop.remaining[slot] = pop.per_connection
        tracker = None  # only modes that count connections hear of one (IPVS)
        if proxy.counts_connections:
            tracker = proxy.opened(table, choice, now)
            if tracker is not None:
                self.tracked[conn] = tracker
        if self.guard is not None and self.guard.pending:
            closer = self.guard.opened(table if tracker is not None else None)
            self.tracked[conn] = Connection.of(closer, table.keys[choice])
        return waited + proxy.cost()

    def _fail(self, pop: Population, slot: int, now: float, entry: int, pod: int,
              reason: int, wait: float = 0.0, new_conn: int = 1, snat: int = 1,
              keep_flow: bool = False) -> None:
        """Record a request that failed before reaching a pod. The client learns of it
        after ``wait`` (its timeout) or, for a refusal, one round trip. Its connection is
        over, unless ``keep_flow`` (a UDP flow: the request was one of its datagrams)."""
        rtt = pop.rtt()
        t_end = now + max(wait, rtt)
        log = self.log
        request = len(log.t_start)
        pop.remaining[slot] = pop.remaining[slot] - 1 if keep_flow else 0
        self._append(now, pop, slot, entry, pod, new_conn, rtt, 0.0, 0.0, snat)
        log.outcome[request] = FAILED
        log.reason[request] = reason
        log.t_end[request] = t_end
        pop.done(request, slot, t_end)

    def _append(self, now: float, pop: Population, slot: int, entry: int, pod: int,
                new_conn: int, network: float, hop: float, proxy_cost: float,
                snat: int) -> int:
        """The request's row (returned: its index): what is known when it is sent (its
        service, end and outcome are written when known; until then NaN and in flight:
        npsim/sim/records.py)."""
        log = self.log
        request = len(log.t_start)
        if request >= log.capacity:
            log.reserve()
        log.t_start.append(now)
        # the room holds zeros (RequestLog.reserve): a zero that is usual (the first
        # population, a request on an open connection, no kube-proxy cost) is not written
        if pop.index:
            log.population[request] = pop.index
        log.client[request] = slot
        log.conn[request] = pop.conn_id[slot]
        if new_conn:
            log.new_conn[request] = new_conn
        log.entry[request] = entry
        log.pod[request] = pod
        log.network[request] = network
        log.hop[request] = hop
        if proxy_cost:
            log.proxy[request] = proxy_cost
        log.snat[request] = snat
        return request

    def _done(self, request: int, t_end: float) -> None:
        log = self.log
        if self.tracked:
            conn = log.conn[request]
            tracked = self.tracked.get(conn)
            if tracked is not None:
                tracked.in_flight -= 1
                if tracked.in_flight == 0 and tracked.all_sent:  # tracked.close, inline
                    tracked.closer.closed(tracked.key, self.env._now)
                    del self.tracked[conn]
        pop = self.populations[log.population[request]]
        if pop.notify:
            pop.done(request, log.client[request], t_end)

    # --- driving ---

    def _stop(self) -> None:
        """The run is over: each part lets go of what only a running part needs (pending
        events, callbacks into the engine, random streams), so the simulation, its
        populations and its request log go by reference counting once the caller drops
        them (tests/sim/test_release.py)."""
        drop_pending(self.env)
        for proxy in self.proxies:  # the output keeps their tables, not their streams
            proxy.retire()
        self.registry.stop()
        for pop in self.populations:
            pop.stop()
        for prober in self.blackbox.values():
            prober.stop()
        self.control.retire()
        self._progress = None

    def _report(self, progress: Callable[[float], None], duration: float):  # noqa: ANN202
        """A cheap periodic SimPy process: one event per 1% of a timed run."""
        step = duration / 100
        while True:
            yield self.env.timeout(step)
            progress(min(self.env.now / duration, 1.0))

    def advance(self, until: float) -> None:
        """Run the clients, their balancers' health checks, the blackbox probes and the
        timeline up to ``until`` (``npsim explain --at``), as :meth:`run` starts them."""
        if until < 0:
            raise ValueError("must not be negative")
        self._start()
        if until > self.env.now:  # at the start: the state as built (SimPy refuses 0)
            self.env.run(until=until)
        self._settle(until, final=False)

    def _start(self) -> None:
        """Start the populations, their balancers' active checks and the blackbox
        probers (a run, or ``advance`` for ``explain --at``)."""
        for pop in self.populations:
            pop.start(self.env, self._sender(pop))
            if pop.balancer is not None:
                pop.balancer.start(self.sending)
        for prober in self.blackbox.values():
            prober.start(self.sending)

    def _settle(self, until: float | None, final: bool = True) -> None:
        """Serve what quiet pods were sent and would have received before ``until``; at
        the run's end (``final``) the log keeps exactly its rows, as plain arrays."""
        settle(self.pods, self.log, until, final)
        if final:
            self.log.trim()

    def run(self, progress: Callable[[float], None] | None = None) -> RunOutput:
        """Run to the end; ``progress(fraction)`` is called about 100 times on the way."""
        run = self.scenario.spec.run
        started = time.perf_counter()
        self._start()
        # The cyclic collector found nothing to free during a run (requests live in
        # arrays, events are freed by reference counting) but walked the model and the
        # in-flight events again and again: at 10,000 pods it took a third of the run.
        # It is paused for the run and restored after; _stop() breaks the run's cycles.
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
            self._stop()
        if self.tls is not None:  # what the handshakes cost, one line per population
            for pop, t in zip(self.populations, self.tls.by_population, strict=True):
                if t is not None:
                    self.events.record(end, "tls_handshakes", pop.name, t.describe())
        return RunOutput(self.replication, run.seed, self.cluster, self.log,
                         [client_record(pop) for pop in self.populations],
                         [proxy.pod_sees_node for proxy in self.proxies],
                         self.control.ready_history(), self.events, end, float(run.warmup),
                         time.perf_counter() - started, self.blackbox, self.calls)
