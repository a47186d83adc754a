"""The control plane's part: endpoint changes, and when each node's kube-proxy sees them.

A change (today: a Deployment scaled at a given time; node and pod failures come later)
updates the true set of ready endpoints at once. Each node then learns of it on its own
clock (EndpointSlice controller, then kube-proxy's ``minSyncPeriod`` in
``pkg/proxy/apis/config``; KEP-3453 measures real sync latencies):

* the EndpointSlice update reaches the node after a ``propagation`` delay drawn per node
  and change, plus the node's fixed ``syncDelay``;
* kube-proxy syncs no sooner than ``minSyncPeriod`` (1 s) after its previous sync;
* the sync takes ``syncBase`` plus, in iptables mode, ``syncPerRule`` per NAT rule, so a
  cluster with 10,000 Services applies changes visibly later than a small one.

Until its sync completes a node keeps sending new connections to the endpoints it knew.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import simpy

from npsim.cluster.model import Cluster, Endpoint, Pod, endpoints_for
from npsim.cluster.topology import Hints, hints_for
from npsim.dists import Sampler
from npsim.proxy.base import KubeProxy
from npsim.scenario.problems import Problem, ScenarioError
from npsim.scenario.schema import EventSpec, KubeProxySpec


def iptables_nat_rules(services: int, endpoints_each: float) -> float:
    """NAT rules kube-proxy writes: 5 + S x (2 + 3E) (TestNumberIptablesRules, 1.26-era)."""
    return 5 + services * (2 + 3 * endpoints_each)


@dataclass
class NodeSync:
    """One node's kube-proxy sync state."""

    proxy: KubeProxy
    propagation: Sampler
    extra_delay: float
    sync_duration: float
    last_sync: float = -math.inf
    arrived: int = 0  # newest endpoint version this node has heard of
    pending: bool = False
    applied: int = 0
    history: list[tuple[float, int]] = field(default_factory=list)  # (time, version) applied


class ControlPlane:
    """Holds the true endpoint set (versioned) and drives every node's syncs."""

    def __init__(
        self,
        env: simpy.Environment,
        cluster: Cluster,
        proxies: list[KubeProxy],
        spec: KubeProxySpec,
        propagation: Callable[[str], Sampler],
        other_services: tuple[int, int],
        add_pod: Callable[[str, set[int]], Pod],
        stop_pod: Callable[[Pod], None],
        node_cpu: list[float] | None = None,
    ) -> None:
        self.env = env
        self.node_cpu = node_cpu or [1.0] * len(cluster.nodes)
        self.cluster = cluster
        self.spec = spec
        self.add_pod = add_pod
        self.stop_pod = stop_pod
        self.ready: set[int] = {p.index for p in cluster.pods}
        self.changes: list[tuple[float, str]] = []  # the timeline: (time, what changed)
        self.versions = [self._snapshot()]
        services = len(cluster.service_ports) + other_services[0]
        endpoints = sum(len(sp.endpoints) for sp in cluster.service_ports)  # NAT rules
        mean_e = (endpoints + other_services[0] * other_services[1]) / max(services, 1)
        rules = iptables_nat_rules(services, mean_e)
        self.nodes = []
        for proxy in proxies:
            duration = spec.sync_base + (spec.sync_per_rule * rules
                                         if proxy.mode == "iptables" else 0.0)
            ns = cluster.nodes[proxy.node.index]
            self.nodes.append(NodeSync(proxy, propagation(ns.name),
                                       proxy.sync_delay, duration))
        for sync in self.nodes:
            for sp in cluster.service_ports:
                sync.proxy.program(sp, *self._view(0, sp.index, 0.0))
            sync.history.append((0.0, 0))
            # a long-running kube-proxy: its previous sync is long past at t=0

    def _snapshot(self) -> dict[int, tuple[tuple[Endpoint, ...], Hints]]:
        """Ready endpoints per Service port, with the hints the controller sets."""
        ready_pods = [p for p in self.cluster.pods if p.index in self.ready]
        out = {}
        for sp in self.cluster.service_ports:
            endpoints = endpoints_for(sp.service, sp.port, ready_pods)
            out[sp.index] = (endpoints, hints_for(sp.service, endpoints, self.cluster.nodes,
                                                  self.node_cpu))
        return out

    def _view(self, version: int, sp: int, now: float) -> tuple:
        endpoints, hints = self.versions[version][sp]
        return endpoints, now, hints

    # --- changes ----------------------------------------------------------------------

    def schedule(self, events: list[EventSpec]) -> None:
        for event in events:
            self.env.timeout(event.at).callbacks.append(
                lambda _e, ev=event: self.scale(ev.scale.deployment, ev.scale.replicas))

    def scale(self, deployment: str, replicas: int) -> None:
        live = [p for p in self.cluster.pods if p.deployment == deployment and p.index in
                self.ready]
        if replicas > len(live):
            for _ in range(replicas - len(live)):
                try:
                    pod = self.add_pod(deployment, self.ready)
                except ValueError as exc:  # no address left in the pod CIDR
                    raise ScenarioError([Problem(None, "events", f"at {self.env.now:g}s: "
                                                 f"scaling {deployment} to {replicas}: {exc}")]
                                        ) from None
                self.ready.add(pod.index)
        else:
            # newest first (a simplification of ReplicaSet's deletion ranking)
            for pod in sorted(live, key=lambda p: -p.index)[: len(live) - replicas]:
                self.ready.discard(pod.index)
                self.stop_pod(pod)
        self.changes.append((self.env.now, f"scale {deployment} to {replicas}"))
        self.publish()

    def publish(self) -> None:
        """A new endpoint version: every node hears of it after its own delay."""
        self.versions.append(self._snapshot())
        version = len(self.versions) - 1
        for sync in self.nodes:
            delay = sync.propagation() + sync.extra_delay
            self.env.timeout(delay, (sync, version)).callbacks.append(self._arrive)

    def _arrive(self, event: simpy.Event) -> None:
        sync, version = event._value
        sync.arrived = max(sync.arrived, version)
        self._want_sync(sync)

    def _want_sync(self, sync: NodeSync) -> None:
        """Schedule this node's next sync, no sooner than minSyncPeriod after the last."""
        if sync.pending or sync.arrived <= sync.applied:
            return
        sync.pending = True
        start = max(self.env.now, sync.last_sync + self.spec.min_sync_period)
        self.env.timeout(start - self.env.now, sync).callbacks.append(self._start_sync)

    def _start_sync(self, event: simpy.Event) -> None:
        """A sync programs what the node had heard of when it started; a change that
        arrives meanwhile waits for the next sync."""
        sync = event._value
        sync.last_sync = self.env.now
        self.env.timeout(sync.sync_duration, (sync, sync.arrived)).callbacks.append(self._sync)

    def _sync(self, event: simpy.Event) -> None:
        sync, version = event._value
        now = self.env.now
        for sp in self.cluster.service_ports:
            sync.proxy.program(sp, *self._view(version, sp.index, now))
        sync.applied = version
        sync.history.append((now, version))
        sync.pending = False
        self._want_sync(sync)
