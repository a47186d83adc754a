"""A pod template's scheduling fields and a node's room, read as the API server and the
kubelet give them: quantities, node affinity, tolerations; wrong ones are reported at
their line, and the resolved scenario writes them back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import load_text
from scenario_files import SERVICE_TIME, line_of, scenario_text

from npsim.scenario.problems import ScenarioError
from npsim.scenario.quantity import cpu_millis, memory_bytes

SCENARIO = scenario_text(
    name="sched",
    nodes=("{name: n1, cpu: 2, memory: 3Gi, maxPods: 30, labels: {disk: ssd},\n"
           " taints: [{key: dedicated, value: web, effect: NoSchedule}]}",
           "{name: n2, unschedulable: true}"),
    ports="{port: 80}", replicas=2, pod_spec="""\
        nodeSelector: {disk: ssd}
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
                - matchExpressions: [{key: disk, operator: In, values: [ssd]}]
            preferredDuringSchedulingIgnoredDuringExecution:
              - {weight: 10, preference: {matchExpressions: [{key: gpu, operator: Exists}]}}
        tolerations: [{key: dedicated, operator: Equal, value: web, effect: NoSchedule}]
        containers:
          - name: a
            resources: {requests: {cpu: 250m, memory: 64Mi}}
          - name: b
            resources: {limits: {cpu: "1", memory: 1Gi}}""",
    clients=["{name: users, service: web, arrival: {rate: 1/s}}"])


def test_quantities() -> None:
    assert [cpu_millis(v) for v in ("250m", "1", 0.5, "1.5", "2e-3", "0.1m")] == [
        250, 1000, 500, 1500, 2, 1]
    assert [memory_bytes(v) for v in ("64Mi", "1G", "1Ki", 1000, "1.5Gi")] == [
        64 << 20, 10 ** 9, 1024, 1000, 3 << 29]
    for bad in ("1x", "-1", "", True, "1 Gi"):
        with pytest.raises(ValueError, match="quantity"):
            cpu_millis(bad)


def test_scheduling_fields_are_read_and_written_back(tmp_path: Path) -> None:
    sc = load_text(tmp_path, SCENARIO)
    dep = sc.deployments["web"]
    # requests summed over containers; b's limits stand for its requests
    assert (dep.cpu_request, dep.memory_request) == (1250, (64 << 20) + (1 << 30))
    assert dep.node_selector == {"disk": "ssd"}
    assert dep.required_terms == (((("disk", "In", ("ssd",)),), ()),)
    assert dep.preferred_terms == ((10, ((("gpu", "Exists", ()),), ())),)
    assert dep.tolerations == (("dedicated", "Equal", "web", "NoSchedule"),)
    assert sc.spec.workloads["web"].placement_for(dep.has_requests) == "scheduler"
    n1, n2 = sc.spec.cluster.nodes
    assert (n1.memory, n1.max_pods, n1.labels, n1.taints[0].effect) == (
        3 << 30, 30, {"disk": "ssd"}, "NoSchedule")
    assert (n2.memory, n2.max_pods, n2.unschedulable) == (None, 110, True)
    again = load_text(tmp_path, yaml.safe_dump(sc.to_dict(), sort_keys=False))
    redo = again.deployments["web"]
    for attr in ("cpu_request", "memory_request", "node_selector", "required_terms",
                 "preferred_terms", "tolerations"):
        assert getattr(redo, attr) == getattr(dep, attr), attr
    assert again.spec.cluster.nodes[0].memory == 3 << 30


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("cpu: 250m", "cpu: 250x", rf":{line_of(SCENARIO, 'cpu: 250m')}:\d+: manifests\[1\]\.spec"
     r"\.template\.spec\.containers\[0\]\.resources\.requests\.cpu: Invalid value: '250x': "
     r"must be a quantity"),
    ("operator: In", "operator: Near", r"matchExpressions\[0\]\.operator: Unsupported value:"
     r' "Near"'),
    ("operator: Equal, value: web", "operator: Exists, value: web",
     r"tolerations\[0\]\.operator: Invalid value: value must be empty when `operator` is "
     r"'Exists'"),
    ("weight: 10", "weight: 0", r"weight: Invalid value: 0: must be in the range 1-100"),
    ("memory: 3Gi", "memory: lots", rf":{line_of(SCENARIO, 'memory: 3Gi')}:\d+: "
     r"cluster\.nodes\[0\]\.memory: expected a quantity"),
])
def test_wrong_fields_are_located(tmp_path: Path, old: str, new: str, expected: str) -> None:
    import re

    assert SCENARIO.count(old) == 1
    with pytest.raises(ScenarioError) as exc:
        load_text(tmp_path, SCENARIO.replace(old, new))
    assert re.search(expected, str(exc.value)), str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_scheduler_placement_may_go_with_hand_placed_pods(tmp_path: Path) -> None:
    assert SCENARIO.count(f"    {SERVICE_TIME}\n") == 1
    text = SCENARIO.replace(f"    {SERVICE_TIME}\n", f"    {SERVICE_TIME}\n"
                            "    placement: scheduler\n    pods: [{node: n1, ip: 10.244.0.9}]\n")
    sc = load_text(tmp_path, text)
    assert sc.spec.workloads["web"].placement == "scheduler"
