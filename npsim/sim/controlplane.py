"""The control plane's part: endpoint changes, and when each node's kube-proxy sees them.

A change (a scale, a rollout, a pod turning Ready or NotReady, a node declared Unknown,
an eviction) updates the EndpointSlices at once: per pod ``ready`` / ``serving`` /
``terminating`` (npsim/cluster/lifecycle.py). Each node then learns of it on its own
clock (EndpointSlice controller, then kube-proxy's ``minSyncPeriod`` in
``pkg/proxy/apis/config``; KEP-3453 measures real sync latencies):

* the EndpointSlice update reaches the node after a ``propagation`` delay drawn per node
  and change, plus the node's fixed ``syncDelay``;
* kube-proxy syncs no sooner than ``minSyncPeriod`` (1 s) after its previous sync;
* the sync takes ``syncBase`` plus, in iptables mode, ``syncPerRule`` per NAT rule, so a
  cluster with 10,000 Services applies changes visibly later than a small one.

Until its sync completes a node keeps sending new connections to the endpoints it knew.
A stopped (or dead, or cut off) kube-proxy keeps its rules frozen at its last sync.

The controllers live here too: the node lifecycle controller (leases, Unknown, taints,
eviction after ``tolerationSeconds``), the ReplicaSet (replacements on healthy nodes,
respecting the workload's placement) and the Deployment's rolling update. What happens
on a node (containers starting, probes, termination) is the kubelet's, in
npsim/sim/kubelet.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import simpy

from npsim.cluster.lifecycle import (
    ControlPlaneTiming,
    PodLife,
    PodPhase,
    endpoint_conditions,
    resolve_strategy,
    rollout_step,
)
from npsim.cluster.model import Cluster, Endpoint, Pod, endpoints_for
from npsim.cluster.placement import choose_node
from npsim.cluster.topology import Hints, hints_for
from npsim.dists import Sampler
from npsim.proxy.base import KubeProxy
from npsim.scenario.cluster_spec import KubeProxySpec
from npsim.scenario.problems import Problem, ScenarioError
from npsim.sim.eviction import NodeLifecycle
from npsim.sim.kubelet import Kubelets
from npsim.sim.network import Conntrack
from npsim.sim.registry import PodRegistry
from npsim.sim.timeline import EventLog


class Published(NamedTuple):
    """One version of a Service port's EndpointSlices: ready endpoints, their topology
    hints, and the terminating ones kube-proxy falls back to when none is ready."""

    ready: tuple
    hints: Any
    terminating: tuple


@dataclass(frozen=True)
class ControlConfig:
    """What the controllers and kubelets take of the scenario, read once when the run
    is built (npsim/sim/build.py)."""

    kube_proxy: KubeProxySpec
    # a node's propagation-delay sampler, by node name (made at the first change)
    propagation: Callable[[str], Sampler]
    other_services: tuple[int, int]  # Services not simulated: count, endpoints each
    node_cpu: list[float]
    timing: ControlPlaneTiming
    # a timer's phase in [0, 1), by name, from its own stream
    phases: Callable[[str], float]
    deployments: Mapping[str, Any]  # name -> manifests.Deployment (strategy, probes)
    workloads: Mapping[str, Any]  # name -> the scenario's workload (placement, startup)
    down: tuple[int, ...] = ()  # nodes down before the run (FaultPlan.down)
    probe_phases: bool = False  # each probe worker's phase drawn (False: aligned)
    # kube-proxy falls back to serving-terminating endpoints (ProxyTerminatingEndpoints,
    # on by default from v1.26: npsim/cluster/lifecycle.py VERSION_DEFAULTS)
    terminating_fallback: bool = True


@dataclass(slots=True)
class NodeSync:
    """One node's kube-proxy sync state."""

    proxy: KubeProxy
    # the node's propagation delays: drawn from its own stream, made at the first
    # endpoint change (a run without one never needs it: 1000 nodes' were 1.8 MB)
    propagation: Sampler | None
    extra_delay: float
    sync_duration: float
    last_sync: float = -math.inf
    arrived: int = 0  # newest endpoint version this node has heard of
    pending: bool = False
    applied: int = 0
    history: list[tuple[float, int]] = field(default_factory=list)  # (time, version) applied
    frozen: bool = False  # kube-proxy stopped (or its node down): rules stay as they are
    queued_since: float | None = None  # oldest change heard of and not yet synced


class _Lives(dict):
    """PodLife per pod index, made when first asked for: until then a pod is as it
    started (10,000 PodLife objects were 1.3 MB kept after a run that changed none)."""

    __slots__ = ("pods",)

    def __init__(self, pods: list[Pod]) -> None:
        super().__init__()
        self.pods = pods

    def __missing__(self, index: int) -> PodLife:
        pod = self.pods[index]
        life = self[index] = PodLife(index, ready=pod.starts_serving,
                                     terminating=pod.terminating)
        return life


class ControlPlane:
    """Holds the true endpoint conditions (versioned), drives every node's syncs and runs
    the controllers that change them."""

    def __init__(self, env: simpy.Environment, cluster: Cluster, proxies: list[KubeProxy],
                 registry: PodRegistry, conntrack: Conntrack, config: ControlConfig,
                 events: EventLog) -> None:
        self.env = env
        self.cluster = cluster
        self.registry = registry  # adds pods, stops deleted ones
        self.conntrack = conntrack  # UDP conntrack cleanup after a sync
        self.spec = spec = config.kube_proxy
        self.node_cpu = config.node_cpu
        self.events = events
        self.timing = config.timing
        self.deployments = config.deployments
        self.workloads = config.workloads
        # the kubelets act on nodes
        self.kubelets = Kubelets(env, self, registry, cluster, config.workloads,
                                 config.deployments,
                                 config.phases if config.probe_phases else None)
        self.fallback = config.terminating_fallback
        # hand-placed pods start with their slices' conditions
        self.life: dict[int, PodLife] = _Lives(cluster.pods)
        self.in_api: set[int] = {p.index for p in cluster.pods}  # pod objects that exist
        # every Deployment, those with replicas: 0 too (a scale or rollout may name them)
        self.desired: dict[str, int] = dict.fromkeys(config.deployments, 0)
        self.revision: dict[str, int] = dict.fromkeys(config.deployments, 0)
        for p in cluster.pods:
            self.desired[p.deployment] = self.desired.get(p.deployment, 0) + 1
            self.revision.setdefault(p.deployment, 0)
        self.rolling: set[str] = set()
        self.pending: list[str] = list(cluster.pending)  # with a pod no node takes yet
        for name, (count, why) in cluster.pending.items():  # the scheduler's, at the start
            self.desired[name] += count
            self.record("pod_pending", name, why)
        self.changes: list[tuple[float, str]] = []  # the timeline: (time, what changed)
        self._publishing = False
        # the node lifecycle controller (npsim/sim/eviction.py): conditions, zones, taints
        self.lifecycle = NodeLifecycle(env, self, self.timing, config.phases, config.down)
        self.health = self.lifecycle.health
        for node in config.down:  # detected, not evicted (Kubelets.down_from_start)
            self.kubelets.down_from_start(node)
        # Endpoint objects by (pod, target port), shared by the versions published during
        # the run (made at the first publish: a run without changes never needs it)
        self._made: dict[tuple[int, int], Endpoint] | None = None
        self.versions = [self._snapshot()]
        # (id of the endpoints before, after) -> (pods gone, pods come), see _record_diff
        self._diffs: dict[tuple[int, int], tuple[list[str], list[str]]] = {}
        others, others_each = config.other_services
        services = len(cluster.service_ports) + others
        endpoints = sum(len(sp.endpoints) for sp in cluster.service_ports)
        mean_e = (endpoints + others * others_each) / max(services, 1)
        self._propagation = config.propagation
        self.nodes = [NodeSync(proxy, None, proxy.sync_delay,  # a down node's is stopped
                               proxy.sync_seconds(spec, services, mean_e),
                               frozen=proxy.node.index in config.down) for proxy in proxies]
        for sync in self.nodes:
            for sp in cluster.service_ports:
                sync.proxy.program(sp, *self._view(0, sp.index, 0.0))
            sync.history.append((0.0, 0))
            # a long-running kube-proxy: its previous sync is long past at t=0

    @property
    def ready(self) -> set[int]:
        """Pods whose endpoints are ready (Ready and not terminating) right now."""
        pods = self.cluster.pods
        return {i for i in self.in_api if self._conditions(pods[i])[0]}

    def _conditions(self, pod: Pod) -> tuple[bool, bool, bool]:
        """The pod's EndpointSlice (ready, serving, terminating), without making its
        PodLife if nothing has happened to it yet."""
        life = self.life.get(pod.index)
        if life is not None:
            return life.conditions
        return endpoint_conditions(pod.starts_serving, pod.terminating)

    def _snapshot(self) -> dict[int, tuple[tuple[Endpoint, ...], Hints, tuple[Endpoint, ...]]]:
        """Per Service port: ready endpoints, the hints the controller sets, and the
        serving-terminating endpoints (kube-proxy's fallback, KEP-1669)."""
        ready_pods, terminating = [], []
        for p in self.cluster.pods:
            if p.index not in self.in_api:
                continue
            ready, serving, term = self._conditions(p)
            if ready:
                ready_pods.append(p)
            elif serving and term and self.fallback:
                terminating.append(p)
        out = {}
        for sp in self.cluster.service_ports:
            endpoints = self.cluster.endpoints_of(sp, ready_pods, self._made)
            out[sp.index] = (endpoints, hints_for(sp.service, endpoints, self.cluster.nodes,
                                                  self.node_cpu),
                             endpoints_for(sp.service, sp.port, terminating, self._made)
                             if terminating else ())
        return out

    def published(self, service_port: int, version: int = -1) -> Published:
        """The endpoints ``version`` of the EndpointSlices gives a Service port (the
        latest by default; 0 is the cluster as built)."""
        return Published(*self.versions[version][service_port])

    def _view(self, version: int, sp: int, now: float) -> tuple:
        endpoints, hints, terminating = self.versions[version][sp]
        return endpoints, now, hints, terminating

    def retire(self) -> None:
        """The run is over: let go of what only a running control plane needs (each
        node's propagation stream and its buffered draws, the endpoint and diff memos);
        the output keeps the versions and every node's sync history."""
        for sync in self.nodes:
            sync.propagation = None  # type: ignore[assignment]
        # the pods and flows of the run: its output keeps none of them (the kubelets and
        # this control plane hold each other, so they go with the collector, later)
        self.registry = self.conntrack = self.kubelets.registry = None  # type: ignore[assignment]
        self._made = None
        self._diffs.clear()

    def ready_history(self) -> list[list[tuple[float, int]]]:
        """Per node: (time, ready endpoints of the simulated Services) each time its
        kube-proxy applied a version, from the start (the time series' node views)."""
        counts = [sum(len(view[0]) for view in version.values()) for version in self.versions]
        return [[(t, counts[v]) for t, v in sync.history] for sync in self.nodes]

    def record(self, kind: str, subject: str, detail: str = "") -> None:
        self.events.record(self.env.now, kind, subject, detail)

    def proxy_running(self, node: int) -> bool:
        """Whether the node's kube-proxy runs (its health server answers)."""
        return not self.nodes[node].frozen

    def proxy_healthy(self, node: int) -> bool:
        """kube-proxy's node health server (/healthz, /livez): healthy unless the oldest
        change it has heard of waited 2 x ``syncPeriod`` for a sync (``proxy_health.go``
        ``oldestPendingQueued``; ``server.go`` passes 2 x syncPeriod)."""
        since = self.nodes[node].queued_since
        return since is None or self.env.now - since < 2 * self.spec.sync_period

    # --- changes ----------------------------------------------------------------------

    def scale(self, deployment: str, replicas: int) -> None:
        """The ReplicaSet grows (new pods start, Ready after start-up and readiness) or
        shrinks (pods go through termination: preStop, SIGTERM, grace period)."""
        self.desired[deployment] = replicas
        live = self.active(deployment)
        if replicas > len(live):
            for _ in range(replicas - len(live)):
                self.create_pod(deployment)
        else:
            for pod in self._deletion_order(live)[: len(live) - replicas]:
                self.delete_pod(pod, "scale")
        self.changes.append((self.env.now, f"scale {deployment} to {replicas}"))
        self.record("scale", deployment, f"replicas={replicas}")
        self.publish()

    def active(self, deployment: str) -> list[Pod]:
        """The Deployment's pods that exist and are not terminating (what a ReplicaSet
        counts)."""
        return [p for p in self.cluster.pods if p.deployment == deployment
                and p.index in self.in_api and not self.life[p.index].terminating]

    def _deletion_order(self, pods: list[Pod]) -> list[Pod]:
        """Not-ready pods first, then the newest (a simplification of the ReplicaSet's
        ranking, controller_utils.go ActivePods)."""
        return sorted(pods, key=lambda p: (self.life[p.index].ready, -p.index))

    def schedulable(self, deployment: str) -> list[int]:
        """Nodes a new pod may go to: Ready, untainted, and named by the placement."""
        placement = self.workloads[deployment].placement
        allowed = [i for i, h in enumerate(self.health) if h.condition == "Ready"
                   and not h.tainted and h.kubelet_up]
        if isinstance(placement, dict):
            named = {self.cluster.node_index(n) for n, c in placement.items() if c > 0}
            allowed = [i for i in allowed if i in named]
        return allowed

    def create_pod(self, deployment: str) -> Pod | None:
        """A new pod of the current revision where the placement puts it (the fewest of
        the Deployment's pods, or kube-scheduler's choice); None while no node can."""
        node, why = choose_node(self.cluster.placer, deployment, self.schedulable(deployment),
                                map(self.cluster.pods.__getitem__, self.in_api),
                                self.active(deployment), self.life, self.revision[deployment])
        if node is None:
            if deployment not in self.pending:
                self.pending.append(deployment)
                self.record("pod_pending", deployment, why)
            return None
        try:
            pod = self.registry.add_pod(deployment, node)
        except ValueError as exc:  # no address left in the pod CIDR
            raise ScenarioError([Problem(None, "events", f"at {self.env.now:g}s: "
                                         f"a new {deployment} pod: {exc}")]) from None
        pod.created_at = self.env.now
        self.life[pod.index] = PodLife(pod.index, PodPhase.STARTING, ready=False,
                                       revision=self.revision[deployment])
        self.in_api.add(pod.index)
        self.record("pod_scheduled", pod.name, self.cluster.nodes[node].name)
        self.kubelets.start(pod)
        return pod

    def delete_pod(self, pod: Pod, why: str) -> None:
        """deletionTimestamp set: the endpoint turns terminating (not ready); the kubelet
        runs preStop, SIGTERM and the grace period, if it is there to do so."""
        life = self.life[pod.index]
        if life.terminating or pod.index not in self.in_api:
            return
        life.terminating = True
        self.record("pod_terminating", pod.name, why)
        self.kubelets.terminate(pod)

    def pod_gone(self, pod: Pod) -> None:
        """The pod object is removed (its containers have stopped)."""
        if pod.index not in self.in_api:
            return
        self.in_api.discard(pod.index)
        self.life[pod.index].phase = PodPhase.GONE
        self.registry.stop_pod(pod)
        self.record("pod_deleted", pod.name)
        self.publish()
        self._progress(pod.deployment)

    def set_ready(self, pod: Pod, ready: bool, why: str = "") -> None:
        """The pod's Ready condition changes (kubelet probes, MarkPodsNotReady)."""
        life = self.life[pod.index]
        if life.ready == ready or pod.index not in self.in_api:
            return
        life.ready = ready
        self.record("pod_ready" if ready else "pod_not_ready", pod.name, why)
        self.publish()
        self._progress(pod.deployment)

    def _progress(self, deployment: str) -> None:
        if deployment in self.rolling:
            self._reconcile_rollout(deployment)
        if self.pending:
            self.retry_pending()

    def publish(self) -> None:
        """The EndpointSlices changed: one new version for every change made at this
        instant (written once the instant's other events have run)."""
        if not self._publishing:
            self._publishing = True
            self.env.timeout(0).callbacks.append(self._publish)

    def _publish(self, _event: simpy.Event) -> None:
        """A new endpoint version: every node hears of it after its own delay."""
        self._publishing = False
        if self._made is None:  # the endpoints of the first version, to be reused
            self._made = {(e.pod, e.port): e for version in self.versions
                          for views in version.values() for e in views[0] + views[2]}
        self.versions.append(self._snapshot())
        version = len(self.versions) - 1
        for sync in self.nodes:
            if sync.propagation is None:
                sync.propagation = self._propagation(
                    self.cluster.nodes[sync.proxy.node.index].name)
            delay = sync.propagation() + sync.extra_delay
            self.env.timeout(delay, (sync, version)).callbacks.append(self._arrive)

    # --- rolling update (deployment controller, rolling.go) --------------------------------

    def rollout(self, deployment: str) -> None:
        """A new pod template: pods of the new revision replace the old ones within the
        strategy's maxSurge / maxUnavailable."""
        self.revision[deployment] += 1
        self.rolling.add(deployment)
        self.record("rollout_start", deployment, f"revision={self.revision[deployment]}")
        self._reconcile_rollout(deployment)

    def _reconcile_rollout(self, deployment: str) -> None:
        """Scale the new ReplicaSet up, the old one down; again while that changes
        something (the controller re-syncs on its own ReplicaSets' updates)."""
        while deployment in self.rolling and self._rollout_pass(deployment):
            pass

    def _rollout_pass(self, deployment: str) -> bool:
        revision = self.revision[deployment]
        replicas = self.desired[deployment]
        dep = self.deployments.get(deployment)
        strategy = resolve_strategy(replicas, getattr(dep, "max_surge", "25%"),
                                    getattr(dep, "max_unavailable", "25%"))
        live = self.active(deployment)
        old = [p for p in live if self.life[p.index].revision != revision]
        new = [p for p in live if self.life[p.index].revision == revision]
        new_available = sum(self.life[p.index].ready for p in new)
        create, _ = rollout_step(replicas, strategy, len(old), len(new), new_available)
        made = [p for p in (self.create_pod(deployment) for _ in range(create)) if p]
        _, delete = rollout_step(replicas, strategy, len(old), len(new) + len(made),
                                 new_available)
        doomed = self._deletion_order(old)[:delete]
        for pod in doomed:
            self.delete_pod(pod, "rollout")
        if made or doomed:
            self.record("rollout_step", deployment,
                        f"created={len(made)} deleted={len(doomed)} "
                        f"old={len(old) - len(doomed)} new={len(new) + len(made)}")
            self.publish()
        if not old and new_available >= replicas:
            self.rolling.discard(deployment)
            self.record("rollout_done", deployment, f"revision={revision}")
        return bool(made or doomed)

    def retry_pending(self) -> None:
        """Pods that found no node are created once one can take them."""
        for deployment in list(dict.fromkeys(self.pending)):
            if not self.schedulable(deployment):
                continue
            self.pending = [d for d in self.pending if d != deployment]
            while len(self.active(deployment)) < self.desired[deployment]:
                if self.create_pod(deployment) is None:
                    break

    # --- node lifecycle controller -------------------------------------------------------

    def kubelet_stopped(self, node: int) -> None:
        """The node's kubelet no longer renews its lease (npsim/sim/eviction.py)."""
        self.lifecycle.kubelet_stopped(node)

    def kubelet_started(self, node: int) -> None:
        """The kubelet renews its lease again (npsim/sim/eviction.py)."""
        self.lifecycle.kubelet_started(node)

    def evict(self, node: int, only: Collection[str] | None = None) -> None:
        """The taint outlasted the pods' toleration: they (those of the Deployments
        ``only`` names, if given) are deleted and the ReplicaSets create replacements on
        schedulable nodes."""
        for pod in list(self.cluster.pods):
            if pod.node == node and pod.index in self.in_api and not self.life[
                    pod.index].terminating and (only is None or pod.deployment in only):
                self.record("pod_evicted", pod.name, "taint toleration expired")
                self.delete_pod(pod, "eviction")
                # a bare pod (hand-placed, no Deployment) has no ReplicaSet to replace it
                if pod.deployment in self.deployments and \
                        len(self.active(pod.deployment)) < self.desired[pod.deployment]:
                    self.create_pod(pod.deployment)
        self.publish()

    # --- kube-proxy syncs ---------------------------------------------------------------

    def freeze(self, node: int, frozen: bool) -> None:
        """Stop (or restart) a node's kube-proxy; a restarted one syncs what it missed."""
        sync = self.nodes[node]
        sync.frozen = frozen
        if not frozen:
            sync.arrived = len(self.versions) - 1
            self._want_sync(sync)

    def _arrive(self, event: simpy.Event) -> None:
        sync, version = event.value
        sync.arrived = max(sync.arrived, version)
        if sync.queued_since is None and not sync.frozen and version > sync.applied:
            sync.queued_since = self.env.now  # the health server's QueuedUpdate
        self._want_sync(sync)

    def _want_sync(self, sync: NodeSync) -> None:
        """Schedule this node's next sync, no sooner than minSyncPeriod after the last."""
        if sync.pending or sync.frozen or sync.arrived <= sync.applied:
            return
        sync.pending = True
        start = max(self.env.now, sync.last_sync + self.spec.min_sync_period)
        self.env.timeout(start - self.env.now, sync).callbacks.append(self._start_sync)

    def _start_sync(self, event: simpy.Event) -> None:
        """A sync programs what the node had heard of when it started; a change that
        arrives meanwhile waits for the next sync."""
        sync = event.value
        sync.last_sync = self.env.now
        self.env.timeout(sync.sync_duration, (sync, sync.arrived)).callbacks.append(self._sync)

    def _sync(self, event: simpy.Event) -> None:
        sync, version = event.value
        now = self.env.now
        if sync.frozen:  # stopped mid-sync: nothing is written
            sync.pending = False
            return
        before = self.versions[sync.applied]
        after = self.versions[version]
        for sp in self.cluster.service_ports:
            sync.proxy.program(sp, *self._view(version, sp.index, now))
            self._record_diff(sync, sp.index, before[sp.index], after[sp.index])
            if sp.port.protocol == "UDP" and (
                    before[sp.index] != after[sp.index]):
                serving = {e.pod for e in after[sp.index][0] + after[sp.index][2]}
                # a Service left with no serving endpoint: kube-proxy skips its cleanup
                # (conntrack/cleanup.go CleanStaleEntries: only Services that have one)
                if serving:
                    self.conntrack.flush_udp(sync.proxy.node.index, sp.index, serving)
        sync.applied = version
        sync.queued_since = None  # healthz Updated()
        sync.history.append((now, version))
        sync.pending = False
        self._want_sync(sync)

    def _record_diff(self, sync: NodeSync, sp: int, before: tuple, after: tuple) -> None:
        """endpoints_removed / endpoints_added as this node's kube-proxy applies them.
        Every node applies the same published versions: the difference of two endpoint
        tuples is worked out once (it was a pass over every endpoint at every node's
        sync: 1000 nodes x 10,000 endpoints per change)."""
        if before[0] is after[0]:
            return
        key = (id(before[0]), id(after[0]))  # both tuples stay alive in self.versions
        diff = self._diffs.get(key)
        if diff is None:
            old = {e.pod for e in before[0]}
            new = {e.pod for e in after[0]}
            pods = self.cluster.pods
            diff = self._diffs[key] = (sorted(pods[i].name for i in old - new),
                                       sorted(pods[i].name for i in new - old))
        gone, came = diff
        if not gone and not came:
            return
        name = sync.proxy.node.name
        port = self.cluster.service_ports[sp].name
        if gone:
            self.record("endpoints_removed", name, f"{port} {','.join(gone)}")
        if came:
            self.record("endpoints_added", name, f"{port} {','.join(came)}")
