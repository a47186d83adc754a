"""Traffic to a Service's external addresses: spec.externalIPs, the LoadBalancer ingress IP
(VIP mode) and its loadBalancerSourceRanges, as kube-proxy's rules route them
(pkg/proxy/iptables/proxier.go: the "external IP" and "loadbalancer IP" rules of
KUBE-SERVICES, KUBE-FW-..., KUBE-PROXY-FIREWALL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import npsim
from npsim.outcomes import FIREWALL_DROPPED, REASONS
from npsim.scenario.problems import ScenarioError
from npsim.sim.engine import Simulation

BASE = """\
name: external-addresses
cluster:
  proxyMode: {mode}
  nodes:
    - {{name: node-1, podCIDR: 10.244.1.0/24}}
    - {{name: node-2, podCIDR: 10.244.2.0/24}}
    - {{name: node-3, podCIDR: 10.244.3.0/24}}
manifests:
  - apiVersion: v1
    kind: Service
    metadata: {{name: web}}
    spec:
      type: LoadBalancer
      selector: {{app: web}}
      externalIPs: [192.0.2.10]
      loadBalancerSourceRanges: [203.0.113.0/25]
      ports: [{{port: 80, targetPort: 8080}}]
    status:
      loadBalancer:
        ingress: [{{ip: 198.51.100.7}}]
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: web}}
    spec:
      replicas: 3
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec: {{containers: [{{name: web}}]}}
workloads:
  web: {{workers: 8, serviceTime: {{dist: constant, value: 1ms}}}}
clients:
{clients}
run: {{duration: 4s, warmup: 0s}}
"""


def scenario(tmp_path: Path, clients: list[dict], mode: str = "iptables") -> Path:
    lines = "\n".join(f"  - {yaml.safe_dump(c, default_flow_style=True).strip()}"
                      for c in clients)
    path = tmp_path / "scenario.yaml"
    path.write_text(BASE.format(mode=mode, clients=lines))
    return path


def client(name: str, target: str, base: str, **more: object) -> dict:
    return {"name": name, "service": "web", "target": target, "sourceIPBase": base,
            "sourceIPs": 4, "arrival": {"rate": "50/s"}, "connectTimeout": "3s", **more}


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
def test_only_sources_inside_the_ranges_reach_the_lb_ip(tmp_path: Path, mode: str) -> None:
    path = scenario(tmp_path, [client("inside", "loadBalancerIP", "203.0.113.10"),
                               client("outside", "loadBalancerIP", "203.0.113.200")], mode)
    sim = Simulation(npsim.load_scenario(path))
    cols = sim.run().log.columns()
    inside, outside = cols["population"] == 0, cols["population"] == 1
    assert inside.sum() > 100 and outside.sum() > 100
    assert (cols["outcome"][inside] != 2).all()  # served (or in flight at the end)
    failed = cols["outcome"][outside] == 2
    ended = cols["outcome"][outside] != 0
    assert failed[ended].all()
    assert set(cols["reason"][outside][failed]) == {FIREWALL_DROPPED}
    assert REASONS[FIREWALL_DROPPED] == "firewall_dropped"
    # dropped, not refused: the client waits for its connect timeout
    waited = cols["t_end"][outside][failed] - cols["t_start"][outside][failed]
    assert np.allclose(waited, 3.0)


def test_an_external_ip_reaches_the_service_on_any_node(tmp_path: Path) -> None:
    path = scenario(tmp_path, [client("users", "externalIP", "192.0.2.200")])
    cols = Simulation(npsim.load_scenario(path)).run().log.columns()
    ended = cols["outcome"] != 0
    assert (cols["outcome"][ended] == 1).all()
    assert set(cols["entry"]) == {0, 1, 2}  # entry random: every node takes it


def test_in_cluster_traffic_to_the_lb_ip_stays_on_its_node(tmp_path: Path) -> None:
    """KUBE-SERVICES catches the VIP on the caller's own node: it never leaves the
    cluster to the balancer (iptables mode). The pod's IP must be in the ranges."""
    path = scenario(tmp_path, [{"name": "pods", "service": "web", "target": "loadBalancerIP",
                                "source": {"pod": "node-2"}, "arrival": {"rate": "50/s"}}])
    data = yaml.safe_load(path.read_text())
    data["manifests"][0]["spec"]["loadBalancerSourceRanges"] = ["10.244.0.0/16"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cols = Simulation(npsim.load_scenario(path)).run().log.columns()
    assert (cols["entry"] == 1).all()
    assert (cols["outcome"][cols["outcome"] != 0] == 1).all()


@pytest.mark.parametrize(("target", "message"), [
    ("externalIP", "has no spec.externalIPs to send to"),
    ("loadBalancerIP", "has no LoadBalancer ingress IP"),
])
def test_a_target_the_service_lacks_is_a_placed_error(tmp_path: Path, target: str,
                                                      message: str) -> None:
    path = scenario(tmp_path, [client("users", target, "192.0.2.200")])
    data = yaml.safe_load(path.read_text())
    spec = data["manifests"][0]
    spec["spec"].pop("externalIPs")
    spec["spec"].pop("loadBalancerSourceRanges")
    spec.pop("status")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScenarioError) as info:
        npsim.load_scenario(path)
    assert "clients[0].target: " in info.value.report() and message in info.value.report()
