"""Hand-placed pods (``workloads.NAME.pods``), hand-made EndpointSlices of selector-less
Services, and ``spec.clusterIP``: a scenario can say where pods run and at which
addresses, as a real cluster's EndpointSlices do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import load_text, problems_of, scenario_file
from scenario_files import SERVICE_TIME, scenario_text

from npsim.cli import main
from npsim.cluster.model import build_cluster, ip_str, new_pod
from npsim.sim.engine import Simulation

DB_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  type: NodePort
  clusterIP: 10.96.7.7
  ports: [{name: sql, port: 5432, nodePort: 30432}]"""
DB_SLICE = """\
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-manual
  namespace: data
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: sql, port: 6432, protocol: TCP}]
endpoints:
  - addresses: [10.1.1.50]
    nodeName: n1
    hints: {forZones: [{name: a}]}
  - addresses: [10.1.2.50]
    nodeName: n2
    hints: {forZones: [{name: b}]}
  - addresses: [10.1.2.51]
    nodeName: n2
    conditions: {ready: false}
    hints: {forZones: [{name: b}]}"""
SCENARIO = scenario_text(
    name="explicit",
    nodes=("{name: n1, zone: a, podCIDR: 10.1.1.0/24}",
           "{name: n2, zone: b, podCIDR: 10.1.2.0/24}"),
    manifests=(DB_SERVICE, DB_SLICE), replicas=2, pod_spec="containers: [{name: web}]",
    workloads={"db-backends": f"""\
        namespace: data
        {SERVICE_TIME}
        pods:
          - {{node: n1, ip: 10.1.1.50, name: db-a}}
          - {{node: n2, ip: 10.1.2.50, name: db-b}}
          - {{node: n2, ip: 10.1.2.51, name: db-c, ready: false}}""",
               "web": f"""\
        {SERVICE_TIME}
        pods:
          - {{node: n1, ip: 10.1.1.2}}
          - {{node: n2, ip: 10.1.2.9, ready: false, serving: true, terminating: true}}"""},
    clients=["{name: users, service: db, arrival: {rate: 50/s}}"], run="{duration: 2s}")


def test_selector_less_service_gets_its_endpoints_from_its_slices(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, SCENARIO)
    cluster = build_cluster(scenario)
    db = cluster.service_port_for("db", None)
    # the slice's port (6432), the ready addresses only, on the pods placed there
    assert [(ip_str(e.ip), e.port) for e in db.endpoints] == [("10.1.1.50", 6432),
                                                            ("10.1.2.50", 6432)]
    assert [cluster.pods[e.pod].name for e in db.endpoints] == ["db-a", "db-b"]
    assert [cluster.nodes[e.node].name for e in db.endpoints] == ["n1", "n2"]


def test_a_terminating_serving_pod_is_used_only_when_none_is_ready(tmp_path: Path) -> None:
    sim = Simulation(load_text(tmp_path, SCENARIO))
    web = sim.cluster.service_port_for("web", None)
    ready, _hints, terminating = sim.control.published(web.index, version=0)
    assert [ip_str(e.ip) for e in ready] == ["10.1.1.2"]
    assert [ip_str(e.ip) for e in terminating] == ["10.1.2.9"]  # kube-proxy's fallback
    db = sim.cluster.service_port_for("db", None)
    assert [ip_str(e.ip) for e in sim.control.published(db.index).ready] == ["10.1.1.50",
                                                                           "10.1.2.50"]


def test_slice_hints_steer_each_node_to_its_own_zone(tmp_path: Path) -> None:
    sim = Simulation(load_text(tmp_path, SCENARIO))
    output = CliRunner().invoke(main, ["explain", str(tmp_path / "scenario.yaml"),
                                       "--service", "db", "--node", "n2"]).output
    assert "-d 10.96.7.7 --dport 5432" in output  # the manifest's clusterIP
    assert "--to-destination 10.1.2.50:6432" in output
    assert "10.1.1.50" not in output  # zone b's node keeps to zone b's endpoint
    assert sim.cluster.nodes[1].name == "n2"


def test_pods_made_later_skip_hand_placed_addresses(tmp_path: Path) -> None:
    first = "      - {node: n1, ip: 10.1.1.2}\n"
    text = SCENARIO.replace(first, first + "      - {node: n1, ip: 10.1.1.3}\n")
    scenario = load_text(tmp_path, text)
    cluster = build_cluster(scenario)
    assert ip_str(new_pod(scenario, cluster, "web", 0).ip) == "10.1.1.4"


def test_clusterip_numbering_skips_addresses_manifests_take(tmp_path: Path) -> None:
    from npsim.proxy.rules.common import cluster_ip

    text = SCENARIO.replace("clusterIP: 10.96.7.7", "clusterIP: 10.96.0.10")
    cluster = build_cluster(load_text(tmp_path, text))
    ips = {sp.service.name: cluster_ip(sp, cluster) for sp in cluster.service_ports}
    assert ips == {"db": "10.96.0.10", "web": "10.96.0.11"}


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("      - addresses: [10.1.2.50]\n        nodeName: n2",
     "      - addresses: [10.1.2.99]\n        nodeName: n2",
     r"scenario\.yaml:\d+:21: manifests\[1\]\.endpoints\[1\]\.addresses\[0\]: no pod has "
     r"address 10\.1\.2\.99"),
    ("      - addresses: [10.1.2.50]\n        nodeName: n2",
     "      - addresses: [10.1.2.50]\n        nodeName: n9",
     r"scenario\.yaml:\d+:9: manifests\[1\]\.endpoints\[1\]\.nodeName: unknown node 'n9'"),
    ("labels: {kubernetes.io/service-name: db}", "labels: {kubernetes.io/service-name: dbx}",
     r"scenario\.yaml:\d+:\d+: manifests\[1\]\.metadata\.labels\.kubernetes\.io/service-name: "
     r"no Service named 'dbx'"),
    ("      - {node: n2, ip: 10.1.2.50, name: db-b}", "      - {node: n3, ip: 10.1.2.50}",
     r"workloads\.db-backends\.pods\[1\]\.node: unknown node 'n3'"),
    ("clusterIP: 10.96.7.7", "clusterIP: 10.96.7",
     r"manifests\[0\]\.spec\.clusterIP: Invalid value: \"10\.96\.7\": must be a valid IP"),
    ("    namespace: data\n    serviceTime",
     "    namespace: data\n    placement: {n1: 3}\n    serviceTime",
     r"workloads\.db-backends: give either 'placement' or explicit 'pods', not both"),
])
def test_bad_hand_placement_is_located(tmp_path: Path, old: str, new: str,
                                       expected: str) -> None:
    assert SCENARIO.count(old) == 1
    assert re.search(expected, problems_of(tmp_path, SCENARIO.replace(old, new)))


def test_a_hand_made_slice_of_a_selector_service_is_ignored_with_a_warning(
        tmp_path: Path) -> None:
    text = SCENARIO.replace("      ports: [{name: sql, port: 5432, nodePort: 30432}]",
                            "      selector: {app: db}\n"
                            "      ports: [{name: sql, port: 5432, nodePort: 30432}]")
    scenario = load_text(tmp_path, text)
    assert any("the EndpointSlice controller manages its slices" in str(w)
               for w in scenario.warnings)
    assert scenario.services["db"].endpoint_slices == []


@pytest.mark.parametrize(("old", "new", "what"), [
    ("{node: n1, ip: 10.1.1.2}", "{node: n1, ip: 10.1.1.1}",
     "address 10.1.1.1 is the node's cni0 bridge address (the first host, the pods' "
     "gateway) of the pod CIDR 10.1.1.0/24 of node 'n1'"),
    ("{node: n1, ip: 10.1.1.2}", "{node: n1, ip: 10.1.1.0}",
     "address 10.1.1.0 is the network address of the pod CIDR 10.1.1.0/24 of node 'n1'"),
    ("{node: n1, ip: 10.1.1.2}", "{node: n1, ip: 10.1.1.255}",
     "address 10.1.1.255 is the broadcast address of the pod CIDR 10.1.1.0/24 of node "
     "'n1'"),
])
def test_a_hand_placed_pod_at_the_bridge_address_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str,
        what: str) -> None:
    """cni0 takes the first host of the node's pod CIDR (npsim sends same-node traffic
    from it): a pod there would share the node's own address."""
    text = SCENARIO.replace(old, new)
    path = scenario_file(tmp_path, text)
    line = text.splitlines().index(f"      - {new}") + 1
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "scenario.yaml"])
    assert result.exit_code == 2, result.output
    assert f"scenario.yaml:{line}:" in result.output
    assert f"workloads.web.pods[0].ip: {what}: no pod can have it" in result.output
    assert "Traceback" not in result.output and path.read_text() == text


def test_the_bridge_of_a_default_pod_cidr_is_refused_too(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    from npsim.cluster.model import default_pod_cidr

    bridge = default_pod_cidr(0).network_address + 1
    text = (SCENARIO.replace("{name: n1, zone: a, podCIDR: 10.1.1.0/24}", "{name: n1, zone: a}")
            .replace("{node: n1, ip: 10.1.1.2}", f"{{node: n1, ip: {bridge}}}")
            .replace("{node: n1, ip: 10.1.1.50, name: db-a}",
                     f"{{node: n1, ip: {bridge + 9}, name: db-a}}")
            .replace("addresses: [10.1.1.50]", f"addresses: [{bridge + 9}]"))
    scenario_file(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate", "scenario.yaml"])
    assert result.exit_code == 2, result.output
    assert f"workloads.web.pods[0].ip: address {bridge} is the node's cni0 bridge address" \
        in result.output
