"""One run of a scenario on SimPy: wire clients, kube-proxies and pods, then step time.

The path of one request: the client opens or reuses a connection -> (new connection)
the receiving node's kube-proxy picks an endpoint -> the request travels the client's
link and, if the pod lives elsewhere, the node-to-node hop -> the pod queues and serves
it -> the response travels back. Latencies that are only added to a timestamp get no
event of their own; a request costs three events (arrival at the client side, arrival
at the pod, end of service).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import simpy

from npsim.cluster.model import DEFAULT_CLIENT_BASE, Cluster, build_cluster
from npsim.proxy import MODES, KubeProxy
from npsim.sim.clients import ClosedLoop, OpenLoop, Population, make_entry
from npsim.sim.pods import PodServer
from npsim.sim.records import FAILED, NO_ENDPOINTS, RequestLog
from npsim.sim.streams import Streams

if TYPE_CHECKING:
    from npsim.scenario.loader import Scenario


@dataclass
class RunOutput:
    """What one replication leaves behind: the cluster it ran and its request columns."""

    replication: int
    seed: int
    cluster: Cluster
    log: RequestLog
    populations: list[Population]
    end_time: float
    warmup: float
    wall_seconds: float


class Simulation:
    """A scenario wired onto a fresh SimPy environment. Use :meth:`run` once."""

    def __init__(self, scenario: Scenario, replication: int = 0) -> None:
        self.scenario = scenario
        spec = scenario.spec
        self.replication = replication
        self.streams = Streams(spec.run.seed, replication)
        self.env = simpy.Environment()
        self.cluster = cluster = build_cluster(scenario)
        self.log = RequestLog()
        self.budget = spec.run.requests  # None: run for a duration
        self.generated = 0
        self.next_conn = 0

        proxy_class = MODES[spec.cluster.proxy_mode]
        self.proxies: list[KubeProxy] = [
            proxy_class(node, self.streams.generator(f"proxy/{node.name}"))
            for node in cluster.nodes
        ]
        for proxy in self.proxies:
            for sp in cluster.service_ports:
                proxy.program(sp, sp.endpoints)

        self.populations: list[Population] = []
        for i, cs in enumerate(spec.clients):
            sp = cluster.service_port_for(cs.service, cs.port)
            n_slots = cs.arrival.users if cs.arrival.closed else cs.n_source_ips
            entry = make_entry(cs.entry, cluster.node_index, len(cluster.nodes), n_slots,
                               self.streams.generator(f"entry/{cs.name}"))
            ip_base = (int(__import__("ipaddress").IPv4Address(cs.source_ip_base))
                       if cs.source_ip_base else DEFAULT_CLIENT_BASE + (i << 17))
            common = dict(index=i, spec=cs, n_slots=n_slots, entry=entry,
                          service_port=sp.index,
                          rtt=cs.rtt.sampler(self.streams.generator(f"rtt/{cs.name}")),
                          ip_base=ip_base)
            if cs.arrival.closed:
                assert cs.arrival.think_time is not None
                think = cs.arrival.think_time.sampler(self.streams.generator(f"think/{cs.name}"))
                self.populations.append(ClosedLoop(think=think, **common))
            else:
                arrivals = self.streams.generator(f"arrivals/{cs.name}")
                self.populations.append(OpenLoop(arrivals=arrivals, **common))

        self.pods = [
            PodServer(self.env, pod.index, pod.workers, pod.queue_limit,
                      pod.service_time.sampler(self.streams.generator(f"service/{pod.name}")),
                      self.log, self._done)
            for pod in cluster.pods
        ]
        self._hop_samplers: dict[tuple[int, int], object] = {}

    # --- hot path ---------------------------------------------------------------------

    def _hop(self, a: int, b: int):  # noqa: ANN202 - Sampler
        key = (a, b)
        sampler = self._hop_samplers.get(key)
        if sampler is None:
            dist = self.cluster.hop_latency(a, b)
            names = self.cluster.nodes
            rng = self.streams.generator(f"link/{names[a].name}/{names[b].name}")
            sampler = self._hop_samplers[key] = dist.sampler(rng)
        return sampler

    def send(self, pop: Population, slot: int, now: float) -> bool:
        """A client sends one request; False once the request budget is spent."""
        if self.budget is not None and self.generated >= self.budget:
            return False
        self.generated += 1
        log = self.log
        request = len(log.t_start)
        proxy_cost = 0.0
        if pop.remaining[slot] == 0:
            entry = pop.entry(slot, now)
            proxy = self.proxies[entry]
            table = proxy.tables[pop.service_port]
            self.next_conn += 1
            pop.conn_id[slot] = self.next_conn
            pop.conn_entry[slot] = entry
            new_conn = 1
            if table.n == 0:
                # no endpoints anywhere: REJECT, the client is refused within a round trip
                pop.remaining[slot] = 0
                rtt = pop.rtt()
                self._append(log, now, pop, slot, entry, -1, 1, rtt, 0.0)
                log.outcome[request] = FAILED
                log.reason[request] = NO_ENDPOINTS
                log.t_end[request] = now + rtt
                pop.done(request, slot, now + rtt)
                return True
            choice = table.pick()
            pop.conn_pod[slot] = table.pods[choice]
            pop.conn_pod_node[slot] = table.nodes[choice]
            pop.remaining[slot] = pop.per_connection
            proxy_cost = proxy.first_packet_cost()
        else:
            entry = pop.conn_entry[slot]
            new_conn = 0
        pop.remaining[slot] -= 1
        pod = pop.conn_pod[slot]
        network = pop.rtt() + self._hop(entry, pop.conn_pod_node[slot])()
        self._append(log, now, pop, slot, entry, pod, new_conn, network, proxy_cost)
        self.env.timeout(network * 0.5 + proxy_cost, request).callbacks.append(
            self.pods[pod].arrive)
        return True

    def _append(self, log: RequestLog, now: float, pop: Population, slot: int, entry: int,
                pod: int, new_conn: int, network: float, proxy_cost: float) -> None:
        log.t_start.append(now)
        log.population.append(pop.index)
        log.client.append(slot)
        log.conn.append(pop.conn_id[slot])
        log.new_conn.append(new_conn)
        log.entry.append(entry)
        log.pod.append(pod)
        log.network.append(network)
        log.proxy.append(proxy_cost)
        log.service_start.append(np.nan)
        log.service.append(np.nan)
        log.t_end.append(np.nan)
        log.outcome.append(0)
        log.reason.append(0)

    def _done(self, request: int, t_end: float) -> None:
        pop = self.populations[self.log.population[request]]
        if pop.closed:
            pop.done(request, self.log.client[request], t_end)

    # --- driving ----------------------------------------------------------------------

    def run(self) -> RunOutput:
        run = self.scenario.spec.run
        started = time.perf_counter()
        for pop in self.populations:
            pop.start(self.env, self.send)
        if run.duration is not None:
            self.env.run(until=run.duration)
            end = float(run.duration)
        else:
            self.env.run()
            end = float(self.env.now)
        return RunOutput(self.replication, run.seed, self.cluster, self.log, self.populations,
                         end, float(run.warmup), time.perf_counter() - started)
