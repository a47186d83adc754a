"""How many pod addresses each node's pod CIDR must give out over a run.

Pod addresses are not reused, so a node's pod CIDR must hold every pod ever created
there: the first replicas, and every pod the control plane makes later
(``npsim/sim/controlplane.py``): scale-ups, the new pods of a rolling update (each old
pod replaced, up to ``maxSurge`` more at once), and the replacements of pods evicted
from a node that stayed unreachable past the taint's ``tolerationSeconds``. Where the
run's order of events cannot be known from the scenario alone (rollout steps wait for
readiness, evictions for the node lifecycle controller's timers), an upper bound
from the rules the control plane follows is used, so a scenario ``validate`` accepts
never runs out of addresses:

* a new pod goes to the schedulable node with the fewest active pods of its Deployment
  (``create_pod``), so right after a placement a node holds at most
  ``(M - 1) // S + 1`` of them, where ``M`` is the most pods the Deployment ever has
  active (its largest replica count, plus ``maxSurge`` during a rollout) and ``S`` the
  fewest nodes it may use that can be schedulable at once (those named by its
  placement, less every one an outage event takes down);
* a Deployment placed by the scheduler (``placement: scheduler``) starts where the
  scheduler puts it (the same pure function the run calls); its later pods may all go
  to one node, so a node holds at most its ``maxPods`` of them at once;
* pods are deleted only by a scale-down (at most as many as it removes), a rollout or
  an eviction, each removing at most the active pods a node holds; a node creates no
  more pods than it holds at the end plus those deleted from it.

Without rollouts, node outages and pods made NotReady out of turn (crashes, hangs,
hand-placed pods given as not ready), the scale events are replayed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from npsim.cluster.placement import initial_placement, placement_in_force
from npsim.scenario.faultplan import FaultPlan, Outage, Rollout, Scale

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario


@dataclass
class PodsMade:
    """Per node: pods created over the run (at most), and the scenario key to blame."""

    count: list[int]
    where: dict[int, list[object]]
    bounded: set[int]  # nodes whose count is an upper bound, not an exact replay


def pods_made(scenario: Scenario, capacity: list[int]) -> PodsMade:
    """Pods each node gets addresses for over the run (hand-placed pods keep their own).

    ``capacity``: the room of each node's pod CIDR, to name the scale event that first
    overflows it."""
    spec = scenario.spec
    names = [n.name for n in spec.cluster.nodes]
    index = {name: i for i, name in enumerate(names)}
    out = PodsMade([0] * len(names), {}, set())
    events = sorted(FaultPlan.of(spec.events), key=lambda e: e.at)
    # the kubelet stops renewing its lease
    outages = [e for e in events if e.stops_kubelet and e.node in index]  # type: ignore[attr-defined]
    rollouts = {e.deployment for e in events if isinstance(e, Rollout)}
    # a pod made NotReady out of turn changes which one a scale-down deletes first
    # (``_deletion_order``), and so where the next scale-up goes: no exact replay then
    unready = any(e.unreadies_pod for e in events)
    evicting = _evicting_outages(scenario, outages)
    live: dict[str, list[int]] = {}  # node of each live pod per Deployment, oldest first
    allowed: dict[str, list[int]] = {}  # nodes a Deployment's new pods may go to
    every = list(range(len(names)))  # a spread Deployment's (one list for all of them)
    later = [0] * len(names)  # bounded pods made after the start
    blame: dict[int, list[object]] = {}  # the event that makes them
    plan = initial_placement(scenario)  # the scheduler's pods: placed as the run does
    for name in scenario.deployments:
        workload = spec.workloads.get(name)
        placement = placement_in_force(scenario, name) if workload is not None else "spread"
        # the scheduler's later choices depend on every pod's requests: bounded
        in_turn = not unready and placement != "scheduler"
        if workload is not None and getattr(workload, "pods", None) is not None:
            start = [index[p.node] for p in workload.pods if p.node in index]
            in_turn &= all(p.ready and not p.terminating for p in workload.pods)
        else:  # hand-placed pods above keep their addresses; these take new ones
            start = plan.nodes.get(name, [])
            for node in start:
                out.count[node] += 1
                out.where.setdefault(node, ["workloads", name])
        if in_turn and not outages and name not in rollouts:
            live[name] = list(start)
            allowed[name] = _allowed(placement, names) if isinstance(placement, dict) \
                else every
            continue
        bound = _bound(scenario, name, start, placement, names, events, outages, evicting,
                       name in plan.pending)
        for node in start:
            bound[node] -= 1
        for node, extra in enumerate(bound):
            if extra > 0:
                blame.setdefault(node, _blame(name, events, evicting))
                later[node] += extra
                out.bounded.add(node)
    for event in events:  # exact: the spreading rule of create_pod, no node down
        if not isinstance(event, Scale) or event.deployment not in live:
            continue
        pods, wanted = live[event.deployment], event.replicas
        if wanted > len(pods):
            counts = dict.fromkeys(allowed[event.deployment], 0)
            for node in pods:
                if node in counts:
                    counts[node] += 1
            from npsim.cluster.lifecycle import spread

            for node in spread(counts, wanted - len(pods)):  # as create_pod places them
                pods.append(node)
                out.count[node] += 1
                if out.count[node] > capacity[node]:
                    out.where.setdefault(node, ["events", event.index, event.key,
                                                "replicas"])
        else:
            del pods[wanted:]
    for node, extra in enumerate(later):  # full only after the start: blame the event
        if out.count[node] <= capacity[node] < out.count[node] + extra:
            out.where[node] = blame[node]
        out.count[node] += extra
    return out


def _allowed(placement: object, names: list[str]) -> list[int]:
    """The nodes ``create_pod`` may use: those a placement mapping names, else all."""
    if isinstance(placement, dict):
        return [i for i, n in enumerate(names) if placement.get(n, 0) > 0]
    return list(range(len(names)))


def _evicting_outages(scenario: Scenario, outages: list[Outage]) -> dict[int, float]:
    """The outage events (by index) that may last long enough for their node's pods to
    be evicted, with the soonest time they may be: not back before the grace period and
    the toleration have passed (less a lease interval and a monitor period of slack, as
    the timers' phases vary), and within the run."""
    if not outages:
        return {}
    from npsim.cluster.lifecycle import timing_for  # only with outages: validate starts fast

    spec = scenario.spec
    timing = timing_for(spec.cluster.kubernetes_version, spec.cluster.control_plane)
    soonest = (timing.grace_period + timing.toleration_seconds
               - timing.lease_renew_interval - timing.monitor_period)
    end = spec.run.duration if spec.run.requests is None else None
    out = {}
    for event in outages:
        evict_at = event.at + soonest
        if event.until is not None and event.until <= evict_at:
            continue
        if end is not None and evict_at > end:
            continue
        out[event.index] = evict_at
    return out


def _bound(scenario: Scenario, name: str, start: list[int], placement: object,
           names: list[str], events: list[Outage], outages: list[Outage],
           evicting: dict[int, float], pending: bool = False) -> list[int]:
    """Upper bound of the pods of Deployment ``name`` made on each node (module doc).
    ``pending``: pods the scheduler placed nowhere at the start, made once room appears
    (any deletion may make it)."""
    from npsim.cluster.lifecycle import resolve_strategy

    dep = scenario.deployments[name]
    nodes = len(names)
    initial = [0] * nodes
    for node in start:
        initial[node] += 1
    allowed = set(_allowed(placement, names))
    most = desired = dep.replicas
    scale_downs: list[int] = []  # pods each scale-down deletes, over all nodes
    rollouts = 0  # each may delete every old pod
    creations: list[float] = []  # times from which pods may be created
    for event in events:
        if isinstance(event, Scale) and event.deployment == name:
            wanted = event.replicas
            if wanted < desired:
                scale_downs.append(desired - wanted)
            if wanted > desired:
                creations.append(event.at)
            desired = wanted
            most = max(most, wanted)
        elif isinstance(event, Rollout) and event.deployment == name:
            rollouts += 1
            creations.append(event.at)
    surge = resolve_strategy(most, dep.max_surge, dep.max_unavailable).max_surge \
        if rollouts else 0
    most += surge  # and a scale-down in a rollout may delete the surge pods too
    # a node may come back (and take new pods) while any of its outages has not ended;
    # one down for good takes no pod after that (the end of another outage of the same
    # node, e.g. a kubelet restarted, brings it back: then it is not down for good)
    back = [-float("inf")] * nodes
    for event in outages:
        node = names.index(event.node)  # type: ignore[attr-defined]
        back[node] = max(back[node], event.until if event.until is not None else -1.0)
    evictions = [0] * nodes  # of a node that comes back, so it may take new pods again
    gone_at = [float("inf")] * nodes
    for event in outages:
        k = event.index
        node = names.index(event.node)  # type: ignore[attr-defined]
        returns = back[node] > event.at
        if not returns:
            gone_at[node] = min(gone_at[node], event.at)
        if k in evicting and (node in allowed or initial[node]):
            creations.append(evicting[k])  # replacements of the evicted pods
            evictions[node] += returns
    if pending:
        creations.append(0.0)
    if not creations:
        return initial
    down = {names.index(e.node) for e in outages} & allowed  # type: ignore[attr-defined]
    fewest = max(len(allowed) - len(down), 1)
    per_node = (most - 1) // fewest + 1 if most > 0 else 0
    if placement == "scheduler":  # it may put them all on one node, up to its maxPods
        per_node = most
    first = min(creations)
    made = []
    for node in range(nodes):
        if node not in allowed or gone_at[node] <= first:
            made.append(initial[node])
            continue
        active = max(initial[node], per_node if placement != "scheduler" else min(
            per_node, scenario.spec.cluster.nodes[node].max_pods))  # the most it ever holds
        deleted = sum(min(gone + surge, active) for gone in scale_downs) + active * (
            rollouts + evictions[node])
        made.append(active + deleted)
    return made


def _blame(name: str, events: list[Outage], evicting: dict[int, float]) -> list[object]:
    """The first event that creates pods of Deployment ``name`` (its YAML key)."""
    for event in events:
        if event.index in evicting or isinstance(event, Scale | Rollout) \
                and event.deployment == name:
            return ["events", event.index, event.key]
    return ["workloads", name]
