"""Per-Service figures of a run whose pods call Services (results/summary.py
``service_scopes``, results/callframe.py ``call_graph``): what one Service saw from all
its callers, as an SRE asks "what does the cart Service see?"."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import client, deployment_manifest, exponential, scenario_dict, service_manifest

import npsim


def shop(**call_c: Any) -> dict[str, Any]:
    """web (the clients' Service) calls b, then c; b calls c too (``call_c``: extra keys
    of b's call to c). c runs two pods on two nodes."""
    d = scenario_dict(nodes=2, workers=8, service_time=exponential(1e-3),
                      clients=[client(rate=200.0)], duration=3.0, warmup=0.5, seed=4)
    for name, port, replicas in (("b", 9000, 1), ("c", 9100, 2)):
        svc = service_manifest(name, {"app": name})
        svc["spec"]["type"] = "ClusterIP"
        del svc["spec"]["ports"][0]["nodePort"]
        svc["spec"]["ports"][0]["port"] = port
        d["manifests"] += [svc, deployment_manifest(name, replicas, {"app": name})]
        d["workloads"][name] = {"workers": 8, "serviceTime": exponential(2e-3),
                                "placement": "spread"}
    d["workloads"]["web"]["calls"] = [{"service": "b", "port": 9000},
                                      {"service": "c", "port": 9100}]
    d["workloads"]["b"]["calls"] = [{"service": "c", "port": 9100, **call_c}]
    return d


def value(summary, scope: str, metric: str) -> float:
    row = summary[(summary["scope"] == scope) & (summary["metric"] == metric)]
    assert len(row) == 1, (scope, metric)
    return float(row["value"].iloc[0])


def test_service_scope_gathers_every_caller_of_a_service():
    """c is called by web and by b; b's calls have a 2 ms deadline against 2 ms of
    exponential work (about a third time out): service:c's count, p99 and error ratio
    are those of both callers' calls pooled, not of either edge."""
    result = npsim.run(npsim.scenario_from_dict(shop(timeout="2ms")))
    s, req = result.summary, result.requests
    edges = ("population:web>c:9100", "population:b>c:9100")
    assert value(s, "service:c", "requests_measured") == sum(
        value(s, e, "requests_measured") for e in edges)
    rows = req[~req["warmup"] & req["population"].isin(["web>c:9100", "b>c:9100"])]
    done = rows[rows["outcome"] == "completed"]
    assert value(s, "service:c", "latency_p99") == pytest.approx(
        float(np.quantile(done["latency"], 0.99)), rel=1e-12)
    ended = rows[rows["outcome"] != "in_flight"]
    pooled = float((ended["outcome"] == "failed").mean())
    assert value(s, "service:c", "error_ratio") == pytest.approx(pooled, rel=1e-12)
    web_c = value(s, edges[0], "error_ratio")
    b_c = value(s, edges[1], "error_ratio")
    assert web_c == 0 < pooled < b_c  # the timeouts are b's alone
    assert result.metric("error_ratio", service="c") == pooled
    # the entry Service's scope is the clients' requests; every Service has one
    assert {x for x in s["scope"] if x.startswith("service:")} == {
        "service:web", "service:b", "service:c"}
    assert value(s, "service:web", "latency_mean") == result.metric("latency_mean")
    # shares over c's own two pods (not every pod of the run)
    assert value(s, "service:c", "pod_share_max_over_mean") < 1.3
    with pytest.raises(KeyError, match="no service 'cart'.*services: b, c, web"):
        result.metric("latency_p99", service="cart")
    from npsim.cli.ci import document  # npsim run --json

    doc = document(result.scenario, [], summary=s)
    assert doc["services"]["c"]["error_ratio"]["value"] == pooled
    assert "service:c" not in doc["populations"] and "c" not in doc["populations"]


def test_call_graph_vertex_is_what_the_service_received():
    d = shop()
    d["workloads"]["web"]["calls"] = [{"parallel": [{"service": "c", "port": 9100},
                                                    {"service": "c", "port": 9100}]},
                                      {"service": "b", "port": 9000}]
    result = npsim.run(npsim.scenario_from_dict(d))
    graph = result.call_graph()
    # two branches of web to the same Service and port: one edge, twice the rate
    web_c = graph.edges[("service", "web"), ("service", "c")]
    b_c = graph.edges[("service", "b"), ("service", "c")]
    assert web_c["per_second"] == pytest.approx(2 * b_c["per_second"], rel=0.1)
    c = graph.nodes[("service", "c")]
    assert c["requests"] == web_c["requests"] + b_c["requests"]
    assert c["per_second"] == pytest.approx(web_c["per_second"] + b_c["per_second"])
    assert min(web_c["mean"], b_c["mean"]) <= c["mean"] <= max(web_c["mean"], b_c["mean"])
    assert c["per_second"] == pytest.approx(
        result.metric("requests_measured", service="c") / 2.5, rel=0.02)


def test_one_tier_summary_has_no_service_scopes():
    result = npsim.run(npsim.scenario_from_dict(scenario_dict(duration=0.5)))
    assert not result.summary["scope"].str.startswith("service:").any()
    with pytest.raises(KeyError, match="no service 'web'"):
        result.metric("latency_mean", service="web")


def test_dependency_outside_the_cluster_has_no_service_scope():
    """An ``external:`` callee is no Service of the cluster: its calls keep their edge's
    population scope, and the call graph pools them on its ``external`` vertex."""
    d = shop()
    d["workloads"]["b"]["calls"] = [{"external": {
        "address": "pay.example.com:443", "latency": {"dist": "constant", "value": "2ms"},
        "serviceTime": exponential(1e-3), "concurrency": 8}}]
    result = npsim.run(npsim.scenario_from_dict(d))
    scopes = set(result.summary["scope"])
    assert {"service:web", "service:b", "service:c"} <= scopes
    assert not any("pay.example.com" in x for x in scopes if x.startswith("service:"))
    assert "population:b>pay.example.com:443" in scopes
    vertex = result.call_graph().nodes[("external", "pay.example.com:443")]
    assert vertex["requests"] == result.metric("requests_measured",
                                               population="b>pay.example.com:443")
