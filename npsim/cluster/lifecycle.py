"""Node and pod lifecycle: states, timers and each Kubernetes version's defaults.

Plain rules with no SimPy in them; ``npsim/sim/faults.py`` and
``npsim/sim/controlplane.py`` drive them in time. Upstream sources:

* kubelet renews its node Lease every 10 s (0.25 x ``nodeLeaseDurationSeconds`` 40,
  ``pkg/kubelet/kubelet.go`` ``nodeLeaseRenewIntervalFraction``);
* the node lifecycle controller checks every ``--node-monitor-period`` (5 s); a node
  whose lease it has not seen renewed for ``--node-monitor-grace-period`` turns
  ``Unknown``: 40 s up to v1.31, 50 s from v1.32 (kubernetes/kubernetes PR #126287,
  ``pkg/controller/nodelifecycle/config/v1alpha1/defaults.go``). It then marks the
  node's pods NotReady (``MarkPodsNotReady``) and taints the node
  ``node.kubernetes.io/unreachable:NoExecute`` (``not-ready`` when the kubelet reports
  NotReady), ``node_lifecycle_controller.go`` ``monitorNodeHealth``;
* admission gives every pod ``tolerationSeconds: 300`` for those taints
  (``--default-unreachable-toleration-seconds``) unless it tolerates them itself; after
  the least ``tolerationSeconds`` of its tolerations of the taint the pod is deleted
  (``pkg/controller/tainteviction`` ``getMinTolerationTime``: :func:`eviction_delay`);
* EndpointSlice conditions (``staging/src/k8s.io/endpointslice/utils.go`` podToEndpoint):
  ``serving`` = pod Ready, ``terminating`` = deletionTimestamp set,
  ``ready`` = serving and not terminating;
* probes default to period 10 s, timeout 1 s, failureThreshold 3, successThreshold 1,
  initialDelaySeconds 0 (``pkg/apis/core/v1/defaults.go`` SetDefaults_Probe);
* a crashing container is restarted after 10 s, doubling to at most 5 min, and the
  back-off resets once it has run 10 min (kubelet ``backOffPeriod``,
  ``MaxContainerBackOff``; Kubernetes docs "Pod Lifecycle: container restarts");
* Deployment ``maxSurge`` and ``maxUnavailable`` default to 25 %; surge rounds up,
  unavailable rounds down (``pkg/controller/deployment/util`` ResolveFenceposts);
* the node lifecycle controller taints (and so evicts) at most ``nodeEvictionRate`` 0.1
  node/s per zone, ``secondaryNodeEvictionRate`` 0.01/s in a partially disrupted zone of
  more than ``largeClusterSizeThreshold`` 50 nodes (none in a smaller one); a zone is
  partially disrupted when more than 2 and at least ``unhealthyZoneThreshold`` 55 % of
  its nodes are not Ready (``pkg/controller/nodelifecycle/config/v1alpha1/defaults.go``,
  ``node_lifecycle_controller.go`` ComputeZoneState, ReducedQPSFunc); npsim/sim/eviction.py;
* the kubelet gives a killed container at least 2 s after preStop
  (``pkg/kubelet/kuberuntime/kuberuntime_container.go`` killContainer,
  ``minimumGracePeriodInSeconds``).

Every default that depends on ``kubernetesVersion`` is in :data:`VERSION_DEFAULTS` (the
README's table is checked against it).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from npsim.cluster.scheduler import Taint, Toleration

LEASE_RENEW_INTERVAL = 10.0
NODE_MONITOR_PERIOD = 5.0
GRACE_BEFORE_1_32 = 40.0
GRACE_FROM_1_32 = 50.0
TOLERATION_SECONDS = 300.0
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET = 600.0
EVICTION_RATE = 0.1  # --node-eviction-rate
SECONDARY_EVICTION_RATE = 0.01  # --secondary-node-eviction-rate
UNHEALTHY_ZONE_THRESHOLD = 0.55  # --unhealthy-zone-threshold
LARGE_CLUSTER_SIZE_THRESHOLD = 50  # --large-cluster-size-threshold
MINIMUM_GRACE_PERIOD = 2.0  # kuberuntime minimumGracePeriodInSeconds


@dataclass(frozen=True)
class VersionDefault:
    """One default that changes with ``kubernetesVersion``: ``values`` lists
    (first minor version, value) from the oldest; ``source`` says where upstream sets it."""

    key: str
    what: str
    values: tuple[tuple[int, object], ...]
    source: str

    def at(self, minor: int) -> object:
        """The value in force at minor version ``minor``."""
        value = self.values[0][1]
        for since, v in self.values:
            if minor >= since:
                value = v
        return value


# Every default npsim takes from ``kubernetesVersion``, read from here only
# (README "Defaults per Kubernetes version" is tested against this table).
VERSION_DEFAULTS: dict[str, VersionDefault] = {d.key: d for d in (
    VersionDefault(
        "cluster.controlPlane.nodeMonitorGracePeriod",
        "seconds without a lease renewal before a node turns Unknown",
        ((0, GRACE_BEFORE_1_32), (32, GRACE_FROM_1_32)),
        "kubernetes/kubernetes PR #126287; pkg/controller/nodelifecycle/config/v1alpha1/"
        "defaults.go"),
    VersionDefault(
        "cluster.kubeProxy.terminatingFallback",
        "kube-proxy sends to serving-terminating endpoints when none is ready "
        "(ProxyTerminatingEndpoints)",
        ((0, False), (26, True)),
        "KEP-1669: alpha v1.22 (off), beta v1.26 (on), GA v1.28; pkg/proxy/topology.go "
        "CategorizeEndpoints"),
    VersionDefault(
        "clients[].kernel",
        "the clients' Linux kernel, which picks the SYN retransmission schedule",
        ((0, "5.15"), (33, "6.12")),
        "npsim's choice (kernel Documentation/networking/ip-sysctl.rst "
        "tcp_syn_linear_timeouts, Linux 6.5): scenarios written for v1.32 or earlier keep "
        "the exponential schedule; from v1.33 the current LTS, 6.12"),
)}


TABLE_FROM = 22  # the README's table starts at v1.22


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g} s"
    return str(value)


def version_table() -> str:
    """The README's "Defaults per Kubernetes version" table, from
    :data:`VERSION_DEFAULTS` (tests/cluster/test_version_defaults.py keeps them equal)."""
    rows = [f"| default | value per version (from v1.{TABLE_FROM}) | what it sets | source |",
            "|---|---|---|---|"]
    for d in VERSION_DEFAULTS.values():
        starts = [TABLE_FROM] + [since for since, _ in d.values if since > TABLE_FROM]
        parts = []
        for i, since in enumerate(starts):
            span = (f"v1.{since}+" if i + 1 == len(starts)
                    else f"v1.{since}-v1.{starts[i + 1] - 1}")
            parts.append(f"{_shown(d.at(since))} ({span})")
        rows.append(f"| `{d.key}` | {', '.join(parts)} | {d.what} | {d.source} |")
    return "\n".join(rows)


def version_default(key: str, version: str) -> object:
    """The default ``key`` takes at ``version`` (:data:`VERSION_DEFAULTS`)."""
    return VERSION_DEFAULTS[key].at(minor_version(version))


@dataclass(frozen=True)
class ControlPlaneTiming:
    """The node-lifecycle timers in force for one run."""

    lease_renew_interval: float = LEASE_RENEW_INTERVAL
    monitor_period: float = NODE_MONITOR_PERIOD
    grace_period: float = GRACE_FROM_1_32
    toleration_seconds: float = TOLERATION_SECONDS
    eviction_rate: float = EVICTION_RATE
    secondary_eviction_rate: float = SECONDARY_EVICTION_RATE
    unhealthy_zone_threshold: float = UNHEALTHY_ZONE_THRESHOLD
    large_cluster_size_threshold: int = LARGE_CLUSTER_SIZE_THRESHOLD


def minor_version(version: str) -> int:
    """``"1.32"``, ``"v1.31.4"`` -> 32, 31."""
    return int(version.lstrip("v").split(".")[1])


def timing_for(version: str, overrides: object | None = None) -> ControlPlaneTiming:
    """The version's defaults, with any knob the scenario sets (``ControlPlaneSpec``)."""
    grace = version_default("cluster.controlPlane.nodeMonitorGracePeriod", version)
    base = ControlPlaneTiming(grace_period=float(grace))  # type: ignore[arg-type]
    if overrides is None:
        return base
    values = {
        "lease_renew_interval": getattr(overrides, "node_lease_renew_interval", None),
        "monitor_period": getattr(overrides, "node_monitor_period", None),
        "grace_period": getattr(overrides, "node_monitor_grace_period", None),
        "toleration_seconds": getattr(overrides, "toleration_seconds", None),
        "eviction_rate": getattr(overrides, "node_eviction_rate", None),
        "secondary_eviction_rate": getattr(overrides, "secondary_node_eviction_rate", None),
        "unhealthy_zone_threshold": getattr(overrides, "unhealthy_zone_threshold", None),
        "large_cluster_size_threshold": getattr(overrides, "large_cluster_size_threshold",
                                                None),
    }
    return ControlPlaneTiming(**{k: (type(getattr(base, k))(v) if v is not None
                                     else getattr(base, k)) for k, v in values.items()})


def unknown_at(last_renewal: float, first_tick: float, timing: ControlPlaneTiming) -> float:
    """When the controller declares a node Unknown whose last lease renewal was at
    ``last_renewal``; its monitor ticks are ``first_tick + k * period``.

    The controller stamps ``probeTimestamp`` when a tick first sees the renewal and turns
    the node Unknown at the first tick at least ``grace`` later (``monitorNodeHealth``;
    the real loop drifts a little each round, so "at least" rather than "after").
    """
    period = timing.monitor_period
    probe = _tick_at_or_after(last_renewal, first_tick, period)
    return _tick_at_or_after(probe + timing.grace_period, first_tick, period)


def ready_seen_at(now: float, first_tick: float, timing: ControlPlaneTiming) -> float:
    """A node whose kubelet renews again at ``now`` is Ready at the next monitor tick."""
    return _tick_at_or_after(now, first_tick, timing.monitor_period)


def _tick_at_or_after(t: float, first_tick: float, period: float) -> float:
    k = max(math.ceil((t - first_tick) / period - 1e-9), 0)
    return first_tick + k * period


def eviction_delay(tolerations: Sequence[Toleration], taint: Taint, default: float) -> float:
    """Seconds from a NoExecute taint to the deletion of a pod with ``tolerations``
    (upstream ``getMinTolerationTime`` over the tolerations matching the taint): the
    least ``tolerationSeconds`` among them, 0 at or below 0, infinite when none sets
    it. A pod with no toleration of the taint got ``default`` from the
    DefaultTolerationSeconds admission plugin (for ``unreachable``/``not-ready``)."""
    matching = [t for t in tolerations if t.tolerates(taint)]
    if not matching:
        return default
    seconds = [t.seconds for t in matching if t.seconds is not None]
    return max(min(seconds), 0.0) if seconds else math.inf


def last_renewal_before(t: float, first_renewal: float, interval: float) -> float:
    """The kubelet's last lease renewal at or before ``t``."""
    k = math.floor((t - first_renewal) / interval + 1e-12)
    return first_renewal + k * interval


@dataclass
class CrashBackoff:
    """The kubelet's restart back-off for one container (``kuberuntime_manager.go``
    doBackOff with ``flowcontrol.Backoff``, initial 10 s, max 300 s): the first exit is
    restarted at once and starts a 10 s back-off; each later exit waits the current
    back-off, which then doubles up to 5 min; an exit more than 10 min (2 x max) after
    the last restart finds the entry expired and starts over."""

    backoff: float = 0.0
    updated: float = -math.inf

    def delay(self, exited: float) -> float:
        """Seconds from an exit at ``exited`` to the restart; updates the state."""
        if self.backoff == 0.0 or exited - self.updated > BACKOFF_RESET:
            wait, self.backoff = 0.0, BACKOFF_INITIAL
        else:
            wait, self.backoff = self.backoff, min(self.backoff * 2, BACKOFF_MAX)
        self.updated = exited + wait
        return wait


@dataclass(frozen=True)
class Probe:
    """A readiness or liveness probe as the pod template gives it (defaults filled)."""

    period: float = 10.0
    timeout: float = 1.0
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay: float = 0.0
    # a liveness probe's own terminationGracePeriodSeconds for the kill it causes
    # (KEP-2238, ``setTerminationGracePeriod`` in kuberuntime_container.go); None: the pod's
    termination_grace: float | None = None

    @classmethod
    def from_manifest(cls, fields: dict[str, float] | None) -> Probe | None:
        """The probe a pod template gives (``None``: no probe), defaults filled in."""
        return None if fields is None else cls(**fields)

    def first_ready(self, started: float, origin: float | None = None) -> float:
        """When a new container that answers from the start is first Ready.

        ``origin``: the probe worker's tick grid (``origin + k * period``), None for the
        aligned timeline (ticks from ``started + initialDelay``). The kubelet probes
        readiness at once when a container starts (``prober_manager.go``
        UpdatePodStatus triggers the worker), later ones on the worker's ticks."""
        first = started + self.initial_delay
        if origin is not None and self.initial_delay > 0:
            first = self._tick(first, origin)
        return first + (self.success_threshold - 1) * self.period

    def _tick(self, t: float, origin: float) -> float:
        """The worker's first tick at or after ``t``."""
        return origin + self._ticks(t, origin) * self.period

    def _ticks(self, t: float, origin: float) -> int:
        return max(math.ceil((t - origin) / self.period - 1e-9), 0)

    def failing_detected(self, started: float, since: float,
                         origin: float | None = None) -> float:
        """When the ``failureThreshold``-th consecutive probe fails for a container started
        at ``started`` that stops answering at ``since``: probes run on the worker's ticks
        (aligned: ``started + initialDelay + k * period``) and fail after ``timeout``."""
        first = started + self.initial_delay
        grid = first if origin is None else self._tick(first, origin)
        k = self._ticks(since, grid)
        return grid + (k + self.failure_threshold - 1) * self.period + self.timeout

    def passing_detected(self, started: float, since: float,
                         origin: float | None = None) -> float:
        """When ``successThreshold`` consecutive probes pass again from ``since``."""
        first = started + self.initial_delay
        grid = first if origin is None else self._tick(first, origin)
        k = self._ticks(since, grid)
        return grid + (k + self.success_threshold - 1) * self.period


def kill_times(pre_stop: float, grace: float) -> tuple[float, float]:
    """Seconds from a kill to SIGTERM and to SIGKILL: preStop runs for at most the grace
    period, SIGTERM then gets the rest of it, but never less than 2 s
    (``kuberuntime_container.go`` killContainer, ``minimumGracePeriodInSeconds``)."""
    hook = min(pre_stop, grace) if pre_stop > 0 and grace > 0 else 0.0
    if grace - hook >= MINIMUM_GRACE_PERIOD:
        return hook, grace
    return hook, hook + MINIMUM_GRACE_PERIOD


class PodPhase(Enum):
    """What the pod's container is doing (the data-plane view)."""

    STARTING = "starting"  # scheduled, container not up yet
    RUNNING = "running"
    HUNG = "hung"  # process up, answers nothing
    CRASHED = "crashed"  # container exited, waiting for its restart
    DRAINING = "draining"  # SIGTERM received, finishing what it has
    GONE = "gone"  # deleted: the address no longer exists


def endpoint_conditions(ready: bool, terminating: bool) -> tuple[bool, bool, bool]:
    """EndpointSlice (ready, serving, terminating) of a pod's endpoint, from its Ready
    condition and whether it is terminating (KEP-1672: serving is Ready whatever the
    termination; ready is serving and not terminating)."""
    return ready and not terminating, ready, terminating


@dataclass(slots=True)
class PodLife:
    """Lifecycle state of one pod, as the control plane and the kubelet know it."""

    pod: int
    phase: PodPhase = PodPhase.RUNNING
    ready: bool = True  # the Ready condition (what EndpointSlices call serving)
    terminating: bool = False  # deletionTimestamp set
    started: float = 0.0  # the running container's start time
    restarts: int = 0
    revision: int = 0  # the Deployment's pod template it was made from

    @property
    def conditions(self) -> tuple[bool, bool, bool]:
        """EndpointSlice (ready, serving, terminating) of this pod's endpoint."""
        return endpoint_conditions(self.ready, self.terminating)


@dataclass(frozen=True)
class RolloutStrategy:
    """A Deployment's RollingUpdate parameters, resolved to pod counts."""

    max_surge: int
    max_unavailable: int


def resolve_strategy(replicas: int, max_surge: int | str = "25%",
                     max_unavailable: int | str = "25%") -> RolloutStrategy:
    """Absolute surge (rounded up) and unavailability (rounded down); both 0 is invalid
    upstream, so unavailability becomes 1 then (ResolveFenceposts)."""
    surge = _scaled(max_surge, replicas, up=True)
    unavailable = _scaled(max_unavailable, replicas, up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return RolloutStrategy(surge, unavailable)


def _scaled(value: int | str, replicas: int, up: bool) -> int:
    if isinstance(value, str):
        fraction = float(value.rstrip("%")) / 100 * replicas
        return math.ceil(fraction - 1e-9) if up else math.floor(fraction + 1e-9)
    return int(value)


def rollout_step(replicas: int, strategy: RolloutStrategy, old: int, new: int,
                 new_available: int) -> tuple[int, int]:
    """One reconcile of a rolling update: (new pods to create, old pods to delete).

    ``old``/``new``: pods of each ReplicaSet not yet terminating; ``new_available``: the
    new ones that are Ready. The new ReplicaSet may grow to ``replicas + maxSurge`` pods
    in total; old pods go as long as ``replicas - maxUnavailable`` stay available
    (deployment controller ``rolling.go`` reconcileNewReplicaSet, reconcileOldReplicaSets:
    maxScaledDown = all - minAvailable - newUnavailable).
    """
    create = max(min(replicas + strategy.max_surge - old - new, replicas - new), 0)
    min_available = replicas - strategy.max_unavailable
    new_unavailable = new - new_available
    delete = max(min(old + new - min_available - new_unavailable, old), 0)
    return create, delete


def spread(counts: dict[int, int], k: int) -> list[int]:
    """The nodes k new pods of a Deployment go to, one after the other: each to the
    allowed node with the fewest of its pods, the lower index on a tie (the scheduler's
    spreading as npsim models it). ``counts``: allowed node -> its pods now."""
    fewest = [(count, node) for node, count in counts.items()]
    heapq.heapify(fewest)
    out = []
    for _ in range(k if fewest else 0):
        count, node = fewest[0]
        heapq.heapreplace(fewest, (count + 1, node))
        out.append(node)
    return out
