"""kube-proxy's health servers behind a health-checking balancer (npsim/sim/probes.py).

* The per-Service healthCheckNodePort (``pkg/proxy/healthcheck/service_health.go``
  ``hcHandler.ServeHTTP``) answers 200 only while the node has a local *ready* endpoint
  (``LocalReadyEndpoints``): a node whose only pod is terminating answers 503 with
  ``localEndpoints: 0`` while kube-proxy still forwards to that pod (the
  serving-terminating fallback, on from v1.26), so the balancer drains the node before
  the pod exits.
* The node health server on 10256 (``proxy_health.go``): 200 unless a change has waited
  2 x ``syncPeriod`` for its sync; what cloud balancers check for Cluster-policy
  Services (KEP-3836).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import client, constant, scenario_dict

import npsim
from npsim.sim.engine import Simulation
from npsim.sim.probes import NodePortProbe


def _local_lb(version: str, pre_stop: int = 10) -> npsim.Scenario:
    """3 nodes, one pod each, LoadBalancer + Local; the balancer checks the
    healthCheckNodePort every 1 s (fall 2, timeout 0.5 s). At 10 s the Deployment
    scales to 2: node-3's pod terminates (preStop 10 s, then drains)."""
    c = client(rate=100.0, source_ips=50)
    c["connectTimeout"] = "1s"
    c["balancer"] = {"algorithm": "roundRobin",
                     "healthCheck": {"interval": "1s", "timeout": "0.5s", "fall": 2,
                                     "rise": 2, "port": "healthCheckNodePort"}}
    d = scenario_dict(nodes=3, replicas=3, workers=8, service_time=constant(1e-3),
                      clients=[c], duration=40.0)
    d["cluster"]["kubernetesVersion"] = version
    svc = d["manifests"][0]["spec"]
    svc["type"] = "LoadBalancer"
    svc["externalTrafficPolicy"] = "Local"
    container = d["manifests"][1]["spec"]["template"]["spec"]["containers"][0]
    container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(pre_stop)]}}}
    d["events"] = [{"at": "10s", "scale": {"deployment": "web", "replicas": 2}}]
    return npsim.scenario_from_dict(d)


def _events(result: npsim.Result, kind: str) -> pd.DataFrame:
    e = result.events
    return e[e["kind"].astype(str) == kind]


def test_terminating_only_node_answers_503_and_loses_no_request() -> None:
    """v1.32: node-3's pod terminating -> localEndpoints 0 -> 503 -> the balancer marks
    node-3 down within fall x interval (+ the sync and a timeout); meanwhile kube-proxy
    keeps forwarding node-3's connections to its serving-terminating pod, which answers
    through its 10 s preStop: no request is lost."""
    result = npsim.run(_local_lb("1.32"))
    assert not (result.requests["outcome"].astype(str) == "failed").any()
    down = _events(result, "lb_mark_down")
    assert list(down["subject"]) == ["node-3"]
    assert 10.0 + 1.0 < down["time"].item() <= 10.0 + 1.5 + 2 * 1.0 + 0.5
    assert _events(result, "pod_sigterm")["time"].item() == pytest.approx(20.0)
    via3 = result.requests[(result.requests["entry_node"].astype(str) == "node-3").to_numpy()]
    assert via3["t_start"].max() <= down["time"].item()


def test_before_the_terminating_fallback_the_same_scale_down_drops_requests() -> None:
    """v1.25 (ProxyTerminatingEndpoints off by default): node-3 has no local endpoint the
    moment it syncs, so its connections are dropped until the balancer marks it down:
    the same health check cannot save them."""
    result = npsim.run(_local_lb("1.25"))
    failed = result.requests[(result.requests["outcome"].astype(str) == "failed").to_numpy()]
    assert len(failed) > 0
    assert set(failed["entry_node"].astype(str)) == {"node-3"}
    assert set(failed["reason"].astype(str)) <= {"dropped_no_local_endpoint", "connect_timeout"}


def test_local_endpoints_count_is_ready_only() -> None:
    """The probe's ``localEndpoints`` (LocalReadyEndpoints) for node-3 is 0 once its pod
    is terminating, while its programmed Local table still holds that pod."""
    scenario = _local_lb("1.32")
    scenario.spec.run.duration = 12.0  # node-3 synced (~10.1 s), the pod in preStop
    sim = Simulation(scenario)
    sim.run()
    probe = NodePortProbe(sim.proxies, [_Up()] * 3, 0, lambda node: True,
                          np.random.default_rng(0))
    assert probe.local_ready(2) == 0 and probe.local_ready(0) == 1
    assert sim.proxies[2].views[0].local.n == 1  # still forwarding to the terminating pod
    assert not probe.health_check(2) and probe.health_check(0)


class _Up:
    alive = True


@pytest.mark.parametrize("port", ["proxyHealthz", "proxyLivez"])
def test_node_health_server_fails_when_rules_go_stale(port: str) -> None:
    """A sync that takes 90 s (syncBase) leaves a change queued longer than 2 x
    syncPeriod (60 s): /healthz and /livez answer 503 from 60 s after the change arrived
    until the sync ends, and the balancer takes every node out, then back."""
    c = client(rate=20.0)
    c["balancer"] = {"algorithm": "roundRobin",
                     "healthCheck": {"interval": "2s", "timeout": "1s", "fall": 3, "rise": 2,
                                     "port": port}}
    d = scenario_dict(nodes=2, replicas=2, service_time=constant(1e-3), clients=[c],
                      duration=120.0)
    d["cluster"]["kubeProxy"] = {"syncBase": "90s"}
    d["events"] = [{"at": "5s", "scale": {"deployment": "web", "replicas": 3}}]
    result = npsim.run(npsim.scenario_from_dict(d))
    down = _events(result, "lb_mark_down")
    up = _events(result, "lb_mark_up")
    assert sorted(down["subject"].astype(str)) == ["node-1", "node-2"]
    assert (down["time"] >= 65.0).all() and (down["time"] <= 65.0 + 1.0 + 3 * 2.0 + 1.0).all()
    assert (up["time"] >= 95.0).all() and len(up) == 2
    assert "kube-proxy :10256" in down["detail"].iloc[0]
