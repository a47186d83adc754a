"""``explain --at T`` says where a failed node is on the Kubernetes timeline: lease lost
but not yet noticed (NotReady due at the node-monitor grace period: 50 s from v1.32, 40 s
before), Unknown (its pods NotReady), tainted (evicted tolerationSeconds, 300 s, later),
on every node explained, not only the dead one. Times as scenarios/node-failure.yaml's
header gives them (seed 1): node_unknown 110.03 s, taint 115.03 s, eviction 415.03 s."""

from __future__ import annotations

from .helpers import BUNDLED, comments, npsim

NODE_FAILURE = str(BUNDLED / "node-failure.yaml")


def _control_plane(*args: str) -> list[str]:
    code, out, err = npsim("explain", NODE_FAILURE, *args)
    assert code == 0, err
    return [n for n in comments(out) if n.startswith("# control plane: ")]


def test_before_the_grace_period_runs_out_it_says_when_the_node_turns_unknown() -> None:
    (line,) = _control_plane("--node", "node-1", "--at", "105s")
    assert line.startswith("# control plane: node-2 renews no lease since ")
    assert "ready endpoints until 110.03 s (node-monitor-grace-period 50 s" in line
    assert line.endswith("then the node.kubernetes.io/unreachable:NoExecute taint: its "
                         "pods evicted 300 s after the taint (tolerationSeconds)")
    (older,) = _control_plane("--node", "node-1", "--at", "90s", "--set",
                              "cluster.kubernetesVersion=\"1.31\"")
    assert "(node-monitor-grace-period 40 s" in older


def test_after_detection_it_says_unknown_then_tainted_then_evicted() -> None:
    (unknown,) = _control_plane("--node", "node-1", "--at", "112s")
    assert unknown.startswith("# control plane: node-2 is Unknown since 110.03 s")
    assert "its pods are NotReady, out of the endpoints" in unknown
    (tainted,) = _control_plane("--node", "node-3", "--at", "200s")
    assert tainted == ("# control plane: node-2 is Unknown since 110.03 s, tainted "
                       "node.kubernetes.io/unreachable:NoExecute at 115.03 s: its pods are "
                       "evicted at 415.03 s (tolerationSeconds 300 s)")
    (evicted,) = _control_plane("--node", "node-2", "--at", "420s")
    assert "its pods were evicted at 415.03 s" in evicted


def test_a_pods_own_toleration_sets_the_eviction_it_shows() -> None:
    toleration = ('deployments.nginx.template.spec.tolerations=[{key: '
                  'node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, '
                  'tolerationSeconds: 30}]')
    (line,) = _control_plane("--node", "node-1", "--at", "120s", "--set", toleration)
    assert line.endswith("at 115.03 s: its pods are evicted at 145.03 s (tolerationSeconds "
                         "30 s)")


def test_a_node_back_is_unknown_until_the_next_monitor_pass() -> None:
    """node-2 back at 200 s: its kubelet renews again, and the controller's next pass
    (on its 5 s grid, 200.03 s) sees it Ready and lifts the taint."""
    (line,) = _control_plane("--node", "node-1", "--at", "200.01s", "--set",
                             "events[0].until=200s")
    assert line == ("# control plane: node-2 renews its lease again; Unknown since 110.03 s "
                    "until the controller's next monitor pass sees it Ready and removes the "
                    "node.kubernetes.io/unreachable:NoExecute taint")
    assert _control_plane("--node", "node-1", "--at", "201s", "--set",
                          "events[0].until=200s") == []


def test_a_healthy_cluster_has_no_such_line() -> None:
    assert _control_plane("--node", "node-1", "--at", "59s") == []


def test_a_partially_disrupted_zone_says_no_eviction_is_coming() -> None:
    """zone-outage.yaml: 3 of zone-a's 5 nodes down, PartialDisruption in a zone of at
    most 50 nodes: taint rate 0, nothing is evicted (ReducedQPSFunc)."""
    code, out, err = npsim("explain", str(BUNDLED / "zone-outage.yaml"), "--node", "b-1",
                           "--at", "200s")
    assert code == 0, err
    lines = [n for n in comments(out) if n.startswith("# control plane: ")]
    assert [n.split()[3] for n in lines] == ["a-1", "a-2", "a-3"]
    assert all(n.endswith("no taint and no eviction while zone zone-a is "
                          "PartialDisruption: taint rate 0/s") for n in lines)


def test_a_hung_pod_says_when_its_probes_take_it_out_and_restart_it() -> None:
    """hung-pod.yaml (seed 1): web-1 hangs at 30 s; readiness (period 10 s, threshold 3)
    turns it NotReady at 51 s, liveness (threshold 6) restarts it at 81 s. Without
    probes nothing ever takes it out, and the line says so."""
    hung = str(BUNDLED / "hung-pod.yaml")
    code, out, _ = npsim("explain", hung, "--node", "node-1", "--at", "40s")
    assert code == 0
    (line,) = [n for n in comments(out) if "is hung" in n]
    assert line.endswith("its readiness probe marks it NotReady at 51.00 s (its "
                         "failureThreshold-th failure since the hang), out of the endpoints; "
                         "its liveness probe restarts it at 81.00 s")
    bare = ('deployments.web.template.spec.containers=[{name: web, ports: '
            '[{containerPort: 8080}]}]')
    code, out, _ = npsim("explain", hung, "--node", "node-1", "--at", "40s", "--set", bare)
    assert code == 0
    (line,) = [n for n in comments(out) if "is hung" in n]
    assert line.endswith("it has no readiness probe: it stays a ready endpoint while it "
                         "hangs; no liveness probe restarts it")
