"""A scenario made into the parts of one run, each given the parts it works with.

The parts and who gets which (nothing gets the :class:`~npsim.sim.engine.Simulation`):

* ``proxies``: one kube-proxy per node in its mode (npsim/proxy), with its first-packet
  cost model; ``relays``: per node, the userspace relay process when its mode relays
  connections itself;
* ``network`` (:class:`~npsim.sim.network.NodeNetwork`): node up/down, SYN answers from
  the fault plan, hop latencies, conntrack (which reads the populations);
* ``registry`` (:class:`~npsim.sim.registry.PodRegistry`): every pod's server, quiet,
  a quiet callee or event-driven (decided here once: ``quiet_pods``,
  npsim/sim/quiet_callee.py ``quiet_callees``), reporting ends to the engine's
  ``on_done``;
* ``control`` (:class:`~npsim.sim.controlplane.ControlPlane`): gets the proxies, the
  registry and conntrack; it owns the kubelets;
* the fault injector gets the control plane and the network; balancers and blackbox
  probers get the proxies, the registry's servers and the network;
* ``populations``: the clients, with their entry (a balancer in front, if any).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import simpy

from npsim.cluster.lifecycle import timing_for, version_default
from npsim.cluster.model import DEFAULT_CLIENT_BASE, Cluster, build_cluster, new_pod
from npsim.proxy import MODES, KubeProxy
from npsim.proxy.base import SharedColumns
from npsim.proxy.ipvs import RS_CHECK_DELETE_INTERVAL
from npsim.scenario.faultplan import FaultPlan
from npsim.sim.balancer import make_balancer
from npsim.sim.call_targets import AddressedEdges
from npsim.sim.clients import (
    Addresses,
    ClosedLoop,
    OpenLoop,
    Population,
    connect_give_up,
    make_entry,
    needs_done,
    retry_spec,
)
from npsim.sim.controlplane import ControlConfig, ControlPlane
from npsim.sim.faults import FaultInjector
from npsim.sim.guard import Guard
from npsim.sim.network import NodeNetwork
from npsim.sim.pods import PodServer, Relay
from npsim.sim.probes import Blackbox, NodePortProbe, blackbox_probers
from npsim.sim.quiet_callee import quiet_callees, wire_answers
from npsim.sim.records import RequestLog
from npsim.sim.registry import ConnectionCount, PodRegistry
from npsim.sim.rpc import CallRecords, calling_class, make_plans
from npsim.sim.syn import syn_linear_timeouts
from npsim.sim.timeline import EventLog
from npsim.sim.tls import TlsCosts, pod_server_class
from npsim.streams import Streams

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario


def make_proxies(scenario: Scenario, cluster: Cluster, streams: Streams) -> list[KubeProxy]:
    """One kube-proxy per node, in the node's mode, with its first-packet cost model.
    They share one cache of endpoint columns, this run's own (dropped when they retire)."""
    spec = scenario.spec.cluster
    shared = SharedColumns()
    services = len(cluster.service_ports) + spec.other_services.count
    clusterip = (any(c.target == "clusterIP" for c in scenario.spec.clients)
                 or scenario.makes_calls)
    proxies: list[KubeProxy] = []
    for node, ns in zip(cluster.nodes, spec.nodes, strict=True):
        mode = MODES[ns.proxy_mode or spec.proxy_mode]
        proxy = mode.create(node, streams.generator(f"proxy/{node.name}"), spec)
        proxy.sync_delay = ns.sync_delay
        if hasattr(proxy, "recheck_origin"):  # IPVS: its graceful-termination ticker
            proxy.recheck_origin = RS_CHECK_DELETE_INTERVAL * float(
                streams.generator(f"ipvs-recheck/{node.name}").random())
        proxy.serves_clusterip = clusterip
        proxy.shared_columns = shared
        cost = proxy.first_packet_cost(spec, services, streams.generator)
        if cost is not None:
            proxy.cost = cost
        proxies.append(proxy)
    return proxies


@dataclass
class Parts:
    """The parts of one run (see the module doc for who gets which)."""

    env: simpy.Environment
    cluster: Cluster
    log: RequestLog
    events: EventLog  # transitions (faults, syncs, health checks, alerts)
    proxies: list[KubeProxy]
    guard: Guard | None  # firewalls in the traffic path: None (and free) without any
    network: NodeNetwork
    registry: PodRegistry
    relays: list[Relay | None]
    control: ControlPlane
    populations: list[Population]
    tls: TlsCosts | None  # HTTPS handshakes per new connection: None without any `tls`
    blackbox: dict[str, Blackbox]  # alert rule -> its prober
    connections: ConnectionCount  # the engine counts, a pod's new process reads it
    calls: CallRecords | None = None  # what pods' calls were made for (None: no calls)


def quiet_pods(scenario: Scenario, cluster: Cluster, plan: FaultPlan,
               proxies: list[KubeProxy], reports_ends: bool) -> set[int]:
    """The pods served after the run from the request log (npsim.sim.pods.QuietPod):
    the first pods that no event touches, when no one waits for ends, no TLS ends at a
    pod and no relay hands requests on at times the log lacks. Decided once."""
    if reports_ends or TlsCosts.terminated_at_pods(scenario.spec.clients) or any(
            p.relays_connections for p in proxies):
        return set()
    return set(range(len(cluster.pods))) - plan.pods_touched(cluster.pods,
                                                             cluster.node_index)


def build(scenario: Scenario, replication: int,
          on_done: Callable[[int, float], None]) -> Parts:
    """The parts of ``scenario``'s run ``replication``; pods report each end to
    ``on_done`` when anyone asks for ends."""
    spec = scenario.spec
    streams = Streams(spec.run.seed, replication)
    env = simpy.Environment()
    cluster = build_cluster(scenario)
    log = RequestLog()
    events = EventLog()
    plan = FaultPlan.of(spec.events, [n.name for n in spec.cluster.nodes if n.down])
    down = plan.down_nodes(cluster.node_index)  # the parts start knowing these are down
    proxies = make_proxies(scenario, cluster, streams)
    guard = Guard.build(scenario, cluster, proxies, events)
    # pods report each end only to populations that ask (closed loops, retries,
    # timeouts, least-connections balancers) and to connection counters
    calling = scenario.makes_calls  # pods call Services: callers wait for every end
    counted = any(p.counts_connections for p in proxies) or (
        guard is not None and guard.counts_connections)
    reports_ends = calling or any(needs_done(c) for c in spec.clients) or counted
    populations: list[Population] = []  # made below: conntrack reads them as they are
    records = CallRecords() if calling else None
    addressed = (AddressedEdges(cluster, env, log, streams, records)
                 if records is not None else None)  # NodePort and external calls
    plans, call_pops = (make_plans(scenario, cluster, env, log, streams, len(spec.clients),
                                   records, addressed) if records is not None else ({}, []))
    server_class = pod_server_class(TlsCosts.terminated_at_pods(spec.clients))
    callers = {name: (calling_class(server_class), plan) for name, plan in plans.items()}
    network = NodeNetwork(cluster, streams, plan, populations)
    if addressed is not None:
        addressed.attach(network.down)
    version = spec.cluster.kubernetes_version
    linear = [syn_linear_timeouts(c.kernel or str(version_default("clients[].kernel", version)),
                                  c.tcp_syn_linear_timeouts) for c in spec.clients]
    timeouts = [connect_give_up(c.syn_retries, c.connect_timeout, k)
                for c, k in zip(spec.clients, linear, strict=True)]
    connections = ConnectionCount()
    # callees served at each arrival (npsim/sim/quiet_callee.py): not where connection
    # counts or TLS at the pod need an event at the end of service
    callees = quiet_callees(cluster, plan, spec.clients, call_pops, plans,
                            counted or server_class is not PodServer)
    registry = PodRegistry(env, cluster, streams, log,
                           quiet_pods(scenario, cluster, plan, proxies, reports_ends),
                           server_class, on_done if reports_ends else None, timeouts,
                           partial(new_pod, scenario, cluster), connections, callers,
                           callees)
    relays: list[Relay | None] = [
        Relay(env, p.node.index, spec.cluster.userspace.workers,
              spec.cluster.userspace.latency.sampler(streams.generator(f"relay/{p.node.name}")),
              log, registry.deliver)
        if p.relays_connections else None
        for p in proxies
    ]
    kube_proxy = spec.cluster.kube_proxy
    config = ControlConfig(
        kube_proxy=kube_proxy,
        propagation=lambda name: kube_proxy.propagation.sampler(
            streams.generator(f"propagation/{name}")),
        other_services=(spec.cluster.other_services.count,
                        spec.cluster.other_services.endpoints_each),
        node_cpu=[n.cpu for n in spec.cluster.nodes],
        timing=timing_for(spec.cluster.kubernetes_version, spec.cluster.control_plane),
        phases=lambda name: float(streams.generator(f"phase/{name}").random()),
        deployments=scenario.deployments, workloads=spec.workloads, down=tuple(down),
        probe_phases=spec.cluster.probe_phase == "random",
        terminating_fallback=(spec.cluster.kube_proxy.terminating_fallback
                              if spec.cluster.kube_proxy.terminating_fallback is not None
                              else bool(version_default(
                                  "cluster.kubeProxy.terminatingFallback", version))))
    control = ControlPlane(env, cluster, proxies, registry, network.conntrack, config, events)
    FaultInjector(env, cluster, control, network).schedule(plan)
    node_names = [n.name for n in cluster.nodes]
    client_pods: dict[int, int] = {}  # client pod addresses used per node
    primary_open = all(p.accepts("primary") for p in proxies)
    for i, cs in enumerate(spec.clients):
        sp = cluster.service_port_for(cs.service, cs.port)
        n_slots = cs.arrival.users if cs.arrival.closed else cs.n_source_ips
        entry = make_entry(cs.entry, cluster.node_index, len(cluster.nodes), n_slots,
                           streams.generator(f"entry/{cs.name}"))
        ip_base = (int(ipaddress.IPv4Address(cs.source_ip_base))
                   if cs.source_ip_base else DEFAULT_CLIENT_BASE + (i << 17))
        if cs.source is not None:
            home = cluster.node_index(cs.source.node)
            addresses = Addresses.in_cluster(cs, cluster.nodes[home], client_pods.get(home, 0))
            if cs.source.kind == "pod":
                client_pods[home] = client_pods.get(home, 0) + cs.n_source_ips
        else:
            addresses = Addresses.external(cs, ip_base, streams.generator(f"nat/{cs.name}"), i)
        balancer = None
        if cs.balancer is not None and cs.balancer.in_front:
            probe = NodePortProbe(proxies, registry.servers, sp.index, network.answers,
                                  streams.generator(f"lb-check/{cs.name}"),
                                  control.proxy_running, control.proxy_healthy)
            entry = balancer = make_balancer(env, cs, sp, node_names, probe,
                                             streams.generator(f"lb/{cs.name}"), events, down)
        common = dict(index=i, spec=cs, n_slots=n_slots, entry=entry, service_port=sp.index,
                      rtt=cs.rtt.sampler(streams.generator(f"rtt/{cs.name}")),
                      ip_base=ip_base, addresses=addresses, log=log,
                      retry_rng=(streams.generator(f"retry/{cs.name}")
                                 if retry_spec(cs) is not None else None),
                      syn_linear=linear[i])
        if cs.arrival.closed:
            assert cs.arrival.think_time is not None
            think = cs.arrival.think_time.sampler(streams.generator(f"think/{cs.name}"))
            pop: Population = ClosedLoop(think=think, **common)
        else:
            pop = OpenLoop(arrivals=streams.generator(f"arrivals/{cs.name}"), **common)
        populations.append(pop)
        if cs.target == "nodePort" and not primary_open:
            pop.asks_accepts = True  # nodePortAddresses leaves a primary address out
        if cs.target == "loadBalancerIP" and sp.service.load_balancer_source_ranges:
            pop.blocked = outside_ranges(pop.wire_ips, sp.service.load_balancer_source_ranges)
        if balancer is not None:
            pop.balancer = balancer
            # the client hears of a node that does not answer when the balancer's own
            # connect attempt gives up (nginx proxy_connect_timeout): a 502/504
            pop.connect_timeout = min(pop.connect_timeout, connect_give_up(
                cs.syn_retries, cs.balancer.connect_timeout, linear[i]))
            timeouts[i] = pop.connect_timeout
    for call_pop in call_pops:  # after the clients: their rows' population indexes
        populations.append(call_pop)
        timeouts.append(call_pop.connect_timeout)
    if callees:
        wire_answers(registry.servers, populations)
    tls = TlsCosts(populations, streams.generator) if TlsCosts.wanted(spec.clients) else None
    ports = sorted({pop.service_port for pop in populations if pop.target == "nodePort"})
    blackbox = blackbox_probers(env, spec.monitoring, ports, proxies, registry.servers,
                                network.answers, streams.generator)
    return Parts(env, cluster, log, events, proxies, guard, network, registry, relays,
                 control, populations, tls, blackbox, connections, records)


def outside_ranges(addresses: list[int], ranges: tuple[str, ...]) -> frozenset[int]:
    """The addresses no ``loadBalancerSourceRanges`` entry holds: kube-proxy's KUBE-FW
    chain lets the others through to KUBE-EXT (proxier.go), these meet the drop."""
    nets = [ipaddress.IPv4Network(r) for r in ranges]
    return frozenset(a for a in set(addresses)
                     if not any(ipaddress.IPv4Address(a) in net for net in nets))
