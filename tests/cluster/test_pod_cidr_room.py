"""A node whose pod CIDR cannot hold the pods placed on it is reported once, with how
many pods did not fit and the CIDR's room, however many pods that is."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_text

from npsim.cluster.model import build_cluster
from npsim.scenario.problems import ScenarioError

SCENARIO = """\
name: full-cidr
cluster:
  nodes:
    - {name: n1, zone: a, podCIDR: 10.1.1.0/29}
    - {name: n2, zone: a, podCIDR: 10.1.2.0/29}
manifests:
  - apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      type: NodePort
      selector: {app: web}
      ports: [{port: 80, targetPort: 8080}]
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers: [{name: web, ports: [{containerPort: 8080}]}]
workloads:
  web:
    serviceTime: {dist: constant, value: 1ms}
clients:
  - {name: users, service: web, arrival: {rate: 50/s}}
run: {duration: 1s}
"""


def test_one_problem_per_full_node(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, SCENARIO)
    # a scenario changed in Python skips the loader's address checks: 5 pods fit a /29
    scenario.deployments["web"].replicas = 30
    with pytest.raises(ScenarioError) as caught:
        build_cluster(scenario)
    problems = caught.value.problems
    assert [p.path for p in problems] == ["cluster.nodes[0].podCIDR",
                                           "cluster.nodes[1].podCIDR"]
    assert "10.1.1.0/29 of node n1 has room for 5 pods; 10 more did not fit" in \
        problems[0].message
    assert "10.1.2.0/29 of node n2 has room for 5 pods; 10 more did not fit" in \
        problems[1].message
