"""``placement: scheduler``: kube-scheduler's default profile places each pod.

Figures come from the upstream functions named in each test (pkg/scheduler/framework/
plugins): the filters keep pods off nodes without room or with taints they do not
tolerate, LeastAllocated / BalancedAllocation and the default soft PodTopologySpread
spread them, and a pod no node can take stays Pending and is reported."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from click.testing import CliRunner

from npsim.cli import main
from npsim.cluster.model import build_cluster
from npsim.cluster.placement import pending_problems
from npsim.cluster.scheduler import (
    NodeFacts,
    NodeLoad,
    PodNeeds,
    Rotation,
    Taint,
    Term,
    Toleration,
    balanced_allocation,
    filter_reasons,
    least_allocated,
    schedule,
    total_scores,
)
from npsim.preflight import preflight
from npsim.scenario.loader import scenario_from_dict
from npsim.scenario.yamlio import plain
from npsim.sim.engine import Simulation

MI = 1024 * 1024


def deployment(name: str, replicas: int = 1, cpu: str | None = "100m",
               memory: str | None = "128Mi", **pod: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container: dict[str, Any] = {"name": name, "ports": [{"containerPort": 8080}]}
    if requests:
        container["resources"] = {"requests": requests}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name, "tier": "web"}},
                                  "spec": {"containers": [container], **pod}}}}


def scenario(deployments: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None,
             workloads: dict[str, Any] | None = None, events: list[Any] | None = None,
             duration: str = "2s", control: dict[str, Any] | None = None) -> Any:
    nodes = nodes or [{"name": f"n{i}", "cpu": 2, "memory": "4Gi"} for i in (1, 2, 3)]
    data: dict[str, Any] = {
        "name": "sched",
        "cluster": {"nodes": nodes, **({"controlPlane": control} if control else {})},
        "manifests": [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                       "spec": {"type": "NodePort", "selector": {"tier": "web"},
                                "ports": [{"port": 80, "targetPort": 8080}]}},
                      *deployments],
        "workloads": {d["metadata"]["name"]: {"serviceTime": {"dist": "constant",
                                                              "value": "1ms"},
                                              "startup": "0.5s",
                                              **(workloads or {}).get(d["metadata"]["name"],
                                                                      {})}
                      for d in deployments},
        "clients": [{"name": "users", "service": "web", "arrival": {"rate": "20/s"}}],
        "run": {"duration": duration},
    }
    if events:
        data["events"] = events
    return scenario_from_dict(data)


def events(sim: Any, kind: str) -> list[tuple[float, str, str, str]]:
    log = sim.events
    return [row for row in zip(log.time, log.kind, log.subject, log.detail, strict=True)
            if row[1] == kind]


def per_node(cluster: Any) -> list[int]:
    counts = [0] * len(cluster.nodes)
    for pod in cluster.pods:
        counts[pod.node] += 1
    return counts


def requested(sc: Any, pods: list[Any]) -> tuple[list[int], list[int]]:
    """CPU (millicores) and memory (bytes) the given pods request, per node."""
    n = len(sc.spec.cluster.nodes)
    cpu, memory = [0] * n, [0] * n
    for pod in pods:
        dep = sc.deployments[pod.deployment]
        cpu[pod.node] += dep.cpu_request
        memory[pod.node] += dep.memory_request
    return cpu, memory


def test_twelve_single_replica_deployments_spread_four_four_four() -> None:
    """12 Deployments of one pod requesting 100m and 128Mi on three 2-CPU nodes: each pod
    goes where leastRequestedScore is highest: after n1 takes one, n1 scores
    (2000-200)*100/2000 = 90 on CPU against 95 for the empty nodes, and so on: 4/4/4.
    ``spread`` (each Deployment dealt from the first node) put all 12 on n1."""
    deps = [deployment(f"svc{i}") for i in range(12)]
    sc = scenario(deps)
    assert all(sc.spec.workloads[f"svc{i}"].placement is None for i in range(12))
    assert per_node(build_cluster(sc)) == [4, 4, 4]
    spread = scenario(deps, workloads={f"svc{i}": {"placement": "spread"} for i in range(12)})
    assert per_node(build_cluster(spread)) == [12, 0, 0]
    # no requests at all: spread by default, as before
    bare = scenario([deployment(f"svc{i}", cpu=None, memory=None) for i in range(12)])
    assert per_node(build_cluster(bare)) == [12, 0, 0]


def test_least_allocated_and_balanced_allocation_figures() -> None:
    """leastRequestedScore: (capacity - requested) * 100 / capacity per resource,
    averaged; balancedResourceScorer: (1 - |f_cpu - f_mem| / 2) * 100."""
    node = NodeFacts("n1", 2000, 4096 * MI)
    pod = PodNeeds(cpu=500, memory=512 * MI)
    load = NodeLoad()
    load.add(PodNeeds(cpu=500, memory=1024 * MI))
    # cpu: (2000 - 1000) * 100 // 2000 = 50; memory: (4096 - 1536) * 100 // 4096 = 62
    assert least_allocated(pod, node, load) == (50 + 62) // 2
    # fractions 0.5 and 0.375: std 0.0625 -> 93
    assert balanced_allocation(pod, node, load) == 93
    # a container without requests counts 100m and 200Mi in LeastAllocated (non-zero)
    empty = NodeLoad()
    empty.add(PodNeeds())
    assert (empty.nonzero_cpu, empty.nonzero_memory) == (100, 200 * MI)
    # a node of unknown memory is scored on CPU alone
    assert least_allocated(pod, NodeFacts("n2", 2000, None), load) == 50


def test_pod_topology_spread_default_constraints_normalisation() -> None:
    """PodTopologySpread.Score with systemDefaultConstraints (hostname maxSkew 3, zone
    maxSkew 5): n1 holds 2 of the owner's pods, all three nodes in one zone.
    n1: round(2 * ln(3 + 2) + 2 + 2 * ln(1 + 2) + 4) = 11; n2, n3: round(2 + 2 * ln 3
    + 4) = 8. NormalizeScore: 100 * (11 + 8 - s) / 11 -> 72 for n1, 100 for the others;
    times the plugin's weight 2."""
    nodes = [NodeFacts(f"n{i}", 2000, None, labels={"topology.kubernetes.io/zone": "a"})
             for i in (1, 2, 3)]
    loads = [NodeLoad() for _ in nodes]
    pod = PodNeeds()  # best effort: BalancedAllocation is skipped (its PreScore)
    scores = total_scores(pod, nodes, loads, [2, 0, 0], [0, 1, 2])
    la = least_allocated(pod, nodes[0], loads[0])  # 95 on every node (same loads)
    assert la == 95
    assert round(2 * math.log(5) + 2 + 2 * math.log(3) + 4) == 11
    # TaintToleration (weight 3) gives 100 to nodes without PreferNoSchedule taints
    assert scores == {0: la + 2 * 72 + 300, 1: la + 2 * 100 + 300, 2: la + 2 * 100 + 300}


def test_filters_taints_tolerations_selectors_affinity_and_cordon() -> None:
    """TaintToleration.Filter, NodeAffinity.Filter, NodeUnschedulable.Filter and
    fitsRequest, with their reasons."""
    tainted = NodeFacts("gpu", 4000, None, labels={"gpu": "true", "kubernetes.io/hostname":
                                                   "gpu"},
                        taints=(Taint("gpu", "true", "NoSchedule"),))
    load = NodeLoad()
    plain_pod = PodNeeds(cpu=100)
    assert filter_reasons(plain_pod, tainted, load) == [
        "node(s) had untolerated taint {gpu: true}"]
    tolerant = PodNeeds(cpu=100, tolerations=(Toleration("gpu", "Equal", "true",
                                                         "NoSchedule"),))
    assert filter_reasons(tolerant, tainted, load) == []
    assert filter_reasons(PodNeeds(tolerations=(Toleration(operator="Exists"),)),
                          tainted, load) == []  # an empty key with Exists tolerates all
    cordoned = NodeFacts("c", 4000, None, unschedulable=True)
    assert filter_reasons(plain_pod, cordoned, load) == ["node(s) were unschedulable"]
    selector = PodNeeds(node_selector={"disk": "ssd"})
    node = NodeFacts("n", 4000, None, labels={"disk": "hdd"})
    assert filter_reasons(selector, node, load) == [
        "node(s) didn't match Pod's node affinity/selector"]
    for term, fits in ((Term((("disk", "In", ("ssd", "hdd")),)), True),
                       (Term((("disk", "NotIn", ("hdd",)),)), False),
                       (Term((("disk", "Exists", ()),)), True),
                       (Term((("disk", "DoesNotExist", ()),)), False),
                       (Term(fields=(("metadata.name", "In", ("n",)),)), True),
                       (Term(), False)):  # an empty term matches no node
        assert (filter_reasons(PodNeeds(required=(term,)), node, load) == []) is fits, term
    full = NodeFacts("small", 1000, 1024 * MI, max_pods=2)
    busy = NodeLoad()
    busy.add(PodNeeds(cpu=900, memory=1000 * MI))
    busy.add(PodNeeds(cpu=50))
    assert filter_reasons(PodNeeds(cpu=100, memory=100 * MI), full, busy) == [
        "Too many pods", "Insufficient cpu", "Insufficient memory"]


def test_ties_go_round_robin_and_the_message_counts_reasons() -> None:
    """selectHost's lastNodeIndex: tied nodes taken in turn; no feasible node gives
    kube-scheduler's FailedScheduling message, reasons counted and sorted."""
    nodes = [NodeFacts(f"n{i}", 1000, None) for i in range(3)]
    rotation = Rotation()
    loads = [NodeLoad() for _ in nodes]
    first = schedule(PodNeeds(), nodes, loads, [0, 0, 0], rotation)
    second = schedule(PodNeeds(), nodes, loads, [0, 0, 0], rotation)
    assert (first.node, second.node) == (0, 1)
    tainted = [*nodes[:2], NodeFacts("n2", 1000, None, taints=(Taint("k", "", "NoExecute"),))]
    decision = schedule(PodNeeds(cpu=2000), tainted, loads, [0, 0, 0], rotation)
    assert decision.node is None
    assert decision.message == ("0/3 nodes are available: 2 Insufficient cpu, "
                                "1 node(s) had untolerated taint {k: }.")


def test_pod_too_large_for_any_node_stays_pending_with_a_warning() -> None:
    sc = scenario([deployment("web", replicas=2, cpu="500m"),
                   deployment("big", cpu="3")])
    cluster = build_cluster(sc)
    assert [p.deployment for p in cluster.pods] == ["web", "web"]
    message = "0/3 nodes are available: 3 Insufficient cpu."
    assert cluster.pending == {"big": (1, message)}
    [(loc, text)] = pending_problems(sc)
    assert loc == ["workloads", "big"] and "1 of 1 pods of Deployment 'big' fit on no " \
        "node and stay Pending" in text and message in text
    preflight(sc)
    assert any("stay Pending" in w.message for w in sc.warnings)
    sim = Simulation(sc)
    sim.run()
    assert events(sim, "pod_pending") == [(0.0, "pod_pending", "big", message)]


def test_validate_prints_the_pending_warning(tmp_path: Any) -> None:
    import yaml

    sc = scenario([deployment("big", cpu="3")])
    path = tmp_path / "scenario.yaml"
    data = sc.to_dict()
    path.write_text(yaml.safe_dump(plain(data), sort_keys=False))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "stay Pending" in result.output


@pytest.mark.parametrize("seed", range(8))
def test_requests_never_exceed_allocatable(seed: int) -> None:
    """Random Deployments (requests up to a node's size) on random nodes: whatever the
    scheduler places fits (fitsRequest), the rest is Pending, nothing is dropped."""
    rng = random.Random(seed)
    nodes = [{"name": f"n{i}", "cpu": rng.choice([0.5, 1, 2]),
              "memory": f"{rng.choice([512, 1024, 2048])}Mi", "zone": rng.choice("ab")}
             for i in range(rng.randint(2, 5))]
    deps = [deployment(f"d{i}", replicas=rng.randint(1, 6),
                       cpu=f"{rng.choice([50, 100, 250, 500, 900])}m",
                       memory=f"{rng.choice([64, 128, 256, 700])}Mi") for i in range(8)]
    sc = scenario(deps, nodes=nodes)
    cluster = build_cluster(sc)
    cpu, memory = requested(sc, cluster.pods)
    for i, node in enumerate(sc.spec.cluster.nodes):
        assert cpu[i] <= node.cpu * 1000 and memory[i] <= node.memory
    placed = {name: sum(p.deployment == name for p in cluster.pods) for name in sc.deployments}
    for name, dep in sc.deployments.items():
        assert placed[name] + cluster.pending.get(name, (0, ""))[0] == dep.replicas


def test_an_evicted_nodes_pods_land_on_nodes_with_room() -> None:
    """Six 600m pods on three 2-CPU nodes, two each, and a 500m pod placed by hand on n2.
    n1 crashes for good: after the grace period and the toleration its two pods are
    evicted and the ReplicaSet makes two more. n2 holds 1700m (300m free): the first goes
    to n3 (800m free), the second fits nowhere and stays Pending with the scheduler's
    reason. ``spread`` would have put them on the nodes with the fewest web pods,
    past n2's allocatable."""
    nodes = [{"name": f"n{i}", "cpu": 2, "memory": "4Gi"} for i in (1, 2, 3)]
    sc = scenario([deployment("filler", cpu="500m"), deployment("web", replicas=6,
                                                                cpu="600m")],
                  nodes=nodes, workloads={"filler": {"placement": {"n2": 1}}},
                  duration="20s",
                  control={"nodeMonitorGracePeriod": "4s", "tolerationSeconds": "2s"},
                  events=[{"at": "1s", "nodeCrash": {"node": "n1"}}])
    sim = Simulation(sc)
    assert per_node(sim.cluster) == [2, 3, 2]
    sim.run()
    evicted = events(sim, "pod_evicted")
    assert len(evicted) == 2
    later = [(p.name, p.node) for p in sim.cluster.pods if p.created_at > 0]
    assert later == [("web-6", 2)]
    pending = events(sim, "pod_pending")
    assert pending and pending[0][0] == evicted[0][0]
    assert {e[3] for e in pending} == {
        "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) were not ready."}
    alive = [p for p in sim.cluster.pods if p.deleted_at is None and p.node != 0]
    assert requested(sc, alive)[0] == [0, 1700, 1800]


def test_scale_up_and_rollout_go_through_the_scheduler() -> None:
    """Three 1-CPU nodes, three 500m pods (one a node). A scale to 7 makes four more:
    three fit (one more a node, 1000m each), the fourth stays Pending with the scheduler's
    message. A rollout's surge pods (maxSurge 25% of 6 -> 2) find no room either: it
    goes on by maxUnavailable (25% of 6 -> 1): an old pod terminates, and the new one goes
    to the node it leaves once it is gone. No node ever holds more than its allocatable."""
    nodes = [{"name": f"n{i}", "cpu": 1, "memory": "4Gi"} for i in (1, 2, 3)]
    sc = scenario([deployment("web", replicas=3, cpu="500m")], nodes=nodes, duration="10s",
                  events=[{"at": "1s", "scale": {"deployment": "web", "replicas": 7}},
                          {"at": "4s", "scale": {"deployment": "web", "replicas": 6}},
                          {"at": "6s", "rollout": {"deployment": "web"}}])
    sim = Simulation(sc)
    assert per_node(sim.cluster) == [1, 1, 1]
    sim.run()
    made = [(p.name, p.node) for p in sim.cluster.pods if 0 < p.created_at < 4]
    assert sorted(node for _, node in made) == [0, 1, 2]
    pending = events(sim, "pod_pending")
    assert pending[0][:3] == (1.0, "pod_pending", "web")
    assert pending[0][3] == "0/3 nodes are available: 3 Insufficient cpu."
    rolled = [p for p in sim.cluster.pods if p.created_at >= 6]
    gone = [p for p in sim.cluster.pods if p.deleted_at is not None and p.deleted_at >= 6]
    assert rolled and gone  # no room to surge: each new pod waits for an old one to go
    assert rolled[0].created_at == min(p.deleted_at for p in gone)
    assert rolled[0].node == min(gone, key=lambda p: p.deleted_at).node
    for t in (2.0, 5.0, 9.0):
        alive = [p for p in sim.cluster.pods
                 if p.created_at <= t and (p.deleted_at is None or p.deleted_at > t)]
        assert all(c <= 1000 for c in requested(sc, alive)[0]), t


def test_pod_cidr_room_counts_the_schedulers_pods() -> None:
    """The address check places the scheduler's pods as the run does: six 10m pods on
    one node with a /29 (room for 5) are refused before the run; a Pending pod that a
    later deletion may let in counts against the room too."""
    from npsim.cluster.model import address_problems

    nodes = [{"name": "n1", "cpu": 2, "podCIDR": "10.1.1.0/29"}]
    [(_, message)] = address_problems(scenario([deployment("web", replicas=6, cpu="10m")],
                                               nodes=nodes))
    assert "pod CIDR 10.1.1.0/29 has room for 5 pods but 6 would be placed" in message
    waiting = scenario([deployment("big", replicas=2, cpu="1500m"),
                        deployment("small", replicas=2, cpu="10m")],
                       nodes=[{"name": "n1", "cpu": 2, "podCIDR": "10.1.1.0/29"}],
                       events=[{"at": "1s", "scale": {"deployment": "big", "replicas": 0}}])
    assert build_cluster(waiting).pending == {
        "big": (1, "0/1 nodes are available: 1 Insufficient cpu.")}
    [(_, message)] = address_problems(waiting)  # 3 placed + up to 2 made later > 5 - 0
    assert "up to" in message, message
