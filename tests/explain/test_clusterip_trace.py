"""``npsim explain --trace`` walks a connection to a NodePort. In a scenario whose pods
call ClusterIP Services (the three-tier shop), an SRE names the callee (``--service
cart``) or lists a ClusterIP Service first; the trace must not walk a NodePort of 0 on
a Service that has none."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from npsim.cli import main

SHOP = Path(__file__).resolve().parents[2] / "scenarios"


def explain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["explain", *args])
    return result.exit_code, result.output


def test_a_clusterip_service_is_refused_for_a_trace_with_the_reason():
    code, out = explain(str(SHOP / "three-tier-shop.yaml"), "--service", "cart",
                        "--trace", "10.244.0.2")
    assert code == 2, out
    assert "cart" in out and "ClusterIP" in out and "NodePort" in out
    assert "Traceback" not in out and ":0 (TCP)" not in out
    # the rules alone are still printed for it (no trace asked)
    code, out = explain(str(SHOP / "three-tier-shop.yaml"), "--service", "cart")
    assert code == 0 and "KUBE-SVC-" in out


def test_without_service_the_trace_takes_the_first_nodeport_service(tmp_path: Path):
    docs = list(yaml.safe_load_all((SHOP / "manifests" / "shop.yaml").read_text()))
    docs.sort(key=lambda d: not (d["kind"] == "Service"  # the ClusterIP Services first
                                 and d["spec"].get("type", "ClusterIP") == "ClusterIP"))
    (tmp_path / "shop.yaml").write_text(yaml.safe_dump_all(docs))
    scenario = yaml.safe_load((SHOP / "three-tier-shop.yaml").read_text())
    scenario["manifests"] = ["shop.yaml"]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(scenario))
    code, out = explain(str(tmp_path / "s.yaml"), "--trace", "203.0.113.7:40000")
    assert code == 0, out
    assert "-> 172.18.0.2:30080 (TCP)" in out  # the frontend's NodePort on node-1
    assert "served by pod frontend-" in out
