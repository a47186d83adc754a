"""The node lifecycle controller: leases, Unknown nodes, zone states, rate-limited taints
and evictions (kube-controller-manager ``pkg/controller/nodelifecycle``).

What it does, in the upstream order of one monitor pass (``monitorNodeHealth``, every
``--node-monitor-period``):

* a node whose lease was not renewed within the grace period turns ``Unknown``; its pods
  are marked NotReady in that same pass (``MarkPodsNotReady``);
* ``processTaintBaseEviction`` reads the Ready condition the pass *started* with, so the
  node is queued for the ``unreachable:NoExecute`` taint at the next pass, one monitor
  period after it turned Unknown;
* ``handleDisruption`` then computes each zone's state (:func:`compute_zone_state`,
  ``ComputeZoneState``) and sets the zone's taint rate (``setLimiterInZone``):
  ``nodeEvictionRate`` in a Normal or fully disrupted zone, ``secondaryNodeEvictionRate``
  in a partially disrupted zone of more than ``largeClusterSizeThreshold`` nodes and 0 in
  a smaller one (``ReducedQPSFunc``). When every zone is fully disrupted it stops all
  evictions: every node's taint is removed and every rate set to 0, until a node is
  Ready again;
* a separate loop taints queued nodes as each zone's token bucket allows
  (``doNoExecuteTaintingPass`` on a ``RateLimitedTimedQueue``: burst 1, so two nodes of a
  zone are tainted ``1 / rate`` = 10 s apart). npsim taints the moment the token is
  there; upstream's loop runs every 100 ms, so it may be up to 0.1 s later;
* the taint manager deletes each pod of a tainted node after its ``tolerationSeconds``
  (300 s by default; a pod's own NoExecute toleration of the taint sets its own, or keeps
  it for ever: ``eviction_delay``) and the ReplicaSet creates a replacement.

Events: ``node_unknown``, ``pod_not_ready``, ``zone_state`` (subject the zone, detail the
state and its taint rate), ``taint_added`` / ``taint_removed``, ``pod_evicted``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import simpy

from npsim.cluster.lifecycle import (
    ControlPlaneTiming,
    eviction_delay,
    last_renewal_before,
    ready_seen_at,
    unknown_at,
)
from npsim.cluster.model import Cluster
from npsim.cluster.placement import pod_needs
from npsim.cluster.scheduler import Taint

UNREACHABLE = "node.kubernetes.io/unreachable:NoExecute"
UNREACHABLE_TAINT = Taint("node.kubernetes.io/unreachable", "", "NoExecute")


class Controllers(Protocol):
    """What the node lifecycle controller works with (npsim/sim/controlplane.py)."""

    cluster: Cluster
    life: Mapping[int, Any]  # pod index -> PodLife
    in_api: set[int]
    deployments: Mapping[str, Any]  # name -> Deployment (its pods' tolerations)
    kubelets: Any  # npsim.sim.kubelet.Kubelets
    pending: list[str]

    def record(self, kind: str, subject: str, detail: str = "") -> None: ...
    def publish(self) -> None: ...
    def retry_pending(self) -> None: ...
    def evict(self, node: int, only: Collection[str] | None = None) -> None: ...


class ZoneState(Enum):
    NORMAL = "Normal"
    PARTIAL = "PartialDisruption"
    FULL = "FullDisruption"


def compute_zone_state(ready: int, not_ready: int, unhealthy_threshold: float) -> ZoneState:
    """``ComputeZoneState``: fully disrupted when no node of the zone is Ready, partially
    when more than 2 nodes and at least ``unhealthy_threshold`` of them are not."""
    if ready == 0 and not_ready > 0:
        return ZoneState.FULL
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return ZoneState.PARTIAL
    return ZoneState.NORMAL


def zone_rate(state: ZoneState, zone_size: int, timing: ControlPlaneTiming) -> float:
    """Taints per second in a zone of ``zone_size`` nodes (``setLimiterInZone``: Normal
    and FullDisruption take ``HealthyQPSFunc``, PartialDisruption ``ReducedQPSFunc``)."""
    if state is ZoneState.PARTIAL:
        return (timing.secondary_eviction_rate
                if zone_size > timing.large_cluster_size_threshold else 0.0)
    return timing.eviction_rate


class TokenBucket:
    """client-go's token bucket with burst 1 (``flowcontrol.NewTokenBucketRateLimiter``
    over ``golang.org/x/time/rate``): full at the start, one token per ``1 / qps``
    seconds; qps 0 never accepts (``NewFakeNeverRateLimiter``)."""

    def __init__(self, qps: float, now: float) -> None:
        self.qps = qps
        self.tokens = 1.0
        self.stamp = now

    def _refill(self, now: float) -> None:
        if self.qps > 0:
            self.tokens = min(1.0, self.tokens + (now - self.stamp) * self.qps)
        self.stamp = now

    def try_accept(self, now: float) -> bool:
        if self.qps <= 0:
            return False
        self._refill(now)
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return True
        return False

    def next_token(self, now: float) -> float:
        """When the next token is there (inf for a never-accepting bucket)."""
        if self.qps <= 0:
            return math.inf
        self._refill(now)
        return now + max(1.0 - self.tokens, 0.0) / self.qps

    def swapped(self, qps: float, now: float) -> TokenBucket:
        """``RateLimitedTimedQueue.SwapLimiter``: a new bucket, drained if this one had no
        token left (the same one if the rate is the same)."""
        if qps == self.qps:
            return self
        new = TokenBucket(qps, now)
        if qps > 0 and not self.try_accept(now):
            new.try_accept(now)
        return new


@dataclass
class Zone:
    """One zone's taint queue (nodes in the order they were queued) and its limiter."""

    name: str
    nodes: list[int]
    limiter: TokenBucket
    state: ZoneState = ZoneState.NORMAL
    queue: list[int] = field(default_factory=list)
    wake: int = 0  # bumps cancel a scheduled retry


@dataclass(slots=True)
class NodeHealth:
    """What the node lifecycle controller knows of one node."""

    # the kubelet's lease renewals: first_renewal + k * interval; None until the
    # controller first needs it (its phase is drawn then, from the node's own stream)
    first_renewal: float | None = None
    kubelet_up: bool = True
    condition: str = "Ready"  # Ready | Unknown
    tainted: bool = False
    generation: int = 0  # bumps cancel timers set for an earlier state
    taint_generation: int = 0  # bumps cancel evictions set for an earlier taint


class NodeLifecycle:
    """The controller for every node: conditions, zone states, taints and evictions.
    ``control`` is the run's control plane (pods, their conditions, the ReplicaSets)."""

    def __init__(self, env: simpy.Environment, control: Controllers,
                 timing: ControlPlaneTiming, phase: Callable[[str], float],
                 down: Collection[int] = ()) -> None:
        self.env = env
        self.control = control
        self.timing = timing
        self._phase = phase
        nodes = control.cluster.nodes
        self.names = [n.name for n in nodes]
        # a node down before the run (FaultPlan.down, --each-node-down) has been detected:
        # no lease, Unknown, the unreachable taint; its eviction is not scheduled, so that
        # state holds until its kubelet renews its lease again
        self.health = [NodeHealth(kubelet_up=False, condition="Unknown", tainted=True)
                       if n.index in down else NodeHealth() for n in nodes]
        self.monitor_first_tick = phase("monitor") * timing.monitor_period
        by_zone: dict[str, list[int]] = {}
        for n in nodes:
            by_zone.setdefault(n.zone, []).append(n.index)
        self.zones = {z: Zone(z, idx, TokenBucket(timing.eviction_rate, -math.inf))
                      for z, idx in by_zone.items()}
        self.zone_of = [n.zone for n in nodes]
        self.stopped = False  # every zone fully disrupted: no evictions anywhere
        self._pass_due = False

    def record(self, kind: str, subject: str, detail: str = "") -> None:
        self.control.record(kind, subject, detail)

    def _next_tick(self, t: float) -> float:
        """The monitor tick after the tick at ``t`` (on the same grid, so that two nodes'
        events of one pass fall on the very same float)."""
        period = self.timing.monitor_period
        k = round((t - self.monitor_first_tick) / period)
        return self.monitor_first_tick + (k + 1) * period

    def _at(self, when: float, node: int, action: Callable[[int], None]) -> None:
        """``action(node)`` at ``when`` unless the node's state changed meanwhile."""
        generation = self.health[node].generation

        def fire(_event: simpy.Event) -> None:
            if self.health[node].generation == generation:
                action(node)

        self.env.timeout(max(when - self.env.now, 0.0)).callbacks.append(fire)

    # --- leases ------------------------------------------------------------------------

    def kubelet_stopped(self, node: int) -> None:
        """The node's kubelet no longer renews its lease (node down, cut off, or kubelet
        stopped): the controller notices after the grace period."""
        health = self.health[node]
        if not health.kubelet_up:
            return
        health.kubelet_up = False
        health.generation += 1
        t = self.timing
        if health.first_renewal is None:
            health.first_renewal = self._phase(f"lease/{self.names[node]}") * \
                t.lease_renew_interval
        last = last_renewal_before(self.env.now, health.first_renewal, t.lease_renew_interval)
        self._at(last + t.lease_renew_interval, node,
                 lambda n: self.record("lease_missed", self.names[n]))
        if health.condition == "Ready":
            self._at(unknown_at(last, self.monitor_first_tick, t), node, self._node_unknown)

    def kubelet_started(self, node: int) -> None:
        """The kubelet renews its lease again: Ready at the controller's next tick."""
        health = self.health[node]
        if health.kubelet_up:
            return
        health.kubelet_up = True
        health.generation += 1
        now = self.env.now
        health.first_renewal = now  # renewals continue from now
        if health.condition == "Ready":  # back before anyone noticed
            return
        self._at(ready_seen_at(now, self.monitor_first_tick, self.timing), node,
                 self._node_ready)

    # --- conditions ----------------------------------------------------------------------

    def _node_unknown(self, node: int) -> None:
        """No lease within the grace period: node Unknown and its pods NotReady; queued
        for the taint at the next pass (which reads the condition this pass wrote)."""
        control = self.control
        self.health[node].condition = "Unknown"
        self.record("node_unknown", self.names[node])
        changed = False
        for pod in control.cluster.pods:
            life = control.life[pod.index]
            if pod.node == node and pod.index in control.in_api and life.ready:
                life.ready = False
                self.record("pod_not_ready", pod.name, "MarkPodsNotReady")
                changed = True
        if changed:
            control.publish()
        self._pass_end()
        self._at(self._next_tick(self.env.now), node, self._queue)

    def _node_ready(self, node: int) -> None:
        """The node is Ready again: its taint goes and it leaves the taint queue
        (``markNodeAsReachable``)."""
        health = self.health[node]
        health.condition = "Ready"
        self.record("node_ready", self.names[node])
        self._unqueue(node)
        if health.tainted:
            self._untaint(node)
        self.control.kubelets.node_back(node)
        if self.control.pending:
            self.control.retry_pending()
        self._pass_end()

    def _queue(self, node: int) -> None:
        """``markNodeForTainting``: the node waits for its zone's limiter."""
        zone = self.zones[self.zone_of[node]]
        if self.health[node].tainted or node in zone.queue:
            return
        zone.queue.append(node)
        self._pass_end()

    def _unqueue(self, node: int) -> None:
        queue = self.zones[self.zone_of[node]].queue
        if node in queue:
            queue.remove(node)

    # --- zone states (handleDisruption) ---------------------------------------------------

    def _pass_end(self) -> None:
        """Zone states and taints once this instant's condition changes are all in."""
        if not self._pass_due:
            self._pass_due = True
            self.env.timeout(0).callbacks.append(self._handle_disruption)

    def _handle_disruption(self, _event: simpy.Event) -> None:
        self._pass_due = False
        now = self.env.now
        states = {}
        for zone in self.zones.values():
            ready = sum(self.health[n].condition == "Ready" for n in zone.nodes)
            states[zone.name] = compute_zone_state(ready, len(zone.nodes) - ready,
                                                   self.timing.unhealthy_zone_threshold)
        all_full = all(s is ZoneState.FULL for s in states.values())
        if all_full and not self.stopped:
            self.stopped = True
            for zone in self.zones.values():
                zone.limiter = zone.limiter.swapped(0.0, now)
                self._set_state(zone, ZoneState.FULL, "evictions stopped: every zone "
                                "is fully disrupted")
                for node in zone.nodes:
                    health = self.health[node]
                    if health.tainted:
                        self._untaint(node)
                    if node in zone.queue:
                        zone.queue.remove(node)
                    if health.condition != "Ready":  # queued again at the next pass
                        self._at(self._next_tick(now), node, self._queue)
            return
        if all_full:
            return
        leaving = self.stopped
        self.stopped = False
        for zone in self.zones.values():
            state = states[zone.name]
            if state is not zone.state or leaving:
                rate = zone_rate(state, len(zone.nodes), self.timing)
                zone.limiter = zone.limiter.swapped(rate, now)
                self._set_state(zone, state, f"taint rate {rate:g}/s")
        for zone in self.zones.values():
            self._try(zone)

    def _set_state(self, zone: Zone, state: ZoneState, detail: str) -> None:
        if state is not zone.state or detail.startswith("evictions stopped"):
            self.record("zone_state", zone.name, f"{state.value}: {detail}")
        zone.state = state

    # --- taints and evictions (doNoExecuteTaintingPass, taint manager) --------------------

    def _try(self, zone: Zone) -> None:
        """Taint queued nodes while the zone's limiter has tokens; come back for the rest
        when the next token is there."""
        now = self.env.now
        while zone.queue:
            if not zone.limiter.try_accept(now):
                at = zone.limiter.next_token(now)
                if at < math.inf:
                    zone.wake += 1
                    wake = zone.wake

                    def retry(_event: simpy.Event, zone: Zone = zone, wake: int = wake
                              ) -> None:
                        if zone.wake == wake:
                            self._try(zone)

                    self.env.timeout(at - now).callbacks.append(retry)
                return
            self._taint(zone.queue.pop(0))

    def _taint(self, node: int) -> None:
        """The NoExecute taint: the pods go after their toleration."""
        health = self.health[node]
        if health.condition == "Ready":  # Ready again meanwhile: nothing to taint
            return
        health.tainted = True
        health.taint_generation += 1
        taint = health.taint_generation
        self.record("taint_added", self.names[node], UNREACHABLE)
        groups = self._eviction_groups(node)

        def evict(_event: simpy.Event, only: Collection[str] | None = None) -> None:
            if health.tainted and health.taint_generation == taint:
                self.control.evict(node, only)

        if groups is None:  # every pod with the default toleration: one eviction
            self.env.timeout(self.timing.toleration_seconds).callbacks.append(evict)
            return
        for delay, names in sorted(groups.items()):
            if delay < math.inf:  # a toleration without tolerationSeconds: kept for ever
                self.env.timeout(delay).callbacks.append(
                    lambda event, names=names: evict(event, names))

    def _eviction_groups(self, node: int) -> dict[float, set[str]] | None:
        """The node's pods' Deployments by seconds from the taint to their eviction
        (their own tolerations, or the default); None when all take the default."""
        control = self.control
        default = self.timing.toleration_seconds
        groups: dict[float, set[str]] = {}
        for pod in control.cluster.pods:
            if pod.node == node and pod.index in control.in_api:
                delay = eviction_delay(pod_needs(control.deployments.get(pod.deployment))
                                       .tolerations, UNREACHABLE_TAINT, default)
                groups.setdefault(delay, set()).add(pod.deployment)
        return None if set(groups) <= {default} else groups

    def _untaint(self, node: int) -> None:
        health = self.health[node]
        health.tainted = False
        health.taint_generation += 1  # the taint manager cancels the pods' evictions
        self.record("taint_removed", self.names[node], UNREACHABLE)
