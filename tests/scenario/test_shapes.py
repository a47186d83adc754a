"""Wrong YAML types anywhere npsim reads a manifest: a placed error, never a traceback.

Each case is one field of a real manifest given the wrong type, found by trying the
issue's classes as a new user (every one of these ended in AttributeError or
TypeError before the shapes of probes, lifecycle hooks, strategies, StatefulSets,
EndpointSlices and NetworkPolicies were checked).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import npsim
from npsim.scenario.problems import ScenarioError

NGINX = (Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "nginx.yaml")
SCENARIO = """\
name: shapes
cluster: {nodes: [{name: node-1}]}
manifests: [m.yaml]
workloads: {nginx: {serviceTime: 1ms}}
clients: [{name: users, service: nginx-nodeport, arrival: {rate: 100/s}}]
run: {duration: 1s}
"""
PORT = "        - containerPort: 80"
POLICY = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n"
SLICE = ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\naddressType: IPv4\n"
         "metadata: {name: es, labels: {kubernetes.io/service-name: nginx-nodeport}}\n")
STS = ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {replicas: 1, "
       "selector: {matchLabels: {app: db}}, template: {metadata: {labels: {app: db}}, "
       "spec: {containers: [{name: db, ports: 5}]}}}\n")


def _container(line: str) -> tuple[str, str]:
    return PORT, f"{PORT}\n        {line}"


CASES = {  # name: (text to replace or None to append a document, new text, field path)
    "readinessProbe: 5": (*_container("readinessProbe: 5"), "readinessProbe"),
    "livenessProbe: [1]": (*_container("livenessProbe: [1]"), "livenessProbe"),
    "lifecycle: 5": (*_container("lifecycle: 5"), "containers[0].lifecycle"),
    "preStop: 5": (*_container("lifecycle: {preStop: 5}"), "lifecycle.preStop"),
    "exec: 5": (*_container("lifecycle: {preStop: {exec: 5}}"), "preStop.exec"),
    "command: 5": (*_container("lifecycle: {preStop: {exec: {command: 5}}}"),
                   "exec.command"),
    "strategy: 5": ("  replicas: 4", "  replicas: 4\n  strategy: 5", "spec.strategy"),
    "rollingUpdate: 5": ("  replicas: 4", "  replicas: 4\n  strategy: {rollingUpdate: 5}",
                         "strategy.rollingUpdate"),
    "strategy type list": ("  replicas: 4", "  replicas: 4\n  strategy: {type: [a]}",
                           "strategy.type"),
    "StatefulSet ports: 5": (None, STS, "containers[0].ports"),
    "EndpointSlice ports: 5": (None, SLICE + "ports: 5\n", "ports"),
}
POLICY_SPECS = {  # a NetworkPolicy's spec.ingress rules (or policyTypes), and the field
    "policyTypes: 5": ("policyTypes: 5", "spec.policyTypes"),
    "ingress: 5": ("ingress: 5", "spec.ingress"),
    "from: 5": ("ingress: [{from: 5}]", "ingress[0].from"),
    "ipBlock: 5": ("ingress: [{from: [{ipBlock: 5}]}]", "from[0].ipBlock"),
    "except: 5": ("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: 5}}]}]",
                  "ipBlock.except"),
    "policy ports: 5": ("ingress: [{ports: 5}]", "ingress[0].ports"),
    "policy port item: 5": ("ingress: [{ports: [5]}]", "ports[0]"),
    "policy port: [1]": ("ingress: [{ports: [{port: [1]}]}]", "ports[0].port"),
}
CASES.update({name: (None, f"{POLICY}spec: {{podSelector: {{}}, {spec}}}\n", field)
              for name, (spec, field) in POLICY_SPECS.items()})


@pytest.mark.parametrize("name", list(CASES))
def test_a_wrong_type_in_a_manifest_is_a_placed_problem(tmp_path: Path, name: str) -> None:
    old, new, field = CASES[name]
    text = NGINX.read_text("utf-8")
    text = text.replace(old, new, 1) if old is not None else f"{text}---\n{new}"
    (tmp_path / "m.yaml").write_text(text, "utf-8")
    (tmp_path / "scenario.yaml").write_text(SCENARIO, "utf-8")
    with pytest.raises(ScenarioError) as info:
        npsim.load_scenario(tmp_path / "scenario.yaml")
    report = info.value.report()
    assert "m.yaml:" in report and field in report and "expected" in report, report


def test_an_ignored_kind_defines_nothing_and_validate_says_so(tmp_path: Path) -> None:
    """A misspelt kind is only a warning; the reference to the Service it meant is then
    an error with its line, in validate too (it passed validate and failed run)."""
    (tmp_path / "m.yaml").write_text(
        NGINX.read_text("utf-8").replace("kind: Service", "kind: Servce"), "utf-8")
    (tmp_path / "scenario.yaml").write_text(SCENARIO, "utf-8")
    with pytest.raises(ScenarioError) as info:
        npsim.load_scenario(tmp_path / "scenario.yaml")
    assert "scenario.yaml:5:" in info.value.report()
    assert "no Service named 'nginx-nodeport'" in info.value.report()
