"""``npsim explain --at T`` shows nodes, kube-proxies and pods as they are at T, and a
trace ends in what the client sees (issue 18)."""

from __future__ import annotations

from pathlib import Path

from .helpers import BUNDLED, comments, npsim, trace_end, web_scenario

NODE_FAILURE = str(BUNDLED / "node-failure.yaml")


def test_a_crashed_node_says_it_is_down_and_its_rules_are_frozen() -> None:
    code, out, _ = npsim("explain", NODE_FAILURE, "--node", "node-2", "--at", "80s")
    assert code == 0
    notes = comments(out)
    assert ("# node-2 is down since 60 s (nodeCrash): packets to 172.18.0.3 are lost; "
            "nothing below answers while it is down") in notes
    assert any(n.startswith("# kube-proxy on node-2 is not running since 60 s (nodeCrash): "
                            "these rules are FROZEN as of its last sync at 0 s") for n in notes)
    # the rules themselves are still printed, as the dead node last had them
    assert "-j KUBE-SEP-" in out


def test_a_trace_entering_a_down_node_times_out_after_the_scenarios_timeout() -> None:
    code, out, _ = npsim("explain", NODE_FAILURE, "--node", "node-2", "--at", "80s",
                         "--trace", "1.2.3.4:1")
    assert code == 0
    assert trace_end(out) == (
        "node-2 is down since 60 s (nodeCrash): the SYN and its retransmissions get no "
        "answer; the client gives up after its connect timeout of 3 s (population users): "
        "connect_timeout")
    assert "KUBE-NODEPORTS" not in out.split("# trace of one new connection")[1]


def test_a_trace_to_the_dead_pod_ends_in_connect_timeout() -> None:
    """The issue's own example: node-1 at 61 s still DNATs to nginx-1 on node-2, which
    crashed at 60 s; before, explain said 'served by pod nginx-1'."""
    code, out, _ = npsim("explain", NODE_FAILURE, "--node", "node-1", "--at", "61s",
                         "--trace", "1.2.3.4:1")
    assert code == 0
    assert "DNAT --to-destination 10.244.1.2:80" in out  # the draw picks nginx-1
    assert "served by" not in out
    assert trace_end(out) == (
        "nginx-1's node node-2 is down since 60 s (nodeCrash): nothing answers its SYNs; the "
        "client gives up after its connect timeout of 3 s (population users): "
        "connect_timeout")
    assert ("# default/nginx-nodeport: 10.244.1.2:80 is in these rules, but nginx-1's node "
            "node-2 is down since 60 s (nodeCrash): nothing answers its SYNs") in comments(out)


def test_the_timeout_figure_is_the_scenarios() -> None:
    code, out, _ = npsim("explain", NODE_FAILURE, "--node", "node-1", "--at", "61s",
                         "--trace", "1.2.3.4:1", "--set", "clients[users].connectTimeout=7s")
    assert code == 0
    assert trace_end(out).endswith("connect timeout of 7 s (population users): connect_timeout")


def test_before_the_crash_the_same_trace_is_served() -> None:
    code, out, _ = npsim("explain", NODE_FAILURE, "--node", "node-1", "--at", "59s",
                         "--trace", "1.2.3.4:1")
    assert code == 0
    assert trace_end(out).startswith("served by pod ")
    assert not [n for n in comments(out) if "down" in n]


def test_at_the_instant_of_the_crash_the_node_is_down() -> None:
    """--at T includes what happens at T itself."""
    _, out, _ = npsim("explain", NODE_FAILURE, "--node", "node-2", "--at", "60s")
    assert "# node-2 is down since 60 s" in out


def test_a_partitioned_node_is_cut_off(tmp_path: Path) -> None:
    path = web_scenario(tmp_path, [{"at": "10s", "until": "40s",
                                    "nodePartition": {"node": "node-2"}}])
    code, out, _ = npsim("explain", path, "--node", "node-2", "--at", "20s",
                         "--trace", "203.0.113.9:4000")
    assert code == 0
    assert "# node-2 is cut off since 10 s (nodePartition, back at 40 s)" in out
    # 20 s + 3 s < 40 s: the client gives up before the partition heals
    assert trace_end(out).endswith("connect_timeout")
    _, late, _ = npsim("explain", path, "--node", "node-2", "--at", "38s",
                       "--trace", "203.0.113.9:4000")
    # SYNs at 38, 39 s; the one at 41 s (3 s after the first) is past the 3 s timeout,
    # so still a timeout; with a 10 s timeout the SYN sent 7 s later gets through
    assert trace_end(late).endswith("connect_timeout")
    _, healed, _ = npsim("explain", path, "--node", "node-2", "--at", "38s", "--trace",
                         "203.0.113.9:4000", "--set", "clients[users].connectTimeout=10s")
    assert trace_end(healed) == (
        "node-2 is cut off since 10 s (nodePartition, back at 40 s): the SYN retransmitted "
        "3 s later gets through once it is back (see explain --at 41s for the rules then)")


def test_a_stopped_kube_proxy_shows_its_rules_frozen(tmp_path: Path) -> None:
    """kube-proxy on node-1 stops at 2 s; web is scaled from 4 to 2 at 5 s (exit on
    SIGTERM, no preStop: the two pods are gone at once). node-1's rules still list them."""
    path = web_scenario(tmp_path, [{"at": "2s", "kubeProxyStop": {"node": "node-1"}},
                                   {"at": "5s", "scale": {"deployment": "web", "replicas": 2}}])
    code, out, _ = npsim("explain", path, "--node", "node-1", "--at", "20s",
                         "--trace", "203.0.113.9:4000", "--connections", "400")
    assert code == 0
    notes = comments(out)
    assert ("# kube-proxy on node-1 is not running since 2 s (kubeProxyStop): these rules are "
            "FROZEN as of its last sync at 0 s; endpoint changes since then are not applied"
            ) in notes
    gone = [n for n in notes if "was deleted at 5 s" in n]
    assert len(gone) == 2, notes
    assert out.count("DNAT --to-destination") >= 4  # the four endpoints are all still there
    # half the new connections go to the two deleted pods and time out
    summary = out.strip().splitlines()[-1]
    assert "connect_timeout after 3 s" in summary and "served" in summary
    # the running kube-proxy on node-2 has dropped them: nothing stale there
    _, other, _ = npsim("explain", path, "--node", "node-2", "--at", "20s")
    assert not [n for n in comments(other) if "FROZEN" in n or "deleted" in n]
    assert other.count("DNAT --to-destination") == 2


def test_a_hung_pod_accepts_and_never_answers(tmp_path: Path) -> None:
    path = web_scenario(tmp_path, [{"at": "10s", "podHang": {"pod": "web-1"}}],
                        requestTimeout="2s")
    _, out, _ = npsim("explain", path, "--at", "10.5s", "--connections", "2000")
    assert ("web-1 is hung (pod_hang at 10 s): it accepts connections and answers nothing "
            "while it hangs") in out
    rows = [line for line in out.splitlines() if line.startswith("10.244.")]
    hung = [r for r in rows if " web-1 " in r]
    assert hung and hung[0].endswith("request_timeout after 2 s")
    assert all(r.endswith("served") for r in rows if r not in hung)


def test_a_terminating_pod_serves_as_the_fallback(tmp_path: Path) -> None:
    """Scaled to 0 at 5 s with a 20 s preStop: no endpoint is ready, both pods still run
    their preStop, and kube-proxy falls back to the serving, terminating ones."""
    path = web_scenario(tmp_path, [{"at": "5s", "scale": {"deployment": "web",
                                                          "replicas": 0}}],
                        replicas=2, pre_stop=20, on_sigterm="drain")
    code, out, _ = npsim("explain", path, "--at", "10s", "--trace", "203.0.113.9:4000")
    assert code == 0
    end = trace_end(out)
    assert end.startswith("served by pod web-"), end
    assert ("a terminating pod (pod_terminating at 5 s: scale): no endpoint is ready, so "
            "kube-proxy falls back to the serving, terminating ones (KEP-1669)") in end
    # SIGTERM at 25 s: the idle app exits and the pod is deleted at once; a node whose
    # rules still list it sends SYNs to an address that answers nothing
    _, later, _ = npsim("explain", path, "--at", "25.02s", "--trace", "203.0.113.9:4000")
    end = trace_end(later)
    assert "was deleted at 25" in end and end.endswith(
        "connect timeout of 3 s (population users): connect_timeout"), end


def test_a_crashed_process_refuses_at_once(tmp_path: Path) -> None:
    """web-1 crash-loops (runs 5 s, then a 10 s back-off): at 15.01 s its node answers,
    its process is gone, and the nodes have not synced yet: a reset, refused."""
    path = web_scenario(tmp_path, [{"at": "10s", "until": "60s",
                                    "podCrash": {"pod": "web-1", "runsFor": "5s"}}])
    _, out, _ = npsim("explain", path, "--at", "15.01s", "--connections", "2000")
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("10.244.")}
    assert rows["web-1"].endswith("connection_refused"), out
    assert "web-1's process is not listening (pod_backoff at 15 s: restart in 10s)" in out


NODE_FAILURE_LB = str(BUNDLED / "node-failure-lb.yaml")


def test_at_shows_the_balancers_checks_counting_then_marking_the_node_down() -> None:
    """``--at`` runs the balancer's health checks too (node-failure-lb.yaml: checks every
    2 s, fall 3; node-2 crashes at 60 s, the checks at 60, 62 and 64 s fail, each known
    1 s later: marked down at 65 s)."""
    code, out, _ = npsim("explain", NODE_FAILURE_LB, "--node", "node-2", "--at", "30s")
    assert code == 0
    assert ("# balancer of population users: node-2 is in rotation (checked every 2 s, "
            "timeout 1 s); its NodePort 30080 checks pass") in comments(out)
    code, out, _ = npsim("explain", NODE_FAILURE_LB, "--node", "node-2", "--at", "63s")
    assert ("# balancer of population users: node-2 is in rotation (checked every 2 s, "
            "timeout 1 s); 2 NodePort 30080 check(s) in a row failed so far (out at 3)"
            ) in comments(out)
    code, out, _ = npsim("explain", NODE_FAILURE_LB, "--node", "node-2", "--at", "65s")
    assert code == 0
    assert ("# balancer of population users: node-2 is OUT of rotation (lb_mark_down at "
            "65 s: 3 NodePort 30080 check(s) failed); its new connections enter through "
            "node-1, node-3") in comments(out)


def test_a_node_without_a_balancer_gets_no_balancer_line() -> None:
    code, out, _ = npsim("explain", NODE_FAILURE, "--node", "node-2", "--at", "80s")
    # the iptables hook lines name "kubernetes load balancer firewall" (KUBE-PROXY-FIREWALL)
    assert code == 0 and not [line for line in out.splitlines()
                              if "balancer" in line and not line.startswith("# -t ")]
