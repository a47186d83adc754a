"""Validation of a call's ``target``, ``node`` and ``external`` (npsim/scenario/
calls_spec.py, call_checks.py): each mistake is one placed problem (file, line,
field), and ``npsim validate`` exits 2 with it and no traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import npsim
from npsim.cli import main
from npsim.scenario.problems import ScenarioError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sim"))
from test_calls import two_tier  # noqa: E402


def with_call(call: dict[str, Any], service: dict[str, Any] | None = None) -> dict[str, Any]:
    d = two_tier(nodes=2)
    d["workloads"]["web"]["calls"] = [call]
    d["manifests"][2]["spec"].update(service or {})
    return d


def error(d: dict[str, Any]) -> str:
    with pytest.raises(ScenarioError) as info:
        npsim.scenario_from_dict(d)
    return str(info.value)


BACKEND = {"service": "backend", "port": 9000}


@pytest.mark.parametrize("call, service, where, words", [
    ({**BACKEND, "target": "podIP"}, None, "calls[0].target", "clusterIP"),
    ({**BACKEND, "target": "nodePort"}, None, "calls[0].target",
     "is type ClusterIP: it has no NodePort"),
    ({**BACKEND, "target": "nodePort", "node": "node-9"}, {"type": "NodePort"},
     "calls[0].node", "unknown node 'node-9' (nodes: node-1, node-2)"),
    ({**BACKEND, "node": "node-1"}, None, "calls[0]", "needs 'target: nodePort'"),
    ({**BACKEND, "target": "externalIP"}, None, "calls[0].target", "no spec.externalIPs"),
    ({**BACKEND, "target": "loadBalancerIP"}, {"type": "LoadBalancer"}, "calls[0].target",
     "ipMode Proxy balancer is reached through its NodePorts"),
    ({**BACKEND, "external": {"address": "a.example:443", "latency": "1ms"}}, None,
     "calls[0]", "give exactly one of 'service'"),
    ({"external": {"address": "a.example", "latency": {"dist": "constant", "value": "1ms"}}},
     None, "calls[0].external", "is not host:port"),
    ({"external": {"address": "a.example:70000",
                   "latency": {"dist": "constant", "value": "1ms"}}},
     None, "calls[0].external", "between 1 and 65535"),
    ({"external": {"address": "a.example:443"}}, None, "calls[0].external.latency",
     "Field required"),
    ({"external": {"name": "backend", "latency": {"dist": "constant", "value": "1ms"}}},
     None, "calls[0].external", "has the name of a Service"),
    ({"port": 1, "external": {"name": "x", "latency": {"dist": "constant", "value": "1ms"}}},
     None, "calls[0]", "takes no 'port', 'target' or 'node'"),
])
def test_bad_targets_are_placed_errors(call, service, where, words):
    msg = error(with_call(call, service))
    assert f"workloads.web.{where}" in msg and words in msg, msg


def test_one_dependency_described_two_ways_is_an_error():
    d = two_tier()
    latency = {"dist": "constant", "value": "1ms"}
    d["workloads"]["web"]["calls"] = [
        {"external": {"address": "db.example:5432", "latency": latency, "concurrency": 2}},
        {"external": {"address": "db.example:5432", "latency": latency, "concurrency": 3}}]
    msg = error(d)
    assert "workloads.web.calls[1].external" in msg and "described differently" in msg


def test_valid_targets_load():
    lb = {"type": "LoadBalancer", "externalIPs": ["203.0.113.9"]}
    d = with_call({**BACKEND, "target": "nodePort", "node": "node-2"}, lb)
    d["manifests"][2]["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.20"}]}}
    npsim.scenario_from_dict(d)
    for target in ("externalIP", "loadBalancerIP"):
        d["workloads"]["web"]["calls"] = [{**BACKEND, "target": target}]
        npsim.scenario_from_dict(d)
    d["workloads"]["web"]["calls"] = [{"external": {
        "address": "10.0.0.1:5432", "latency": {"dist": "constant", "value": "1ms"},
        "failureProbability": 0.1, "concurrency": 4}}]
    npsim.scenario_from_dict(d)


def test_validate_names_file_line_and_field_and_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = with_call({**BACKEND, "target": "nodePort", "node": "node-7"}, {"type": "NodePort"})
    Path("calls.yaml").write_text(yaml.safe_dump(d, sort_keys=False), "utf-8")
    line = next(i for i, text in enumerate(Path("calls.yaml").read_text().splitlines(), 1)
                if "node-7" in text)
    result = CliRunner().invoke(main, ["validate", "calls.yaml"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"calls.yaml:{line}" in result.output and "unknown node 'node-7'" in result.output


def test_preflight_counts_an_external_call_as_one_row():
    from npsim.preflight import estimate

    d = two_tier()  # 100/s for 5 s: each request 1 row + 2 external calls
    d["workloads"]["web"]["calls"] = [{"external": {
        "address": "api.example:443", "latency": {"dist": "constant", "value": "1ms"}},
        "count": 2}]
    assert estimate(npsim.scenario_from_dict(d)).requests_per_replication == (
        pytest.approx(500 * 3))
