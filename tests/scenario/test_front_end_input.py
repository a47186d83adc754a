"""Bad front-end, client and monitoring input: one clear problem each, at load time."""

from __future__ import annotations

import pytest
from conftest import client, scenario_dict

import npsim
from npsim.scenario.problems import ScenarioError


def _problems(mutate) -> str:  # noqa: ANN001
    d = scenario_dict(nodes=2, clients=[client(rate=10.0)], duration=5.0)
    mutate(d)
    with pytest.raises(ScenarioError) as err:
        npsim.scenario_from_dict(d)
    return err.value.report()


def test_health_check_node_port_needs_a_loadbalancer_local_service():
    text = _problems(lambda d: d["clients"][0].update(
        balancer={"healthCheck": {"port": "healthCheckNodePort"}}))
    assert "clients[0].balancer.healthCheck.port" in text and "type LoadBalancer" in text


@pytest.mark.parametrize(("change", "message"), [
    ({"balancer": {"algorithm": "roundRobin"}, "entry": {"node": "node-1"}},
     "picks the node itself"),
    ({"retries": {"retryOn": ["conect_timeout"]}}, "unknown failure reason(s) conect_timeout"),
    ({"start": "5s", "stop": "2s"}, "'stop' must be after 'start'"),
    ({"balancer": {"nextUpstream": 1}, "retries": {"attempts": 1}},
     "give either balancer.nextUpstream or retries"),
    ({"balancer": {"healthCheck": {"interval": "1s", "timeout": "2s"}}},
     "timeout must be > 0 and at most the interval"),
])
def test_client_options_are_checked(change, message):
    assert message in _problems(lambda d: d["clients"][0].update(change))


def test_an_alert_rule_names_one_condition():
    text = _problems(lambda d: d.update(monitoring={"alerts": [{"name": "A", "for": "30s"}]}))
    assert "give exactly one of 'probe', 'errorRatio' or 'latencyP99'" in text
