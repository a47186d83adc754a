"""Integer scenario keys refuse YAML booleans: pydantic's lax mode would read
``requests: true`` as 1 request and run something the user did not mean."""

from __future__ import annotations

from pathlib import Path

from conftest import load_text, problems_of

SCENARIO = """\
name: booleans
cluster:
  nodes: [{name: n1, zone: a}]
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
      replicas: 1
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers: [{name: web, ports: [{containerPort: 8080}]}]
workloads:
  web:
    workers: WORKERS
    placement: {n1: PLACED}
    serviceTime: {dist: constant, value: 1ms}
clients:
  - {name: users, service: web, arrival: {rate: 50/s}}
run: {requests: REQUESTS}
"""


def _text(workers: str, placed: str, requests: str) -> str:
    return (SCENARIO.replace("WORKERS", workers).replace("PLACED", placed)
            .replace("REQUESTS", requests))


def _report(tmp_path: Path, workers: str, placed: str, requests: str) -> str:
    return problems_of(tmp_path, _text(workers, placed, requests))


def test_booleans_in_integer_fields_are_refused_with_their_paths(tmp_path: Path) -> None:
    report = _report(tmp_path, "true", "false", "true")
    assert "scenario.yaml:29:7: run.requests: expected a whole number, got the boolean true" \
        in report
    assert "workloads.web.workers: expected a whole number, got the boolean true" in report
    assert "workloads.web.placement.n1: expected a whole number, got the boolean false" \
        in report


def test_whole_numbers_still_load(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, _text("2", "1", "5"))
    assert scenario.spec.run.requests == 5
    assert scenario.spec.workloads["web"].workers == 2
