"""kube-scheduler's default profile in miniature: which node one pod goes to.

Pure functions over plain data (no SimPy, no scenario): a pod's needs, each node's facts
and what is bound to it already. One call places one pod, as one scheduling cycle does
(pkg/scheduler/schedule_one.go ``schedulePod``):

**Filter** (a node failing any is out; the first failing plugin gives its reason, as
``RunFilterPlugins`` stops at it):

* NodeUnschedulable: a cordoned node (``spec.unschedulable``) unless the pod tolerates
  ``node.kubernetes.io/unschedulable:NoSchedule`` (nodeunschedulable/node_unschedulable.go);
* TaintToleration: every ``NoSchedule`` and ``NoExecute`` taint tolerated
  (tainttoleration/taint_toleration.go ``Filter``; v1 ``Toleration.ToleratesTaint``);
* NodeAffinity: ``nodeSelector`` and the required node affinity (terms ORed, the
  expressions of a term ANDed; In, NotIn, Exists, DoesNotExist, Gt, Lt; matchFields on
  ``metadata.name``) (nodeaffinity/node_affinity.go, component-helpers nodeaffinity);
* NodeResourcesFit: the node's pod count below its ``maxPods``, and the requests of the
  pods bound to it plus this pod's within allocatable CPU and memory
  (noderesources/fit.go ``fitsRequest``: "Too many pods", "Insufficient cpu", ...).

Nodes are examined from where the previous cycle stopped, and the search stops after
``numFeasibleNodesToFind`` feasible ones (every node below 100 nodes; else
50 - nodes/125 percent of them, at least 5 % and 100 nodes; schedule_one.go).

**Score** (each plugin 0-100, times its weight in the default profile,
apis/config/v1/default_plugins.go ``getDefaultPlugins``):

* NodeResourcesFit, LeastAllocated, weight 1: per resource
  ``(allocatable - requested) * 100 / allocatable``, averaged over CPU and memory
  (noderesources/least_allocated.go ``leastRequestedScore``). Requested counts the
  non-zero requests: a container without one counts 100m CPU and 200 MiB
  (pkg/scheduler/util ``GetNonzeroRequestForResource``);
* NodeResourcesBalancedAllocation, weight 1: ``(1 - |f_cpu - f_mem| / 2) * 100`` of the
  requested fractions after placing the pod (balanced_allocation.go
  ``balancedResourceScorer``); skipped for a pod that requests nothing (its ``PreScore``,
  kubernetes#129138);
* PodTopologySpread, weight 2, with the system default soft constraints (plugin.go
  ``systemDefaultConstraints``: ``kubernetes.io/hostname`` maxSkew 3 and
  ``topology.kubernetes.io/zone`` maxSkew 5, ScheduleAnyway) over the pods of the same
  owner (the same ReplicaSet): per node ``round(sum(count * log(domains + 2) + maxSkew -
  1))`` (scoring.go ``Score``, ``scoreForCount``, ``topologyNormalizingWeight``), then
  ``100 * (max + min - score) / max`` (``NormalizeScore``);
* TaintToleration, weight 3: intolerable ``PreferNoSchedule`` taints, fewer is better;
  NodeAffinity, weight 2: the weights of the preferred terms a node matches
  (framework/plugins/helper ``DefaultNormalizeScore``). InterPodAffinity and
  ImageLocality score every node alike here (no pod affinity or images are modelled).

**Select**: the highest total; ties go round-robin over the tied nodes, as
``selectHost`` did up to v1.18 (pkg/scheduler/core/generic_scheduler.go:
``lastNodeIndex % len(maxScores)``). The scheduler of today draws one of them at random;
a counter keeps every run (and the pre-run address check) on the same placement.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAX_NODE_SCORE = 100
DEFAULT_MILLI_CPU = 100  # pkg/scheduler/util DefaultMilliCPURequest
DEFAULT_MEMORY = 200 * 1024 * 1024  # DefaultMemoryRequest
DEFAULT_MAX_PODS = 110  # the kubelet's --max-pods
HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
# (weight, maxSkew) of the default constraints: hostname, then zone
HOSTNAME_SKEW, ZONE_SKEW = 3, 5
WEIGHTS = {"NodeResourcesFit": 1, "NodeResourcesBalancedAllocation": 1,
           "PodTopologySpread": 2, "TaintToleration": 3, "NodeAffinity": 2}
MIN_FEASIBLE_NODES = 100  # minFeasibleNodesToFind
MIN_FEASIBLE_PERCENT = 5  # minFeasibleNodesPercentageToFind

# (key, operator, values): a node selector requirement
Requirement = tuple[str, str, tuple[str, ...]]


@dataclass(frozen=True)
class Term:
    """One node selector term: every expression (labels) and field (``metadata.name``)
    must match; an empty term matches no node (v1 NodeSelectorTerm)."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()

    def matches(self, node: NodeFacts) -> bool:
        if not self.expressions and not self.fields:
            return False
        return (all(_requirement(r, node.labels) for r in self.expressions)
                and all(_requirement(r, {"metadata.name": node.name}) for r in self.fields))


def _requirement(req: Requirement, labels: Mapping[str, str]) -> bool:
    key, op, values = req
    value = labels.get(key)
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if value is None or not values:  # Gt, Lt: integers
        return False
    try:
        mine, theirs = int(value), int(values[0])
    except ValueError:
        return False
    return mine > theirs if op == "Gt" else mine < theirs


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""  # empty: every effect
    # a NoExecute toleration's tolerationSeconds (None: for ever); only eviction reads it
    seconds: float | None = None

    def tolerates(self, taint: Taint) -> bool:
        """v1 ``Toleration.ToleratesTaint``: an empty key with Exists tolerates all."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.value == taint.value


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"


@dataclass(frozen=True)
class NodeFacts:
    """What the scheduler knows of a node: allocatable CPU (millicores), memory (bytes;
    None: not limited, not scored), pods, labels (hostname and zone included), taints."""

    name: str
    cpu: int
    memory: int | None
    max_pods: int = DEFAULT_MAX_PODS
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False


@dataclass(frozen=True)
class PodNeeds:
    """A pod template's scheduling fields: requests (millicores, bytes), nodeSelector,
    node affinity (required terms, None: none; preferred (weight, term)), tolerations."""

    cpu: int = 0
    memory: int = 0
    node_selector: Mapping[str, str] = field(default_factory=dict)
    required: tuple[Term, ...] | None = None
    preferred: tuple[tuple[int, Term], ...] = ()
    tolerations: tuple[Toleration, ...] = ()

    @property
    def nonzero(self) -> tuple[int, int]:
        """The requests the scoring counts (GetNonzeroRequestForResource)."""
        return self.cpu or DEFAULT_MILLI_CPU, self.memory or DEFAULT_MEMORY

    def matches(self, node: NodeFacts) -> bool:
        """nodeSelector and required node affinity (the NodeAffinity filter)."""
        labels = node.labels
        if any(labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return self.required is None or any(t.matches(node) for t in self.required)

    def tolerates(self, taint: Taint) -> bool:
        return any(t.tolerates(taint) for t in self.tolerations)


@dataclass
class NodeLoad:
    """What is bound to a node: requests (as given and non-zero) and pods."""

    cpu: int = 0
    memory: int = 0
    nonzero_cpu: int = 0
    nonzero_memory: int = 0
    pods: int = 0

    def add(self, needs: PodNeeds) -> None:
        cpu, memory = needs.nonzero
        self.cpu += needs.cpu
        self.memory += needs.memory
        self.nonzero_cpu += cpu
        self.nonzero_memory += memory
        self.pods += 1


@dataclass
class Rotation:
    """The scheduler's two counters: the round-robin among tied nodes
    (``lastNodeIndex``) and where the next search starts (``nextStartNodeIndex``)."""

    last_node_index: int = 0
    next_start: int = 0


@dataclass(frozen=True)
class Decision:
    """The chosen node (None: the pod stays Pending) and, if none, kube-scheduler's
    FailedScheduling message ("0/3 nodes are available: 3 Insufficient cpu.")."""

    node: int | None
    message: str = ""
    scores: Mapping[int, int] = field(default_factory=dict)


def filter_reasons(pod: PodNeeds, node: NodeFacts, load: NodeLoad) -> list[str]:
    """Why ``node`` cannot take ``pod`` (empty: it can), plugin by plugin as the default
    profile runs them, stopping at the first that fails."""
    if node.unschedulable and not pod.tolerates(Taint(UNSCHEDULABLE_TAINT)):
        return ["node(s) were unschedulable"]
    for taint in node.taints:
        if taint.effect in ("NoSchedule", "NoExecute") and not pod.tolerates(taint):
            return [f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"]
    if not pod.matches(node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    out = []
    if load.pods + 1 > node.max_pods:
        out.append("Too many pods")
    if pod.cpu and load.cpu + pod.cpu > node.cpu:
        out.append("Insufficient cpu")
    if pod.memory and node.memory is not None and load.memory + pod.memory > node.memory:
        out.append("Insufficient memory")
    return out


def feasible_to_find(nodes: int) -> int:
    """``numFeasibleNodesToFind`` with percentageOfNodesToScore unset (adaptive)."""
    if nodes < MIN_FEASIBLE_NODES:
        return nodes
    percent = max(50 - nodes // 125, MIN_FEASIBLE_PERCENT)
    return max(nodes * percent // 100, MIN_FEASIBLE_NODES)


def schedule(pod: PodNeeds, nodes: Sequence[NodeFacts], loads: Sequence[NodeLoad],
             peers: Sequence[int], rotation: Rotation,
             unavailable: Mapping[int, str] | None = None) -> Decision:
    """One scheduling cycle for ``pod``. ``loads[i]``: what node ``i`` holds; ``peers[i]``:
    its pods of the pod's owner (topology spreading); ``unavailable``: nodes out for a
    reason of their own (not Ready: the node controller's taint), with that reason.
    Advances ``rotation``."""
    n = len(nodes)
    to_find = feasible_to_find(n)
    feasible: list[int] = []
    failed: Counter[str] = Counter()
    processed = 0
    for step in range(n):
        if len(feasible) >= to_find:
            break
        i = (rotation.next_start + step) % n
        processed += 1
        why = unavailable.get(i) if unavailable else None
        reasons = [why] if why else filter_reasons(pod, nodes[i], loads[i])
        if reasons:
            failed.update(reasons)
        else:
            feasible.append(i)
    rotation.next_start = (rotation.next_start + processed) % n if n else 0
    if not feasible:
        detail = ", ".join(f"{count} {reason}" for reason, count in sorted(failed.items()))
        return Decision(None, f"0/{n} nodes are available: {detail}.")
    scores = total_scores(pod, nodes, loads, peers, feasible)
    best = max(scores.values())
    tied = [i for i in feasible if scores[i] == best]
    chosen = tied[rotation.last_node_index % len(tied)]
    rotation.last_node_index += 1
    return Decision(chosen, scores=scores)


def total_scores(pod: PodNeeds, nodes: Sequence[NodeFacts], loads: Sequence[NodeLoad],
                 peers: Sequence[int], feasible: list[int]) -> dict[int, int]:
    """Each feasible node's weighted sum of the normalised plugin scores."""
    spread = _spread_scores(pod, nodes, peers, feasible)
    taints = _normalize({i: sum(1 for t in nodes[i].taints if t.effect == "PreferNoSchedule"
                                and not pod.tolerates(t)) for i in feasible}, reverse=True)
    affinity = _normalize({i: sum(w for w, term in pod.preferred if term.matches(nodes[i]))
                           for i in feasible}, reverse=False)
    best_effort = not pod.cpu and not pod.memory
    out = {}
    for i in feasible:
        out[i] = (WEIGHTS["NodeResourcesFit"] * least_allocated(pod, nodes[i], loads[i])
                  + (0 if best_effort else WEIGHTS["NodeResourcesBalancedAllocation"]
                     * balanced_allocation(pod, nodes[i], loads[i]))
                  + WEIGHTS["PodTopologySpread"] * spread[i]
                  + WEIGHTS["TaintToleration"] * taints[i]
                  + WEIGHTS["NodeAffinity"] * affinity[i])
    return out


def least_allocated(pod: PodNeeds, node: NodeFacts, load: NodeLoad) -> int:
    """``leastRequestedScore`` averaged over CPU and memory (weights 1 and 1), over the
    non-zero requests; a node of unknown memory is scored on CPU alone."""
    cpu, memory = pod.nonzero
    parts = [_least(load.nonzero_cpu + cpu, node.cpu)]
    if node.memory is not None:
        parts.append(_least(load.nonzero_memory + memory, node.memory))
    return sum(parts) // len(parts)


def _least(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def balanced_allocation(pod: PodNeeds, node: NodeFacts, load: NodeLoad) -> int:
    """``balancedResourceScorer`` over the requests as given (``useRequested``)."""
    fractions = [min((load.cpu + pod.cpu) / node.cpu, 1.0)] if node.cpu else []
    if node.memory:
        fractions.append(min((load.memory + pod.memory) / node.memory, 1.0))
    std = abs(fractions[0] - fractions[1]) / 2 if len(fractions) == 2 else 0.0
    return int((1 - std) * MAX_NODE_SCORE)


def _spread_scores(pod: PodNeeds, nodes: Sequence[NodeFacts], peers: Sequence[int],
                   feasible: list[int]) -> dict[int, int]:
    """PodTopologySpread with the system default constraints: ``PreScore`` counts the
    owner's pods per zone over every node the pod's node affinity admits, ``Score`` adds
    ``count * weight + maxSkew - 1`` per constraint, ``NormalizeScore`` inverts."""
    zones = {nodes[i].labels.get(ZONE_LABEL) for i in feasible} - {None}
    in_zone: Counter[str] = Counter()
    for i, node in enumerate(nodes):
        zone = node.labels.get(ZONE_LABEL)
        if zone in zones and peers[i] and pod.matches(node):
            in_zone[zone] += peers[i]  # type: ignore[index]
    host_weight = math.log(len(feasible) + 2)
    zone_weight = math.log(len(zones) + 2)
    raw = {}
    for i in feasible:
        score = peers[i] * host_weight + (HOSTNAME_SKEW - 1)
        zone = nodes[i].labels.get(ZONE_LABEL)
        if zone is not None:
            score += in_zone[zone] * zone_weight + (ZONE_SKEW - 1)
        raw[i] = math.floor(score + 0.5)  # Go's math.Round (half away from zero)
    low, high = min(raw.values()), max(raw.values())
    if high == 0:
        return dict.fromkeys(raw, MAX_NODE_SCORE)
    return {i: MAX_NODE_SCORE * (high + low - s) // high for i, s in raw.items()}


def _normalize(scores: dict[int, int], reverse: bool) -> dict[int, int]:
    """helper.DefaultNormalizeScore: scale to 0-100 by the highest (reversed: 100 - it)."""
    high = max(scores.values(), default=0)
    if high == 0:
        return dict.fromkeys(scores, MAX_NODE_SCORE if reverse else 0)
    out = {}
    for i, s in scores.items():
        s = MAX_NODE_SCORE * s // high
        out[i] = MAX_NODE_SCORE - s if reverse else s
    return out
