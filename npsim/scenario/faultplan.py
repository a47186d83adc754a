"""A scenario's ``events:`` as a plan of typed outages, made once.

The schema declares the event kinds (``FAULT_KINDS``, one YAML key each); this module
maps each kind to its class here, once (:data:`KINDS`), and nothing else matches kind
names. An outage knows what it touches (a node, a pod, a Deployment), when it starts
and ends, which pods it can disturb mid-service, and what it does: at its start and end
it calls the simulation's fault actions (:class:`FaultActions`, implemented by
npsim/sim/faults.py), so the simulation's fault injector has no table of kinds either.
The pod-room check (npsim/cluster/pod_room.py), the pre-run estimate
(npsim/preflight.py) and the engine's node network (npsim/sim/network.py: when a node
that is down answers again) read the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol


class _PodLike(Protocol):
    index: int
    name: str
    node: int
    deployment: str


class FaultActions(Protocol):
    """What the simulation does when an outage starts or ends (npsim/sim/faults.py)."""

    def scale(self, deployment: str, replicas: int) -> None: ...
    def rollout(self, deployment: str) -> None: ...
    def node_lost(self, outage: NodeOutage) -> None: ...
    def node_back(self, outage: NodeOutage) -> None: ...
    def kubelet_stop(self, outage: KubeletStop) -> None: ...
    def kubelet_start(self, outage: KubeletStop) -> None: ...
    def kube_proxy_stop(self, outage: KubeProxyStop) -> None: ...
    def kube_proxy_start(self, outage: KubeProxyStop) -> None: ...
    def pod_crash(self, outage: PodCrash) -> None: ...
    def crash_loop_end(self, outage: PodCrash) -> None: ...
    def pod_hang(self, outage: PodHang) -> None: ...
    def pod_slowdown(self, outage: PodSlowdown) -> None: ...


@dataclass(frozen=True, slots=True)
class Outage:
    """One event of the scenario: from ``at`` to ``until`` (None: it does not end);
    ``index`` is its place in ``events:`` (for problems pointing at the YAML)."""

    at: float
    until: float | None
    index: int
    #: the YAML key of this kind (``events[i].<key>``)
    key: ClassVar[str] = ""
    #: the node's kubelet stops renewing its lease (its pods may be evicted)
    stops_kubelet: ClassVar[bool] = False
    #: a pod turns NotReady out of turn (changes which pod a scale-down deletes first)
    unreadies_pod: ClassVar[bool] = False
    #: the node answers nothing while it lasts (a client's SYN goes unanswered)
    silences_node: ClassVar[bool] = False

    def touches(self, pods: Sequence[_PodLike], node_index: Callable[[str], int]) -> set[int]:
        """The pods (indexes at the start) this outage can disturb mid-service."""
        return set()

    def begin(self, actions: FaultActions) -> None:
        raise NotImplementedError

    def end(self, actions: FaultActions) -> None:
        """When ``until`` comes (only kinds that can have one)."""


@dataclass(frozen=True, slots=True)
class Scale(Outage):
    """The ReplicaSet is scaled to ``replicas``."""

    deployment: str = ""
    replicas: int = 0
    key: ClassVar[str] = "scale"

    def touches(self, pods: Sequence[_PodLike], node_index: Callable[[str], int]) -> set[int]:
        return {p.index for p in pods if p.deployment == self.deployment}

    def begin(self, actions: FaultActions) -> None:
        actions.scale(self.deployment, self.replicas)


@dataclass(frozen=True, slots=True)
class Rollout(Outage):
    """A rolling update of the Deployment to a new pod template."""

    deployment: str = ""
    key: ClassVar[str] = "rollout"

    def touches(self, pods: Sequence[_PodLike], node_index: Callable[[str], int]) -> set[int]:
        return {p.index for p in pods if p.deployment == self.deployment}

    def begin(self, actions: FaultActions) -> None:
        actions.rollout(self.deployment)


@dataclass(frozen=True, slots=True)
class NodeOutage(Outage):
    """A fault of a whole node."""

    node: str = ""
    stops_kubelet: ClassVar[bool] = True

    def touches(self, pods: Sequence[_PodLike], node_index: Callable[[str], int]) -> set[int]:
        node = node_index(self.node)
        return {p.index for p in pods if p.node == node}


@dataclass(frozen=True, slots=True)
class NodeCrash(NodeOutage):
    """The node goes down: nothing answers on it, its pods' processes die; at ``until``
    it reboots and restarts them."""

    key: ClassVar[str] = "nodeCrash"
    silences_node: ClassVar[bool] = True
    #: its pods are unreachable but keep running (not restarted when it ends)
    partitioned: ClassVar[bool] = False
    started: ClassVar[str] = "node_crash"
    ended: ClassVar[str] = "node_recover"

    def begin(self, actions: FaultActions) -> None:
        actions.node_lost(self)

    def end(self, actions: FaultActions) -> None:
        actions.node_back(self)


@dataclass(frozen=True, slots=True)
class NodePartition(NodeCrash):
    """The node is cut off: as a crash for everyone outside, but its containers run on
    and are found where they were when it heals."""

    key: ClassVar[str] = "nodePartition"
    partitioned: ClassVar[bool] = True
    started: ClassVar[str] = "node_partition"
    ended: ClassVar[str] = "node_heal"


@dataclass(frozen=True, slots=True)
class KubeletStop(NodeOutage):
    """The node's kubelet stops: pods keep serving, nothing acts on the API's wishes."""

    key: ClassVar[str] = "kubeletStop"
    started: ClassVar[str] = "kubelet_stop"
    ended: ClassVar[str] = "kubelet_start"

    def begin(self, actions: FaultActions) -> None:
        actions.kubelet_stop(self)

    def end(self, actions: FaultActions) -> None:
        actions.kubelet_start(self)


@dataclass(frozen=True, slots=True)
class KubeProxyStop(Outage):
    """The node's kube-proxy stops: its rules freeze at the last sync. No pod is
    touched."""

    node: str = ""
    key: ClassVar[str] = "kubeProxyStop"
    started: ClassVar[str] = "kube_proxy_stop"
    ended: ClassVar[str] = "kube_proxy_start"

    def begin(self, actions: FaultActions) -> None:
        actions.kube_proxy_stop(self)

    def end(self, actions: FaultActions) -> None:
        actions.kube_proxy_start(self)


@dataclass(frozen=True, slots=True)
class PodOutage(Outage):
    """A fault of one pod, named as npsim names them (``<deployment>-<ordinal>``)."""

    pod: str = ""

    def touches(self, pods: Sequence[_PodLike], node_index: Callable[[str], int]) -> set[int]:
        return {p.index for p in pods if p.name == self.pod}


@dataclass(frozen=True, slots=True)
class PodCrash(PodOutage):
    """The container exits (once, or again ``runs_for`` after each restart until
    ``until``: a crash loop)."""

    runs_for: float | None = None
    key: ClassVar[str] = "podCrash"
    unreadies_pod: ClassVar[bool] = True

    def begin(self, actions: FaultActions) -> None:
        actions.pod_crash(self)

    def end(self, actions: FaultActions) -> None:
        actions.crash_loop_end(self)


@dataclass(frozen=True, slots=True)
class PodHang(PodOutage):
    """The process stops answering but keeps its connections, until ``until``."""

    key: ClassVar[str] = "podHang"
    unreadies_pod: ClassVar[bool] = True

    def begin(self, actions: FaultActions) -> None:
        actions.pod_hang(self)


@dataclass(frozen=True, slots=True)
class PodSlowdown(PodOutage):
    """Service times times ``factor`` until ``until``."""

    factor: float = 1.0
    key: ClassVar[str] = "podSlowdown"

    def begin(self, actions: FaultActions) -> None:
        actions.pod_slowdown(self)


def _fields(cls: type[Outage], target: Any) -> dict[str, Any]:
    """The kind's own fields (its target's: deployment, node, pod, factor, ...), read
    off the class rather than listed again."""
    common = {f.name for f in fields(Outage)}
    return {f.name: getattr(target, f.name) for f in fields(cls) if f.name not in common}


#: the schema's event kinds (``FAULT_KINDS``), each to its class: the one place kinds
#: are named
KINDS: dict[str, type[Outage]] = {
    "scale": Scale, "rollout": Rollout, "node_crash": NodeCrash,
    "node_partition": NodePartition, "kubelet_stop": KubeletStop,
    "kube_proxy_stop": KubeProxyStop, "pod_crash": PodCrash, "pod_hang": PodHang,
    "pod_slowdown": PodSlowdown,
}


class FaultPlan:
    """A scenario's events as outages, in the order they were given, and the nodes that
    are down before the run starts (``down``).

    A node down from the start (``cluster.nodes[].down``) is the steady degraded state
    between a crash's detection and its pods' eviction: the node answers nothing, its
    pods' processes are gone and their endpoints NotReady (the node lifecycle
    controller's MarkPodsNotReady), every kube-proxy has synced that, every external
    balancer has marked the node down, and the ReplicaSet has not replaced the pods
    (that waits for the eviction, ``tolerationSeconds`` after the taint, which this
    state does not reach: it holds for the whole run unless an event ends it). The
    simulation's parts start in it (npsim/sim/build.py); nothing acts it out at t = 0,
    so no request meets the detection window.
    """

    __slots__ = ("outages", "down")

    def __init__(self, outages: Iterable[Outage], down: Iterable[str] = ()) -> None:
        self.outages = list(outages)
        self.down = tuple(down)  # node names, down before the run starts

    @classmethod
    def of(cls, events: Sequence[Any], down: Iterable[str] = ()) -> FaultPlan:
        """The plan of a scenario's ``events:`` (schema EventSpec objects) and the names
        of the nodes down from the start."""
        out = []
        for index, event in enumerate(events):
            kind = KINDS[event.kind]
            out.append(kind(at=float(event.at),
                            until=None if event.until is None else float(event.until),
                            index=index, **_fields(kind, event.target)))
        return cls(out, down)

    def down_nodes(self, node_index: Callable[[str], int]) -> list[int]:
        """The indexes of the nodes down from the start."""
        return [node_index(name) for name in self.down]

    def __iter__(self):  # noqa: ANN204
        return iter(self.outages)

    def pods_touched(self, pods: Sequence[_PodLike],
                     node_index: Callable[[str], int]) -> set[int]:
        """The pods (indexes at the start of the run) the events can disturb
        mid-service: every pod of a Deployment that is scaled or rolled, every pod on a
        node that crashes, is cut off or loses its kubelet, and the pods a pod fault
        names. The others run as QuietPods (npsim/sim/pods.py; pods made during the run
        never do). A kube-proxy stop touches no pod: only the rules freeze."""
        touched: set[int] = set()
        for outage in self.outages:
            touched |= outage.touches(pods, node_index)
        down = set(self.down_nodes(node_index))
        if down:  # their processes are gone from the start
            touched |= {p.index for p in pods if p.node in down}
        return touched

    def silent_windows(self, node_index: Callable[[str], int],
                       n_nodes: int) -> list[tuple[tuple[float, float], ...]]:
        """Per node: the (start, end) of each outage during which the node answers
        nothing and which ends, in the order given (see :meth:`answers_again`)."""
        windows: list[list[tuple[float, float]]] = [[] for _ in range(n_nodes)]
        for outage in self.outages:
            if outage.silences_node and outage.until is not None:
                windows[node_index(outage.node)].append((outage.at, outage.until))  # type: ignore[attr-defined]
        return [tuple(w) for w in windows]


def answers_again(windows: tuple[tuple[float, float], ...], now: float) -> float:
    """When a node silent at ``now`` answers again: the end of the last given outage
    that covers ``now`` (inf if none ends)."""
    back = math.inf
    for at, until in windows:
        if at <= now < until:
            back = until
    return back
