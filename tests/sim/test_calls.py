"""Pods that call Services (a workload's ``calls:``, npsim/sim/rpc.py).

Queueing theory on a zero-cost network (one node, no hop, no kube-proxy cost): a
frontend with many workers calling a one-pod backend k times per request makes the
backend an M/M/1 queue at k times the arrival rate, and the end-to-end mean is the
frontend's own work plus k sojourns there. A blocking frontend with few workers holds
each worker for its own work plus the calls: its queue is Erlang C's. And a call takes
the in-cluster client path: same kube-proxy choice, SNAT, hop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import (
    assert_matches_theory,
    client,
    deployment_manifest,
    exponential,
    scenario_dict,
    service_manifest,
)

import npsim
from npsim.results.callframe import request_tree
from npsim.scenario.problems import ScenarioError

BACKEND = {"app": "backend"}


def two_tier(*, rate: float = 100.0, fe_workers: int = 64, fe_service: float = 1e-3,
             be_service: float = 1e-3, be_replicas: int = 1, call: dict | None = None,
             nodes: int = 1, duration: float = 5.0, warmup: float = 0.5, seed: int = 1,
             replications: int = 1, blocking: bool = True, **kw: Any) -> dict[str, Any]:
    d = scenario_dict(nodes=nodes, replicas=1, workers=fe_workers,
                      service_time=exponential(fe_service), clients=[client(rate=rate)],
                      duration=duration, warmup=warmup, seed=seed,
                      replications=replications, **kw)
    svc = service_manifest("backend", BACKEND)
    svc["spec"]["type"] = "ClusterIP"
    del svc["spec"]["ports"][0]["nodePort"]
    svc["spec"]["ports"][0]["port"] = 9000
    d["manifests"] += [svc, deployment_manifest("backend", be_replicas, BACKEND)]
    d["workloads"]["backend"] = {"workers": 1, "serviceTime": exponential(be_service),
                                 "placement": "spread"}
    d["workloads"]["web"]["calls"] = [{"service": "backend", "port": 9000, "count": 2,
                                       **(call or {})}]
    d["workloads"]["web"]["blocking"] = blocking
    return d


def entry_rows(frame):
    return frame[frame["population"] == "load"]


def call_rows(frame):
    return frame[frame["population"] == "web>backend:9000"]


def test_every_call_is_a_row_with_its_parent_and_depth():
    result = npsim.run(npsim.scenario_from_dict(two_tier(duration=1.0, warmup=0.0)))
    req, calls = result.requests, result.calls
    assert calls is not None
    entries = entry_rows(req)
    done = entries[entries["outcome"] == "completed"]
    # two calls per entry request, each pointing at an entry row, depth 1
    served = entries["service_start"].notna() & (entries["service_start"] + entries[
        "service"] < 1.0)
    assert 2 * served.sum() - 2 <= len(calls) <= 2 * len(entries)
    assert set(calls["parent"]) <= set(entries["request"])
    assert (calls["depth"] == 1).all()
    assert (calls["caller_pod"] == "web-0").all() and (calls["callee_pod"] == "backend-0").all()
    # the entry request ends after its calls: tree of one request rebuilt from the frames
    first = int(done["request"].iloc[0])
    tree = request_tree(req, calls, first)
    assert list(tree["depth"]) == [0, 1, 1]
    root, kids = tree.iloc[0], tree.iloc[1:]
    assert (kids["t_start"] >= root["service_start"] + root["service"] - 1e-12).all()
    assert root["t_end"] >= kids["t_end"].max()


@pytest.mark.slow
def test_backend_is_mm1_at_doubled_rate_and_end_to_end_adds_up():
    """lambda 200/s at the frontend, 2 calls each: the backend (mu 1000/s) sees 400/s,
    W = 1/(mu - 2 lambda) = 1.667 ms; end to end = 1 ms own work + 2 W = 4.333 ms."""
    lam, mu = 200.0, 1000.0
    result = npsim.run(npsim.scenario_from_dict(two_tier(
        rate=lam, duration=20.0, warmup=1.0, replications=10, seed=3)))
    req = result.requests
    done = req[~req["warmup"] & (req["outcome"] == "completed")]
    w = 1.0 / (mu - 2 * lam)
    backend = call_rows(done).groupby("replication")["latency"].mean().to_numpy()
    assert_matches_theory(backend, w, rel_tol=0.04, max_rel_half=0.08, what="backend W")
    e2e = entry_rows(done).groupby("replication")["latency"].mean().to_numpy()
    assert_matches_theory(e2e, 1e-3 + 2 * w, rel_tol=0.04, max_rel_half=0.08,
                          what="end to end")


@pytest.mark.slow
def test_blocking_caller_queues_as_erlang_c_on_its_holding_time():
    """2 blocking workers, own work near 0, one call to a one-pod backend with 64
    workers: the holding time is the call's sojourn, which with a callee of ample
    capacity is its exponential service (no queue there): M/M/2 at the caller."""
    from test_queueing_theory import mmc_sojourn

    lam, mu_hold = 1400.0, 1000.0  # holding time = the call's sojourn ~ Exp(1 ms)
    d = two_tier(rate=lam, fe_workers=2, fe_service=1e-9, be_service=1e-3,
                 be_replicas=1, call={"count": 1}, duration=20.0, warmup=1.0,
                 replications=10, seed=5)
    d["workloads"]["backend"]["workers"] = 64  # no queue at the callee
    result = npsim.run(npsim.scenario_from_dict(d))
    req = result.requests
    done = entry_rows(req[~req["warmup"] & (req["outcome"] == "completed")])
    _, wq = mmc_sojourn(2, lam / (2 * mu_hold), mu_hold)
    waits = done.groupby("replication")["queue_wait"].mean().to_numpy()
    assert_matches_theory(waits, wq, rel_tol=0.05, max_rel_half=0.1, what="caller Wq")


def test_non_blocking_caller_does_not_queue_behind_slow_calls():
    d = two_tier(rate=1400.0, fe_workers=2, fe_service=1e-9, call={"count": 1},
                 duration=2.0, warmup=0.2, blocking=False)
    d["workloads"]["backend"]["workers"] = 64
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    assert entry_rows(req)["queue_wait"].max() < 1e-6


def test_call_takes_the_in_cluster_client_path():
    """Same seed: a call from a pod on node-1 and an in-cluster clusterIP population on
    node-1 see the same kube-proxy behaviour: the same spread over 3 backend pods on 3
    nodes, no SNAT (the pod's own address seen), cross-node hops for remote pods."""
    net = {"sameNode": {"dist": "constant", "value": 0}, "sameZone": {"dist": "constant",
           "value": "0.2ms"}, "crossZone": {"dist": "constant", "value": "0.2ms"}}
    d = two_tier(nodes=3, be_replicas=3, rate=300.0, call={"count": 1}, duration=3.0,
                 warmup=0.0, network=net, placement={"node-1": 1})
    d["workloads"]["backend"]["workers"] = 8
    direct = {"name": "incluster", "service": "backend", "port": 9000,
              "source": {"pod": "node-1"}, "target": "clusterIP", "sourceIPs": 1,
              "arrival": {"rate": "300/s"}, "rtt": {"dist": "constant", "value": 0}}
    d["clients"].append(direct)
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    calls, pop = call_rows(req), req[req["population"] == "incluster"]
    for rows in (calls, pop):
        share = rows["pod"].value_counts(normalize=True)
        share = share[share > 0]
        assert len(share) == 3 and share.min() > 0.25
        assert (rows["source_ip_seen"].astype(str) == rows["client_ip"].astype(str)).all()
        assert (rows["cross_node"] == (rows["pod_node"] != "node-1")).all()
        assert (rows.loc[rows["cross_node"], "hop"] > 0).all()
    assert calls["client_ip"].nunique() == 1  # the one caller pod's address
    assert abs(calls["cross_node"].mean() - pop["cross_node"].mean()) < 0.1


def test_failed_call_fails_the_request_or_is_ignored():
    for on_failure, expect in (("fail", "downstream_failed"), ("continue", "")):
        d = two_tier(call={"count": 1, "timeout": "0.1ms", "onFailure": on_failure},
                     be_service=5e-3, duration=1.0, warmup=0.0)
        req = npsim.run(npsim.scenario_from_dict(d)).requests
        calls = call_rows(req)
        assert (calls["reason"] == "request_timeout").mean() > 0.9
        entries = entry_rows(req)
        done = entries[entries["outcome"] != "in_flight"]
        assert (done["reason"].astype(str) == expect).mean() > 0.9, on_failure


def test_one_tier_frames_have_no_calls():
    result = npsim.run(npsim.scenario_from_dict(scenario_dict(duration=0.5)))
    assert result.calls is None
    assert "cpu_utilisation" not in result.pods.columns  # own work = held, one column
    assert "downstream_failed" not in result.requests["reason"].cat.categories


def _errors(d: dict) -> str:
    with pytest.raises(ScenarioError) as info:
        npsim.scenario_from_dict(d)
    return str(info.value)


def test_unknown_service_or_port_is_a_placed_error():
    assert "no Service named 'nope'" in _errors(two_tier(call={"service": "nope"}))
    msg = _errors(two_tier(call={"port": 1234}))
    assert "no port 1234" in msg and "workloads.web.calls[0].port" in msg


def test_cycle_in_the_call_graph_names_its_path():
    d = two_tier()
    d["workloads"]["backend"]["calls"] = [{"service": "web", "port": 80}]
    msg = _errors(d)
    assert "cycle" in msg and ("web -> backend -> web" in msg or "backend -> web -> backend"
                               in msg)


def test_count_distribution_and_probability():
    d = two_tier(call={"count": {"dist": "uniform", "low": 3, "high": 3}, "probability": 0.5},
                 duration=2.0, warmup=0.0)
    result = npsim.run(npsim.scenario_from_dict(d))
    per_parent = result.calls.groupby("parent").size()
    assert set(per_parent) == {3}  # a request that calls makes all three
    n_entries = len(entry_rows(result.requests))
    assert 0.4 * n_entries < len(per_parent) < 0.6 * n_entries


def test_summary_all_scope_is_the_clients_requests_and_edges_have_their_own():
    result = npsim.run(npsim.scenario_from_dict(two_tier(duration=2.0, warmup=0.2)))
    s = result.summary
    entries = entry_rows(result.requests)
    generated = s[(s["scope"] == "all") & (s["metric"] == "requests_generated")]["value"]
    assert float(generated.iloc[0]) == len(entries)
    assert result.metric("latency_mean") == pytest.approx(
        result.metric("latency_mean", population="load"))
    assert result.metric("latency_mean", population="web>backend:9000") < result.metric(
        "latency_mean")


def test_call_graph_has_services_and_rates():
    result = npsim.run(npsim.scenario_from_dict(two_tier(rate=200.0, duration=2.0,
                                                         warmup=0.2)))
    graph = result.call_graph()
    edge = graph.edges[("service", "web"), ("service", "backend")]
    assert edge["per_second"] == pytest.approx(400.0, rel=0.15)  # 2 calls per request
    assert 0 < edge["mean"] < edge["p99"]
    entry = graph.edges[("client", "load"), ("service", "web")]
    assert entry["per_second"] == pytest.approx(200.0, rel=0.15)
    assert graph.nodes[("service", "backend")]["requests"] == edge["requests"]


def test_nested_calls_have_depth_two_and_blocking_backs_up_into_the_caller():
    """The bundled three-tier shop: cart calls redis while serving the frontend's call;
    the slow cart holds the frontend's blocking workers, so the frontend queues."""
    scenario = npsim.bundled("three-tier-shop")
    scenario.run.warmup, scenario.run.duration = 1.0, 6.0
    result = npsim.run(scenario)
    calls = result.calls
    assert set(calls["depth"]) == {1, 2}
    deep = calls[calls["depth"] == 2]
    assert (deep["service"] == "redis-cart").all() and (deep["caller_service"] == "cart").all()
    assert set(calls.loc[calls["depth"] == 1, "parent"]) <= set(
        result.requests.loc[result.requests["population"] == "shoppers", "request"])
    waits = result.requests.groupby("population", observed=True)["queue_wait"].mean()
    assert waits["shoppers"] > 2e-4  # queueing at the frontend (blocking workers)
    scenario.workloads["frontend"].blocking = False
    relieved = npsim.run(scenario).requests
    assert relieved.groupby("population", observed=True)["queue_wait"].mean()[
        "shoppers"] < waits["shoppers"] / 5


def test_calls_frame_is_saved_and_loaded(tmp_path):
    result = npsim.run(npsim.scenario_from_dict(two_tier(duration=0.5, warmup=0.0)))
    result.save(tmp_path / "run")
    back = npsim.load_result(tmp_path / "run")
    assert back.calls is not None
    assert back.calls["parent"].tolist() == result.calls["parent"].tolist()
    assert back.call_graph().number_of_edges() == 2


def test_misspelt_call_key_is_placed_at_the_call():
    msg = _errors(two_tier(call={"servce": "backend"}))
    assert "workloads.web.calls[0].servce: unknown field" in msg
    d = two_tier()
    d["workloads"]["web"]["calls"] = [{"parallel": [{"service": "backend", "bogus": 1}]}]
    assert "workloads.web.calls[0].parallel[0].bogus: unknown field" in _errors(d)


def _three_nodes(**kw: Any) -> dict[str, Any]:
    d = two_tier(nodes=3, be_replicas=2, call={"count": 1, "timeout": "50ms"},
                 duration=1.0, warmup=0.0, placement={"node-1": 1}, **kw)
    d["workloads"]["backend"]["placement"] = {"node-2": 1, "node-3": 1}
    d["workloads"]["backend"]["workers"] = 8
    return d


def test_internal_traffic_policy_local_applies_to_calls():
    """The caller's node has no backend pod: with internalTrafficPolicy Local its
    kube-proxy drops the call (the caller's deadline runs out), with Cluster it goes
    across nodes."""
    d = _three_nodes()
    assert (call_rows(npsim.run(npsim.scenario_from_dict(d)).requests)["outcome"]
            == "completed").all()
    d["manifests"][2]["spec"]["internalTrafficPolicy"] = "Local"
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    calls = call_rows(req)
    calls = calls[calls["t_start"] < 0.9]  # ended before the run did
    assert len(calls) > 20 and (calls["outcome"] == "failed").all()
    assert set(calls["reason"].astype(str)) == {"dropped_no_local_endpoint"}
    assert np.allclose(calls["latency"], 0.05)  # the call's deadline
    assert (entry_rows(req).query("outcome == 'failed'")["reason"] == "downstream_failed").all()


def test_client_ip_affinity_keys_on_the_caller_pod():
    d = _three_nodes()
    d["manifests"][2]["spec"]["sessionAffinity"] = "ClientIP"
    calls = call_rows(npsim.run(npsim.scenario_from_dict(d)).requests)
    assert calls["pod"].nunique() == 1  # one caller pod: one backend pod


def test_a_call_shares_kube_proxys_affinity_entry_with_a_client_of_its_address():
    """The same kube-proxy, the same source address, the same choice: ClientIP affinity
    is a table in each node's kube-proxy keyed by source address, so the caller pod's
    calls and an in-cluster client on the caller's node with the caller pod's address
    must reach the same backend pod, whichever the first of them picked. A call that
    took another node's kube-proxy or left from another address would match only by
    chance (1 in 2 per seed; 1 in 64 over six seeds)."""
    for seed in range(1, 7):
        d = _three_nodes(seed=seed)
        d["manifests"][2]["spec"]["sessionAffinity"] = "ClientIP"
        caller_ip = str(call_rows(npsim.run(npsim.scenario_from_dict(d)).requests)[
            "client_ip"].iloc[0])
        d["clients"].append({"name": "incluster", "service": "backend", "port": 9000,
                             "source": {"pod": "node-1"}, "target": "clusterIP",
                             "sourceIPs": 1, "sourceIPBase": caller_ip,
                             "arrival": {"rate": "50/s"}})
        req = npsim.run(npsim.scenario_from_dict(d)).requests
        calls, pop = call_rows(req), req[req["population"] == "incluster"]
        assert len(calls) > 20 and len(pop) > 20
        assert set(pop["client_ip"].astype(str)) == {caller_ip}
        assert calls["pod"].nunique() == 1 and set(pop["pod"]) == set(calls["pod"]), seed


def test_latency_breakdown_adds_up_and_counts_the_critical_path():
    from npsim.results.callframe import latency_breakdown

    d = two_tier(duration=1.0, warmup=0.0)
    d["workloads"]["web"]["calls"] = [{"parallel": [{"service": "backend", "port": 9000},
                                                    {"service": "backend", "port": 9000}]}]
    d["workloads"]["backend"]["workers"] = 4
    result = npsim.run(npsim.scenario_from_dict(d))
    parts = latency_breakdown(result.requests, result.calls)
    assert len(parts) > 50
    # two parallel calls: only the longer one is on the critical path
    calls = result.requests.set_index("request")["latency"]  # both branches' rows
    longest = result.calls.assign(latency=result.calls["request"].map(calls)).groupby(
        "parent")["latency"].max()
    assert np.allclose(parts.set_index("request")["via_backend"], longest.loc[
        parts["request"]].to_numpy())
    assert (parts["other"] > -1e-9).all()
    total = parts[["network", "queue_wait", "own_work", "via_backend", "other"]].sum(axis=1)
    assert np.allclose(total, parts["latency"])


def test_request_count_run_counts_client_requests_only_and_drains_calls():
    d = two_tier(duration=None, warmup=0.0, requests=300)
    result = npsim.run(npsim.scenario_from_dict(d))
    req = result.requests
    assert len(entry_rows(req)) == 300
    assert len(call_rows(req)) == 600
    assert (req["outcome"] == "completed").all()


def test_preflight_counts_the_calls_rows():
    from npsim.preflight import estimate

    # 100/s for 5 s, each request 1 + 2 calls (README: preflight sizes rows)
    assert estimate(npsim.scenario_from_dict(two_tier())).requests_per_replication == (
        pytest.approx(500 * 3))
    d = two_tier(call={"count": {"dist": "poisson", "mean": 4}, "probability": 0.5})
    assert estimate(npsim.scenario_from_dict(d)).requests_per_replication == (
        pytest.approx(500 * 3))


def test_edges_of_one_caller_to_one_callee_keep_their_own_names():
    """Three steps to the same Service port (each may set its own timeout) are three
    populations: ``web>backend:9000``, then ``#2`` and ``#3``, each with its own rows."""
    d = two_tier(duration=0.5, warmup=0.0)
    d["workloads"]["web"]["calls"] = [{"service": "backend", "port": 9000},
                                      {"service": "backend", "port": 9000, "timeout": "1s"},
                                      {"service": "backend", "port": 9000, "timeout": "2s"}]
    req = npsim.run(npsim.scenario_from_dict(d)).requests
    counts = req["population"].astype(str).value_counts()
    edges = ["web>backend:9000", "web>backend:9000#2", "web>backend:9000#3"]
    assert set(counts.index) == {"load", *edges}
    assert counts[edges].max() - counts[edges].min() <= 1  # in turn: the last may be unsent


def test_depth_is_kept_only_for_edges_to_callers_and_holds_for_pods_added_later():
    """Only the frontend->cart edge reaches pods that call (cart); the depth of its rows
    is kept for their calls, also those served by a cart pod a scale adds mid-run."""
    from npsim.sim.engine import Simulation

    scenario = npsim.bundled("three-tier-shop").with_changes({
        "run.warmup": "1s", "run.duration": "6s",
        "events": [{"at": "2s", "scale": {"deployment": "cart", "replicas": 4}}]})
    records = Simulation(scenario, 0).calls
    names = {p.edge: p.name for p in Simulation(scenario, 0).populations
             if hasattr(p, "edge")}
    assert {names[e] for e in records.nesting} == {"frontend>cart:grpc"}
    result = npsim.run(scenario)
    calls = result.calls
    depth_of = dict(zip(calls["request"], calls["depth"], strict=True))
    parents = calls["parent"].map(lambda r: depth_of.get(r, 0))
    assert (calls["depth"] == parents + 1).all()
    added = calls[(calls["caller_pod"].astype(str) > "cart-1")
                  & calls["caller_pod"].astype(str).str.startswith("cart")]
    assert len(added) > 0 and (added["depth"] == 2).all()
