"""Faults on the timeline: node crash through the control plane, rollouts, pod faults.

The figures follow the upstream defaults (npsim/cluster/lifecycle.py): a crashed node's
endpoints stay in every healthy node's rules until the node lifecycle controller
declares it Unknown (grace period after its last lease renewal, checked every 5 s) and
each kube-proxy syncs; meanwhile k/n of new connections through healthy nodes go to dead
pods and time out. Runs are short and slow (tens of requests a second): the test budget
is a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import npsim
from npsim.scenario.loader import load_scenario, scenario_from_dict
from npsim.sim.engine import Simulation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
CRASH_AT = 20.0


def _deployment(replicas: int, container: dict[str, Any] | None = None,
                spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 **(spec or {}),
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web",
                                                       "ports": [{"containerPort": 80}],
                                                       **(container or {})}]}}},
    }


def make(*, nodes: int = 3, replicas: int = 6, events: list[dict] = (),  # type: ignore[assignment]
         duration: str = "60s", clients: list[dict] | None = None, version: str = "1.32",
         container: dict | None = None, dep_spec: dict | None = None,
         workload: dict | None = None, etp: str = "Cluster", mode: str = "iptables",
         control_plane: dict | None = None, probe_phase: str = "aligned") -> npsim.Scenario:
    clients = clients or [{"name": "users", "service": "web", "arrival": {"rate": "100/s"},
                           "entry": "random", "connectTimeout": "2s"}]
    data = {
        "name": "faults",
        "cluster": {"proxyMode": mode, "kubernetesVersion": version,
                    "controlPlane": control_plane or {}, "probePhase": probe_phase,
                    "nodes": [{"name": f"node-{i + 1}"} for i in range(nodes)]},
        "manifests": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "NodePort", "externalTrafficPolicy": etp,
                      "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 80, "nodePort": 30080}]}},
            _deployment(replicas, container, dep_spec)],
        "workloads": {"web": {"workers": 4, "serviceTime": {"dist": "exponential",
                                                            "mean": "2ms"},
                              **(workload or {})}},
        "clients": clients,
        "events": list(events),
        "run": {"duration": duration, "seed": 1},
    }
    return scenario_from_dict(data)


def events_of(result: npsim.Result, kind: str, subject: str | None = None) -> pd.DataFrame:
    e = result.events
    rows = e[e["kind"] == kind]
    return rows if subject is None else rows[rows["subject"] == subject]


def accounted(result: npsim.Result) -> None:
    """Every request completed, failed with a reason, or in flight at the end."""
    req = result.requests
    outcome = req["outcome"].astype(str)
    assert outcome.isin(["completed", "failed", "in_flight"]).all()
    failed = req[outcome == "failed"]
    assert (failed["reason"].astype(str) != "").all()
    assert failed["t_end"].notna().all()
    assert req.loc[outcome == "in_flight", "t_end"].isna().all()


# --- node crash: the control plane's timeline --------------------------------------------


def _crash_run(version: str) -> npsim.Result:
    healthy = [{"name": f"via-{n}", "service": "web", "arrival": {"rate": "100/s"},
                "entry": {"node": n}, "connectTimeout": "2s"} for n in ("node-1", "node-3")]
    grace = 50 if version == "1.32" else 40
    return npsim.run(make(version=version, clients=healthy,
                          duration=f"{CRASH_AT + grace + 15:g}s",
                          events=[{"at": f"{CRASH_AT:g}s", "nodeCrash": {"node": "node-2"}}]))


@pytest.mark.parametrize(("version", "grace"), [("1.32", 50.0), ("1.31", 40.0)])
def test_node_crash_fails_k_over_n_of_new_connections_until_each_node_syncs(
        version: str, grace: float) -> None:
    result = _crash_run(version)
    accounted(result)
    unknown = events_of(result, "node_unknown", "node-2")["time"].item()
    assert CRASH_AT + grace - 10 < unknown <= CRASH_AT + grace + 5  # lease 10 s, monitor 5 s
    req = result.requests
    dead = (req["pod_node"].astype(str) == "node-2").to_numpy()
    failed = (req["outcome"].astype(str) == "failed").to_numpy()
    after = (req["t_start"] >= CRASH_AT).to_numpy()
    assert set(req.loc[failed & after, "reason"].astype(str)) == {"connect_timeout"}
    assert not (failed & ~dead).any()  # every failure went to node-2 ...
    assert (failed == dead)[after].all()  # ... and from the crash on, everything there
    # before the crash only what node-2's pods still had in hand
    assert (req.loc[failed & ~after, "t_start"] > CRASH_AT - 0.1).all()
    for entry in ("node-1", "node-3"):
        removed = events_of(result, "endpoints_removed", entry)["time"].item()
        sync_delay = removed - unknown
        assert 0 < sync_delay < 1.5  # propagation + minSyncPeriod at most + sync
        assert removed - CRASH_AT <= grace + 5 + sync_delay
        mine = req[(req["entry_node"].astype(str) == entry).to_numpy()]
        bad = mine[((mine["outcome"].astype(str) == "failed")
                    & (mine["t_start"] >= CRASH_AT)).to_numpy()]
        assert bad["t_start"].max() <= removed
        assert bad["t_start"].max() > removed - 1.0  # ... and right up to it
        window = mine[((mine["t_start"] >= CRASH_AT) & (mine["t_start"] < unknown)).to_numpy()]
        share = (window["outcome"].astype(str) == "failed").mean()
        assert share == pytest.approx(2 / 6, abs=0.04)  # k = 2 of n = 6 endpoints
        assert bad["latency"].to_numpy() == pytest.approx(2.0, abs=0.01)  # the timeout


def test_evicted_at_grace_plus_toleration_and_replacements_serve_after_readiness() -> None:
    result = npsim.run(make(
        duration="400s", events=[{"at": f"{CRASH_AT:g}s", "nodeCrash": {"node": "node-2"}}],
        clients=[{"name": "users", "service": "web", "arrival": {"rate": "20/s"},
                  "entry": {"node": "node-1"}, "connectTimeout": "2s"}],
        container={"readinessProbe": {"initialDelaySeconds": 3}}))
    accounted(result)
    unknown = events_of(result, "node_unknown")["time"].item()
    evicted = events_of(result, "pod_evicted")
    assert sorted(evicted["subject"]) == ["web-1", "web-4"]
    # the taint comes one monitor pass (5 s) after Unknown: processTaintBaseEviction reads
    # the Ready condition the pass started with (node_lifecycle_controller.go)
    taint = events_of(result, "taint_added")["time"].item()
    assert taint == pytest.approx(unknown + 5.0)
    assert (evicted["time"] == taint + 300).all()
    assert CRASH_AT + 345 < taint + 300 <= CRASH_AT + 360
    scheduled = events_of(result, "pod_scheduled")
    assert len(scheduled) == 2 and (scheduled["time"] == taint + 300).all()
    assert set(scheduled["detail"]) == {"node-1", "node-3"}  # healthy nodes, spread
    for name in scheduled["subject"]:
        ready = events_of(result, "pod_ready", name)["time"].item()
        assert ready == pytest.approx(taint + 300 + 1 + 3)  # startup 1 s + initialDelay
        served = result.requests[(result.requests["pod"].astype(str) == name).to_numpy()]
        assert len(served) > 50
        assert served["t_start"].min() > ready
        assert (served["outcome"].astype(str) == "completed").all()


def test_node_answers_only_while_up_and_partition_heals() -> None:
    scn = make(duration="30s", events=[{"at": "5s", "until": "15s",
                                        "nodePartition": {"node": "node-2"}}],
               clients=[{"name": "users", "service": "web", "arrival": {"rate": "50/s"},
                         "entry": {"node": "node-2"}, "connectTimeout": "1s"}])
    sim = Simulation(scn)
    seen: list[tuple[float, bool]] = []
    for t in (4.0, 6.0, 14.0, 16.0):
        sim.env.timeout(t).callbacks.append(
            lambda _e: seen.append((sim.env.now, sim.network.answers(1))))
    sim.run()
    assert seen == [(4.0, True), (6.0, False), (14.0, False), (16.0, True)]
    result = npsim.run(scn)
    accounted(result)
    req = result.requests
    during = req[((req["t_start"] > 5) & (req["t_start"] < 15)).to_numpy()]
    assert (during["reason"].astype(str) == "connect_timeout").all()
    after = req[(req["t_start"] > 16).to_numpy()]
    assert (after["outcome"].astype(str) != "failed").all()


def test_kube_proxy_stop_freezes_rules_until_it_restarts() -> None:
    scn = make(nodes=2, replicas=4, duration="20s",
               events=[{"at": "2s", "until": "12s", "kubeProxyStop": {"node": "node-1"}},
                       {"at": "5s", "scale": {"deployment": "web", "replicas": 2}}],
               clients=[{"name": "users", "service": "web", "arrival": {"rate": "50/s"},
                         "entry": {"node": "node-1"}, "connectTimeout": "1s"}])
    sim = Simulation(scn)
    sim.run()
    frozen, other = sim.control.nodes
    assert [t for t, _ in frozen.history] == [0.0, pytest.approx(12.01, abs=1e-3)]
    assert other.history[1][0] == pytest.approx(5.0, abs=0.5)
    result = npsim.run(scn)
    req = result.requests
    stale = req[((req["t_start"] > 6) & (req["t_start"] < 12)).to_numpy()]
    assert (stale["reason"].astype(str) == "connect_timeout").mean() == pytest.approx(
        0.5, abs=0.1)  # half the frozen rules point at deleted pods
    assert (req.loc[(req["t_start"] > 12.1).to_numpy(), "outcome"].astype(str)
            == "completed").all()


# --- rolling updates -----------------------------------------------------------------------


def test_rolling_update_with_prestop_and_drain_loses_nothing() -> None:
    result = npsim.run(load_scenario(SCENARIOS / "rolling-update.yaml"))
    accounted(result)
    assert (result.requests["outcome"].astype(str) != "failed").all()
    done = events_of(result, "rollout_done", "web")["time"].item()
    assert done == pytest.approx(56.0)
    assert len(events_of(result, "pod_deleted")) == 6
    # every pod got SIGTERM 5 s (preStop) after it turned terminating
    term = events_of(result, "pod_terminating").set_index("subject")["time"]
    sig = events_of(result, "pod_sigterm").set_index("subject")["time"]
    assert (sig - term.loc[sig.index]).to_numpy() == pytest.approx(5.0)


def test_rolling_update_without_prestop_fails_requests_by_reason() -> None:
    result = npsim.run(load_scenario(SCENARIOS / "rolling-update-no-prestop.yaml"))
    accounted(result)
    failed = result.requests[(result.requests["outcome"].astype(str) == "failed").to_numpy()]
    assert len(failed) > 5
    reasons = failed["reason"].astype(str).value_counts()
    assert set(reasons.index) <= {"connect_timeout", "connection_refused"}
    assert reasons.get("connect_timeout", 0) > 0
    # each failure went to a pod that had had SIGTERM, before every node had synced
    sigterm = events_of(result, "pod_sigterm").set_index("subject")["time"]
    for _, row in failed.iterrows():
        assert row["t_start"] >= sigterm[str(row["pod"])] - 1e-9
        assert row["t_start"] < sigterm[str(row["pod"])] + 1.5


def test_scale_down_with_prestop_serves_from_terminating_pods_when_none_is_ready() -> None:
    """Fact 22: with no ready endpoint anywhere, kube-proxy (Cluster policy) sends to the
    serving-terminating ones: during a 5 s preStop nothing fails."""
    scn = make(nodes=2, replicas=2, duration="12s",
               events=[{"at": "3s", "scale": {"deployment": "web", "replicas": 0}}],
               container={"lifecycle": {"preStop": {"sleep": {"seconds": 5}}}},
               workload={"onSigterm": "drain"})
    result = npsim.run(scn)
    accounted(result)
    req = result.requests
    outcome = req["outcome"].astype(str)
    assert (outcome[(req["t_start"] < 8).to_numpy()] == "completed").all()
    late = req[(req["t_start"] > 9.2).to_numpy()]
    assert (late["reason"].astype(str) == "no_endpoints").all()


# --- pod faults ------------------------------------------------------------------------------


def test_crash_loop_restarts_with_kubelet_backoff() -> None:
    scn = load_scenario(SCENARIOS / "crash-loop.yaml")
    scn.spec.clients[0].arrival.rate = 20.0  # the timeline does not depend on the load
    result = npsim.run(scn)
    accounted(result)
    crashes = events_of(result, "pod_crash", "web-1")["time"].to_numpy()
    restarts = events_of(result, "pod_restart", "web-1")["time"].to_numpy()
    assert list(restarts - crashes[: len(restarts)]) == [0, 10, 20, 40, 80, 160, 300]
    assert list(crashes[1:] - restarts[: len(crashes) - 1]) == [5.0] * (len(crashes) - 1)
    req = result.requests
    failed = req[(req["outcome"].astype(str) == "failed").to_numpy()]
    assert set(failed["pod"].astype(str)) == {"web-1"}
    assert set(failed["reason"].astype(str)) <= {"connection_refused", "endpoint_gone"}
    share = (req["pod"].astype(str) == "web-1").mean()
    assert share < 0.05  # down most of the time


def test_hung_pod_leaves_by_readiness_and_is_restarted_by_liveness() -> None:
    result = npsim.run(load_scenario(SCENARIOS / "hung-pod.yaml"))
    accounted(result)
    assert events_of(result, "pod_not_ready", "web-1")["time"].item() == 51.0
    crash = events_of(result, "pod_crash", "web-1")
    # killContainer: no preStop, so SIGTERM at once, and the hung process exits on it
    assert crash["time"].item() == 81.0
    assert crash["detail"].item() == "liveness probe failed: exited on SIGTERM"
    assert events_of(result, "pod_killing", "web-1")["time"].item() == 81.0
    req = result.requests
    failed = req[(req["outcome"].astype(str) == "failed").to_numpy()]
    assert set(failed["pod"].astype(str)) == {"web-1"}
    assert set(failed["reason"].astype(str)) == {"endpoint_gone"}
    assert failed["t_start"].min() >= 30.0
    assert failed["t_start"].max() < 52.5  # until every node dropped it
    assert failed["t_end"].to_numpy() == pytest.approx(81.0, abs=0.01)
    assert (req.loc[(req["t_start"] > 81).to_numpy(), "outcome"].astype(str)
            != "failed").all()


def test_hang_without_liveness_ends_and_held_requests_are_served() -> None:
    scn = make(nodes=1, replicas=2, duration="40s",
               events=[{"at": "5s", "until": "15s", "podHang": {"pod": "web-0"}}],
               container={"readinessProbe": {"periodSeconds": 2}})
    result = npsim.run(scn)
    accounted(result)
    req = result.requests
    assert (req["outcome"].astype(str) != "failed").all()
    held = req[((req["pod"].astype(str) == "web-0") & (req["t_start"] > 5.01)
                & (req["t_start"] < 10)).to_numpy()]
    assert len(held) > 10
    assert held["service_start"].min() >= 15.0  # served once the hang ended
    assert events_of(result, "pod_not_ready", "web-0")["time"].item() == 11.0
    assert events_of(result, "pod_ready", "web-0")["time"].item() == 16.0


def test_slowdown_multiplies_service_time_for_its_window() -> None:
    scn = make(nodes=1, replicas=1, duration="30s",
               events=[{"at": "10s", "until": "20s",
                        "podSlowdown": {"pod": "web-0", "factor": 10}}],
               workload={"serviceTime": {"dist": "constant", "value": "1ms"}})
    result = npsim.run(scn)
    accounted(result)
    req = result.requests
    start = req["service_start"].to_numpy()
    service = req["service"].to_numpy()
    inside = (start >= 10) & (start < 20)
    assert service[inside] == pytest.approx(0.01)
    assert service[~inside & ~np.isnan(start)] == pytest.approx(0.001)


def test_fault_runs_are_deterministic_for_a_seed() -> None:
    scn = load_scenario(SCENARIOS / "crash-loop.yaml")
    scn.spec.run.duration = 60.0
    scn.spec.clients[0].arrival.rate = 20.0
    a, b = npsim.run(scn), npsim.run(scn)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.requests, b.requests)


# --- conntrack: TCP never flushed, UDP flushed at the next sync ----------------------------


def _long_flows(protocol: str, replicas: int = 2, placement: Any = "spread"
                ) -> npsim.Result:
    """node-2's kubelet stops at 2 s: after the (shortened) grace period its pod is
    NotReady but alive and serving what reaches it."""
    scn = make(nodes=2, replicas=replicas, duration="30s", workload={"placement": placement},
               control_plane={"nodeMonitorGracePeriod": "10s"},
               events=[{"at": "2s", "kubeletStop": {"node": "node-2"}}],
               clients=[{"name": "users", "service": "web",
                         "arrival": {"users": 20, "thinkTime": "50ms"},
                         "sourceIPs": 20, "entry": {"node": "node-1"},
                         "requestsPerConnection": 100000, "connectTimeout": "1s",
                         "rtt": {"dist": "constant", "value": "1ms"}}])
    scn.services["web"].ports = tuple(p.__class__(p.name, protocol, p.port, p.target_port,
                                                  p.node_port)
                                      for p in scn.services["web"].ports)
    return npsim.run(scn)


def test_udp_flows_are_rebalanced_at_the_next_sync_tcp_connections_keep_their_pod() -> None:
    tcp, udp = _long_flows("TCP"), _long_flows("UDP")
    for result in (tcp, udp):
        accounted(result)
        assert (result.requests["outcome"].astype(str) != "failed").all()
    removed = events_of(udp, "endpoints_removed", "node-1")["time"].item()
    assert removed < 20.0
    late = {name: r.requests[(r.requests["t_start"] > 20).to_numpy()]
            for name, r in (("tcp", tcp), ("udp", udp))}
    # TCP: conntrack keeps established connections on the NotReady (but live) pod
    assert (late["tcp"]["pod"].astype(str) == "web-1").mean() == pytest.approx(0.5, abs=0.3)
    assert not late["tcp"]["new_connection"].any()
    # UDP: the sync deleted the entries of flows to the pod that is no longer serving
    assert set(late["udp"]["pod"].astype(str)) == {"web-0"}
    reflowed = udp.requests[(udp.requests["new_connection"]
                             & (udp.requests["t_start"] > 3)).to_numpy()]
    assert len(reflowed) > 0 and (reflowed["entry_node"].astype(str) == "node-1").all()
    assert reflowed["t_start"].min() > removed


def test_udp_cleanup_skips_a_service_left_without_a_serving_endpoint() -> None:
    """The only pod (on node-2) turns NotReady: the Service has no serving endpoint, so
    kube-proxy leaves its UDP conntrack entries alone (conntrack/cleanup.go
    CleanStaleEntries: "a Service without endpoints does not require to clean the
    conntrack entries"): the flows keep reaching the live pod, none is re-balanced."""
    udp = _long_flows("UDP", replicas=1, placement={"node-2": 1})
    accounted(udp)
    removed = events_of(udp, "endpoints_removed", "node-1")["time"].item()
    assert removed < 20.0
    req = udp.requests
    assert not (req["outcome"].astype(str) == "failed").any()
    late = req[(req["t_start"] > removed + 1).to_numpy()]
    assert len(late) > 0 and (late["pod"].astype(str) == "web-0").all()
    assert not late["new_connection"].any()


def _crash_flows(protocol: str) -> npsim.Result:
    """node-2 crashes at 2 s with one of the two pods: its flows entering through node-1
    still have their conntrack entries to it until the pod leaves the endpoints."""
    scn = make(nodes=2, replicas=2, duration="30s", workload={"placement": "spread"},
               control_plane={"nodeMonitorGracePeriod": "10s"},
               events=[{"at": "2s", "nodeCrash": {"node": "node-2"}}],
               clients=[{"name": "users", "service": "web",
                         "arrival": {"rate": "200/s"}, "sourceIPs": 20,
                         "entry": {"node": "node-1"}, "requestsPerConnection": 100000,
                         "connectTimeout": "1s", "rtt": {"dist": "constant", "value": "1ms"}}])
    scn.services["web"].ports = tuple(p.__class__(p.name, protocol, p.port, p.target_port,
                                                  p.node_port)
                                      for p in scn.services["web"].ports)
    return npsim.run(scn)


def test_udp_datagrams_follow_a_stale_entry_to_a_dead_pod_until_the_sync() -> None:
    """The UDP stale-entry problem (kubernetes/kubernetes #66651, #125979): a sender that
    keeps its socket learns nothing when its pod dies, so every datagram of the flow is
    lost until kube-proxy's sync deletes the entry; a TCP client gives the dead
    connection up and connects again at once."""
    tcp, udp = _crash_flows("TCP"), _crash_flows("UDP")
    for result in (tcp, udp):
        accounted(result)
    removed = events_of(udp, "endpoints_removed", "node-1")["time"].item()
    assert 2.0 < removed < 20.0
    for name, result in (("udp", udp), ("tcp", tcp)):
        req = result.requests
        t = req["t_start"].to_numpy()
        window = req[(t > 2.01) & (t < removed)]
        dead = window[(window["pod"].astype(str) == "web-1").to_numpy()]
        assert len(dead) > 0 and (dead["outcome"].astype(str) == "failed").all()
        if name == "udp":  # the same flows, datagram after datagram
            assert not window["new_connection"].any()
            assert len(dead) > 0.4 * len(window)
            late = req[t > removed + 0.1]
            assert set(late["pod"].astype(str)) == {"web-0"}
            assert (late["outcome"].astype(str) != "failed").all()
        else:  # each failure gives the connection up: the next request reconnects
            assert window["new_connection"].sum() >= len(dead)


# --- the bundled node-failure scenario: the figures its header promises ---------------------


def test_node_failure_scenario_figures() -> None:
    result = npsim.run(load_scenario(SCENARIOS / "node-failure.yaml"))
    accounted(result)
    req = result.requests
    failed = (req["outcome"].astype(str) == "failed").to_numpy()
    t = req["t_start"].to_numpy()
    assert events_of(result, "node_unknown")["time"].item() == pytest.approx(110.03, abs=0.01)
    window = (t >= 60) & (t < 110)
    assert failed[window].mean() == pytest.approx(1 / 3 + 2 / 3 / 4, abs=0.02)
    healthy = window & (req["entry_node"].astype(str) != "node-2").to_numpy()
    assert failed[healthy].mean() == pytest.approx(1 / 4, abs=0.025)
    assert failed[t >= 110.2].mean() == pytest.approx(1 / 3, abs=0.01)
    assert not failed[t < 59.99].any()
    assert set(req.loc[failed, "reason"].astype(str)) == {"connect_timeout"}
    # tainted one monitor pass after Unknown (processTaintBaseEviction), evicted 300 s later
    assert events_of(result, "pod_evicted")["time"].item() == pytest.approx(415.03, abs=0.01)


def test_node_recovers_pods_restart_and_serve_again() -> None:
    scn = make(duration="40s", events=[{"at": "5s", "until": "15s",
                                        "nodeCrash": {"node": "node-2"}}],
               control_plane={"nodeMonitorGracePeriod": "4s"})
    result = npsim.run(scn)
    accounted(result)
    assert events_of(result, "node_unknown")["time"].item() < 15
    ready = events_of(result, "node_ready", "node-2")["time"].item()
    assert 15 <= ready < 20  # the controller's next tick after the kubelet renews
    restarted = events_of(result, "container_started")
    assert set(restarted["subject"]) == {"web-1", "web-4"}
    assert (restarted["time"] == 16.0).all()  # reboot + startup 1 s
    req = result.requests
    late = req[(req["t_start"] > 22).to_numpy()]
    assert (late["outcome"].astype(str) != "failed").all()
    assert {"web-1", "web-4"} <= set(late["pod"].astype(str))


def test_replacements_respect_the_placement() -> None:
    """Pods placed on node-1 and node-2 only: node-2's pods are replaced on node-1, never
    on node-3 (the placement does not name it)."""
    scn = make(duration="80s", replicas=4, workload={"placement": {"node-1": 2, "node-2": 2}},
               control_plane={"nodeMonitorGracePeriod": "10s", "tolerationSeconds": "20s"},
               events=[{"at": "5s", "nodeCrash": {"node": "node-2"}}],
               clients=[{"name": "users", "service": "web", "arrival": {"rate": "20/s"},
                         "entry": {"node": "node-1"}, "connectTimeout": "1s"}])
    result = npsim.run(scn)
    accounted(result)
    scheduled = events_of(result, "pod_scheduled")
    assert len(scheduled) == 2 and set(scheduled["detail"]) == {"node-1"}
    evicted = events_of(result, "pod_evicted")["time"]
    # tainted one monitor pass (5 s) after Unknown, evicted tolerationSeconds later
    assert (evicted == events_of(result, "node_unknown")["time"].item() + 5 + 20).all()


def test_closed_loop_users_survive_a_crash_with_requests_in_service() -> None:
    """A process killed mid-service: its requests fail at the kill, and closed-loop users
    go on (their next request is not scheduled in the past)."""
    scn = make(nodes=1, replicas=2, duration="20s",
               workload={"serviceTime": {"dist": "constant", "value": "300ms"}, "workers": 2},
               events=[{"at": "5.1s", "podCrash": {"pod": "web-0"}}],
               clients=[{"name": "users", "service": "web",
                         "arrival": {"users": 4, "thinkTime": "0s"},
                         "entry": {"node": "node-1"}, "connectTimeout": "1s"}])
    result = npsim.run(scn)
    accounted(result)
    req = result.requests
    gone = req[(req["reason"].astype(str) == "endpoint_gone").to_numpy()]
    assert len(gone) >= 1
    assert gone["t_end"].to_numpy() == pytest.approx(5.1)
    assert req["t_start"].max() > 19


def test_a_healed_partition_resumes_its_pods_without_a_container_start() -> None:
    # a partition cuts the node off; its containers keep running, so the heal is no
    # (re)start: no container_started event, no restart, and its pods serve at once
    scn = make(duration="20s", events=[{"at": "5s", "until": "15s",
                                        "nodePartition": {"node": "node-2"}}])
    result = npsim.run(scn)
    accounted(result)
    events = result.events
    after_cut = events[(events["time"] >= 5).to_numpy()]
    assert after_cut["kind"].astype(str).tolist() == ["node_partition", "lease_missed",
                                                      "node_heal"]
    sim = Simulation(scn)
    sim.run()
    on_node_2 = [p for p in sim.cluster.pods if p.node == 1]
    assert on_node_2 and all(sim.control.life[p.index].restarts == 0 for p in on_node_2)
    assert all(sim.control.life[p.index].started == 0.0 for p in on_node_2)


@pytest.mark.parametrize("event", [{"scale": {"deployment": "web", "replicas": 2}},
                                   {"rollout": {"deployment": "web"}}])
def test_a_deployment_with_no_replicas_can_be_scaled_and_rolled(event: dict[str, Any]) -> None:
    """A Deployment at ``replicas: 0`` is still the control plane's: scaling it up gives
    it pods that serve; rolling it out has nothing to replace (both raised KeyError)."""
    from conftest import build, client

    scenario = build(nodes=2, replicas=0, clients=[client(rate=200.0)], duration=6.0)
    scenario.spec.events = [{"at": 1.0, **event}]
    result = npsim.run(scenario)
    served = result.requests["outcome"] == "completed"
    if "scale" in event:
        assert served.sum() > 0 and result.requests.loc[served, "t_start"].min() > 1.0
        assert result.requests.loc[served, "pod"].nunique() == 2
    else:
        assert served.sum() == 0
        assert set(result.requests["reason"].dropna()) == {"no_endpoints"}
    assert "rollout_start" in set(result.events["kind"]) or "scale" in event
