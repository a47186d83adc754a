"""The external load balancer over every Node:NodePort: health checks (active on the
NodePort or the healthCheckNodePort, passive max_fails), algorithms, and 503s."""

from __future__ import annotations

import numpy as np
from conftest import client, constant, scenario_dict

import npsim
from npsim.sim.engine import Simulation

INTERVAL, TIMEOUT, FALL, RISE = 2.0, 1.0, 3, 2


def lb_local(events: list[dict], duration: float = 40.0, balancer: dict | None = None,
             rate: float = 150.0, placement: dict | str = "spread", **kwargs) -> dict:
    """3 nodes, one pod each, a LoadBalancer Service with externalTrafficPolicy Local,
    clients behind a balancer checking the healthCheckNodePort."""
    c = client(rate=rate, source_ips=50)
    c["balancer"] = balancer or {
        "algorithm": "roundRobin",
        "healthCheck": {"interval": f"{INTERVAL}s", "timeout": f"{TIMEOUT}s", "fall": FALL,
                        "rise": RISE, "port": "healthCheckNodePort"}}
    d = scenario_dict(nodes=3, replicas=3, workers=8, service_time=constant(1e-3),
                      clients=[c], duration=duration, placement=placement, **kwargs)
    svc = d["manifests"][0]["spec"]
    svc["type"] = "LoadBalancer"
    svc["externalTrafficPolicy"] = "Local"
    d["events"] = events
    d["run"]["timeseriesBucket"] = "100ms"
    return d


def marks(scenario: npsim.Scenario) -> tuple[list[tuple[float, str, str]], Simulation]:
    """The balancer's marks (time, kind, node) and the finished simulation."""
    sim = Simulation(scenario)
    out = sim.run()
    rows = [(t, k, s) for t, k, s in zip(out.events.time, out.events.kind, out.events.subject,
                                         strict=True) if k.startswith("lb_")]
    return rows, sim


def test_local_health_check_takes_a_node_without_ready_endpoint_out_and_back():
    """Scale 3 -> 2 at 10 s removes node-3's pod; scale back at 25 s puts a new one
    there. The balancer stops sending to node-3 once fall checks failed, and never
    sends to it again until rise checks passed."""
    d = lb_local([{"at": "10s", "scale": {"deployment": "web", "replicas": 2}},
                  {"at": "25s", "scale": {"deployment": "web", "replicas": 3}}])
    scenario = npsim.scenario_from_dict(d)
    rows, _ = marks(scenario)
    assert [(k, s) for _, k, s in rows] == [("lb_mark_down", "node-3"),
                                            ("lb_mark_up", "node-3")]
    down, up = rows[0][0], rows[1][0]
    # the first failing check starts within one interval after node-3's sync (< 1 s)
    assert down >= 10.0 + (FALL - 1) * INTERVAL + TIMEOUT
    assert down <= 10.0 + 1.0 + FALL * INTERVAL + TIMEOUT
    assert 25.0 + (RISE - 1) * INTERVAL <= up <= 25.0 + 1.0 + RISE * INTERVAL
    result = npsim.run(scenario)
    req = result.requests
    via3 = req[req["entry_node"] == "node-3"]
    assert not ((via3["t_start"] > down) & (via3["t_start"] < up)).any()
    failed = req[req["outcome"] == "failed"]
    # to the deleted pod until node-3 syncs, then dropped (Local, no local endpoint)
    assert set(failed["reason"]) == {"connect_timeout", "dropped_no_local_endpoint"}
    assert (failed["entry_node"] == "node-3").all()
    assert failed["t_start"].min() >= 10.0 and failed["t_start"].max() <= down
    ts = result.node_timeseries
    ts = ts[ts["node"] == "node-3"]
    lb = ts["lb_up"].to_numpy()
    assert (lb[(ts["time"] + 0.1 > down + 1e-9) & (ts["time"] + 0.1 < up)] == 0).all()
    assert lb[0] == 1 and lb[-1] == 1
    ready = ts["ready_endpoints"].to_numpy()
    assert ready[0] == 3 and ready[150] == 2 and ready[-1] == 3


def test_passive_checks_take_a_failing_node_out_for_fail_timeout():
    """node-3 has no pod (Local: DROP). nginx max_fails=1 fail_timeout=5s: node-3 gets
    traffic only until a failure is learnt (the balancer's 1 s connect timeout), then
    none for 5 s."""
    balancer = {"algorithm": "roundRobin", "connectTimeout": "1s",
                "passive": {"maxFails": 1, "failTimeout": "5s"}}
    d = lb_local([], duration=30.0, balancer=balancer, placement={"node-1": 2, "node-2": 1})
    rows, out = marks(npsim.scenario_from_dict(d))
    downs = [t for t, k, s in rows if k == "lb_mark_down"]
    assert all(s == "node-3" for _, _, s in rows)
    assert 4 <= len(downs) <= 6  # about every 6 s: 1 s to learn + 5 s out
    assert np.allclose(np.diff(downs), 6.0, atol=0.1)
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    fails = req[req["outcome"] == "failed"]
    assert (fails["entry_node"] == "node-3").all()
    assert len(fails) < 0.25 * len(req)  # a third without the passive check
    assert np.allclose(fails["latency"], 1.0)


def test_every_node_down_answers_503_and_least_connections_drains_to_zero():
    """Scale to 0: every healthCheckNodePort answers 503, the balancer marks all nodes
    down and answers no_healthy_upstream itself; a request-count run still ends."""
    balancer = {"algorithm": "leastConnections",
                "healthCheck": {"interval": "1s", "timeout": "500ms", "fall": 2,
                                "port": "healthCheckNodePort"}}
    d = lb_local([{"at": "3s", "scale": {"deployment": "web", "replicas": 0}}],
                 balancer=balancer, rate=100.0)
    del d["run"]["duration"]
    d["run"]["requests"] = 1200
    scenario = npsim.scenario_from_dict(d)
    rows, out = marks(scenario)
    downs = sorted(s for _, k, s in rows if k == "lb_mark_down")
    assert downs == ["node-1", "node-2", "node-3"]
    last_down = max(t for t, _, _ in rows)
    assert last_down <= 3.0 + 1.0 + 2 * 1.0 + 0.5
    balancer_state = out.populations[0].balancer
    assert balancer_state.in_flight == [0, 0, 0]
    req = npsim.run(scenario).requests
    assert len(req) == 1200
    late = req[req["t_start"] > last_down]
    assert (late["reason"] == "no_healthy_upstream").all() and len(late) > 500
    early = req[req["t_start"] < 3.0]
    assert (early["outcome"] == "completed").all()
    counts = early["entry_node"].value_counts()
    assert counts.max() - counts.min() <= 0.1 * counts.mean()


def test_the_balancer_checks_the_allocated_health_check_node_port():
    """Only LoadBalancer + Local gets one, from the NodePort allocator's dynamic band."""
    sim = Simulation(npsim.scenario_from_dict(lb_local([])))
    sp = sim.cluster.service_ports[0]
    assert 30086 <= sp.health_check_node_port <= 32767
    assert sp.health_check_node_port != sp.node_port
    assert sim.populations[0].balancer.check_name == (
        f"healthCheckNodePort {sp.health_check_node_port}")


def test_a_stopped_kube_proxy_fails_the_health_check_node_port():
    """kube-proxy stops on node-1 at 5 s: its rules stay (traffic would still flow) but
    its health server is gone, so the balancer takes node-1 out after fall checks."""
    d = lb_local([{"at": "5s", "kubeProxyStop": {"node": "node-1"}}], duration=15.0)
    rows, _ = marks(npsim.scenario_from_dict(d))
    assert [(k, s) for _, k, s in rows] == [("lb_mark_down", "node-1")]
    assert 5.0 + (FALL - 1) * INTERVAL + TIMEOUT <= rows[0][0] <= 5.0 + FALL * INTERVAL + TIMEOUT


def test_round_robin_cycles_the_nodes_and_snat_hides_the_clients():
    c = client(rate=100.0, source_ips=50)
    c["balancer"] = {"algorithm": "roundRobin", "snat": True, "addresses": 2}
    d = scenario_dict(nodes=3, replicas=3, clients=[c], duration=2.0)
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    order = req["entry_node"].cat.codes.to_numpy()
    assert (order == np.arange(len(order)) % 3).all()
    assert set(req["source_ip_at_node"].astype(str)) == {"192.0.2.10", "192.0.2.11"}
