"""Firewalls in the traffic path: rule order, where each kube-proxy mode meets them,
connlimit under a burst, the tutorial's commands, and NetworkPolicy after SNAT."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import npsim
from npsim.cli import main
from npsim.scenario.firewall import (
    FirewallSyntaxError,
    parse_iptables,
    parse_security_group_cli,
    parse_ufw,
)
from npsim.scenario.problems import ScenarioError

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
IP = lambda text: int(ipaddress.IPv4Address(text))  # noqa: E731

# the tutorial's commands (sections 6.1, 7 "安全加固", 6.2), as written
TUTORIAL_IPTABLES = """\
# 开放NodePort端口范围
sudo iptables -A INPUT -p tcp --dport 30000:32767 -j ACCEPT
sudo iptables -A INPUT -p tcp --dport 30080 -j ACCEPT
sudo iptables -A INPUT -p tcp -s 10.0.0.0/8 --dport 30080 -j ACCEPT
sudo iptables-save > /etc/iptables/rules.v4
"""
HARDENING = """\
iptables -A INPUT -p tcp --dport 30000:32767 ! -s 10.0.0.0/8 -j DROP
iptables -A INPUT -p tcp --dport 30080 -m connlimit --connlimit-above 100 -j DROP
iptables -A INPUT -p tcp --dport 30080 -j LOG --log-prefix "NodePort Access: "
"""
TUTORIAL_UFW = """\
sudo ufw allow 30080/tcp
sudo ufw allow 30000:32767/tcp
sudo ufw allow from 10.0.0.0/8 to any port 30080
"""
ALIYUN = """\
aliyun ecs AuthorizeSecurityGroup \\
  --SecurityGroupId sg-xxxxx \\
  --IpProtocol tcp \\
  --PortRange 30000/32767 \\
  --SourceCidrIp 10.0.0.0/8
"""


def test_the_tutorials_commands_load_as_written() -> None:
    fw = parse_iptables(TUTORIAL_IPTABLES + HARDENING)
    chain = fw.chains["INPUT"]
    assert [r.action for r in chain.rules] == ["ACCEPT", "ACCEPT", "ACCEPT", "DROP", "DROP",
                                               "LOG"]
    assert chain.rules[0].dports == (30000, 32767)
    assert chain.rules[3].source_negated and str(chain.rules[3].source) == "10.0.0.0/8"
    assert chain.rules[4].connlimit_above == 100 and chain.rules[5].log_prefix == \
        "NodePort Access: "
    ufw = parse_ufw(TUTORIAL_UFW).chains["INPUT"]
    assert [(r.action, r.protocol, r.dports) for r in ufw.rules] == [
        ("ACCEPT", "tcp", (30080, 30080)), ("ACCEPT", "tcp", (30000, 32767)),
        ("ACCEPT", None, (30080, 30080))]
    assert str(ufw.rules[2].source) == "10.0.0.0/8"
    group = parse_security_group_cli(ALIYUN)
    assert [(g.protocol, g.first, g.last, str(g.source)) for g in group] == [
        ("tcp", 30000, 32767, "10.0.0.0/8")]


@pytest.mark.parametrize(("text", "message"), [
    ("iptables -A INPUT -p tcp --dport 30080 -j MASQUERADE", "line 1: target 'MASQUERADE'"),
    ("iptables -A INPUT -p tcp -m multiport --dports 1,2 -j DROP", "line 1: '-m' is not"),
    ("iptables -t raw -A PREROUTING -p tcp --dport 30080 -j REJECT",
     "line 1: REJECT is only valid in the filter table"),
    ("iptables -A DOCKER-USER -j DROP", "line 1: chain 'DOCKER-USER'"),
    ("iptables -t raw -A PREROUTING -m connlimit --connlimit-above 2 -j DROP",
     "line 1: connlimit needs conntrack"),
    # cut short or out of range: named, never an IndexError or ValueError (issue 22)
    ("iptables -t", "line 1: -t needs a table"),
    ("iptables -A", "line 1: -A needs a chain"),
    ("iptables -A INPUT -p", "line 1: -p needs a value"),
    ("iptables -A INPUT -m connlimit --connlimit-above -5 -j DROP",
     "line 1: --connlimit-above takes a whole number from 0 to 4294967295, got '-5'"),
    ("iptables -A INPUT -m connlimit --connlimit-above 1e3 -j DROP", "got '1e3'"),
    ("iptables -A INPUT -m connlimit --connlimit-above 4294967296 -j DROP", "got '4294967296'"),
    ("iptables -A INPUT -m connlimit --connlimit-above 2 --connlimit-mask x -j DROP",
     "--connlimit-mask takes a whole number"),
])
def test_unreadable_commands_name_the_line(text: str, message: str) -> None:
    with pytest.raises(FirewallSyntaxError, match=message):
        parse_iptables(text)


def test_first_match_wins_and_the_policy_applies_last() -> None:
    chain = parse_iptables("iptables -P INPUT DROP\n"
                           "iptables -A INPUT -p tcp -s 10.0.0.0/8 --dport 30080 -j ACCEPT\n"
                           "iptables -A INPUT -p tcp --dport 30080 -j REJECT\n"
                           "iptables -I INPUT -s 10.9.0.0/16 -j DROP\n").chains["INPUT"]
    walk = [chain.walk(IP(a), "tcp", 30080)[:2] for a in ("10.1.2.3", "10.9.0.1", "8.8.8.8")]
    assert walk == [("ACCEPT", 1), ("DROP", 0), ("REJECT", 2)]  # -I put the DROP first
    assert chain.walk(IP("8.8.8.8"), "tcp", 30081)[:2] == ("DROP", -1)  # the policy


# --- in a run ----------------------------------------------------------------------------


def scenario(mode: str, firewall: dict[str, Any] | None = None, *, rate: str = "200/s",
             requests: int | None = None, service_time: str = "2ms", source_ips: int = 50,
             policy: str = "Cluster", extra: dict[str, Any] | None = None,
             source_base: str = "203.0.113.10") -> npsim.Scenario:
    cluster: dict[str, Any] = {"proxyMode": mode, "nodes": [{"name": "node-1"},
                                                            {"name": "node-2"}]}
    if firewall is not None:
        cluster["firewall"] = firewall
    cluster.update(extra or {})
    data = {
        "name": "fw",
        "cluster": cluster,
        "manifests": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "NodePort", "externalTrafficPolicy": policy,
                      "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                          "containers": [{"name": "web", "ports": [
                              {"containerPort": 8080}]}]}}}}],
        "workloads": {"web": {"workers": 64, "serviceTime": {"dist": "constant",
                                                             "value": service_time}}},
        "clients": [{"name": "c", "service": "web", "sourceIPs": source_ips,
                     "sourceIPBase": source_base, "connectTimeout": "1s",
                     "arrival": {"rate": rate}, "entry": {"node": "node-1"}}],
        "run": {"requests": requests} if requests else {"duration": "2s"},
    }
    return npsim.scenario_from_dict(data)


def reasons(result: npsim.Result) -> dict[str, int]:
    """Requests by failure reason ("" = served), those still waiting at the end aside."""
    frame = result.requests
    frame = frame[frame["outcome"] != "in_flight"]
    return {str(k): int(v) for k, v in frame["reason"].value_counts().items() if v}


def settled(result: npsim.Result) -> int:
    return int((result.requests["outcome"] != "in_flight").sum())


BLOCK_OTHERS = {"iptables": "iptables -A INPUT -p tcp --dport 30000:32767 ! -s 10.0.0.0/8 "
                            "-j DROP\n"}


@pytest.mark.parametrize(("mode", "blocked"), [("iptables", False), ("nftables", False),
                                               ("ipvs", True)])
def test_input_rules_bind_only_where_the_node_delivers_the_packet(mode: str,
                                                                  blocked: bool) -> None:
    """The tutorial's INPUT hardening drops outsiders in IPVS mode only: iptables and
    nftables DNAT in PREROUTING and forward the packet, so INPUT never sees it."""
    result = npsim.run(scenario(mode, BLOCK_OTHERS))
    got = reasons(result)
    if blocked:
        assert got == {"firewall_dropped": settled(result)}
    else:
        assert "firewall_dropped" not in got


def test_preroutings_rules_bind_in_every_mode() -> None:
    text = "iptables -t mangle -A PREROUTING -p tcp --dport 30080 ! -s 10.0.0.0/8 -j DROP\n"
    for mode in ("iptables", "nftables"):
        result = npsim.run(scenario(mode, {"iptables": text}))
        assert reasons(result) == {"firewall_dropped": settled(result)}


def test_forward_rules_meet_only_unmarked_traffic_in_iptables_mode() -> None:
    """KUBE-FORWARD accepts masquerade-marked packets first (Cluster policy); Local
    traffic is not marked and meets the FORWARD rules."""
    fw = {"forward": {"rules": [{"action": "REJECT", "protocol": "tcp",
                                 "source": "203.0.113.0/24"}]}}
    cluster = npsim.run(scenario("iptables", fw, policy="Cluster"))
    assert "firewall_rejected" not in reasons(cluster)
    local = npsim.run(scenario("iptables", fw, policy="Local"))
    assert reasons(local) == {"firewall_rejected": settled(local)}
    # REJECT is an immediate refusal, not a timeout
    assert float(local.requests["latency"].max()) < 0.01
    nft = npsim.run(scenario("nftables", fw, policy="Cluster"))
    assert reasons(nft) == {"firewall_rejected": settled(nft)}  # no KUBE-FORWARD


@pytest.mark.parametrize(("sources", "mask", "admitted"), [(1, 32, 3), (2, 32, 6),
                                                           (2, 24, 3)])
def test_connlimit_admits_exactly_n_per_source_under_a_burst(sources: int, mask: int,
                                                            admitted: int) -> None:
    """40 connections in 0.2 s, each held 1 s by the pod: exactly N per source (or per
    masked network) are open at once; the rest are refused."""
    fw = {"iptables": "iptables -A INPUT -p tcp --dport 30080 -m connlimit --connlimit-above"
                      f" 3 --connlimit-mask {mask} -j REJECT --reject-with tcp-reset\n"}
    result = npsim.run(scenario("ipvs", fw, rate="200/s", requests=40, service_time="1s",
                                source_ips=sources))
    got = reasons(result)
    assert got.get("", 0) == admitted and got["firewall_rejected"] == 40 - admitted
    assert (result.requests["outcome"] == "completed").sum() == admitted


def test_connlimit_frees_a_slot_when_a_connection_closes() -> None:
    fw = {"iptables": "iptables -A INPUT -p tcp --dport 30080 -m connlimit --connlimit-above"
                      " 2 -j DROP\n"}
    # 1 source, 20/s, each connection held 0.12 s: at most 2-3 open; never more than 2
    result = npsim.run(scenario("ipvs", fw, rate="20/s", service_time="120ms", source_ips=1))
    frame = result.requests
    served = frame[frame["outcome"] == "completed"]
    assert len(served) > len(frame) // 3  # slots are reused, not used up
    ends = np.sort(served["t_end"].to_numpy())
    starts = served["t_start"].to_numpy()
    open_at_start = [int(((starts <= t) & (served["t_end"].to_numpy() > t)).sum())
                     for t in starts]
    assert max(open_at_start) <= 2 and len(ends) == len(served)


def test_log_rules_are_counted_in_the_events_and_do_not_stop_the_walk() -> None:
    fw = {"iptables": 'iptables -A INPUT -p tcp --dport 30080 -j LOG --log-prefix "NP: "\n'}
    sim = npsim.run(scenario("ipvs", fw, requests=25))
    assert reasons(sim) == {"": 25}
    from npsim.sim.engine import Simulation

    run = Simulation(scenario("ipvs", fw, requests=25)).run()
    assert run.events.kind.count("firewall_log") == 25
    assert run.events.detail[0].startswith("NP: INPUT SRC=203.0.113.")


def test_security_group_default_denies() -> None:
    group = {"securityGroup": {"rules": [{"protocol": "tcp", "ports": "30000-32767",
                                          "source": "10.0.0.0/8"}]}}
    denied = npsim.run(scenario("iptables", extra=group))
    assert reasons(denied) == {"security_group_dropped": settled(denied)}
    allowed = npsim.run(scenario("iptables", extra=group, source_base="10.1.0.1"))
    assert reasons(allowed) == {"": settled(allowed)}


def test_bad_firewall_yaml_exits_2_with_the_line() -> None:
    with pytest.raises(ScenarioError, match=r"cluster\.firewall.*iptables line 1: 'MARK'|"
                                            r"cluster\.firewall.*target 'MARK'"):
        scenario("iptables", {"iptables": "iptables -A INPUT -j MARK\n"})


# --- NetworkPolicy after SNAT: the lab ------------------------------------------------------


def lab(policy: str) -> npsim.Scenario:
    loaded = npsim.load_scenario(SCENARIOS / "networkpolicy-snat.yaml")
    loaded.services["web-app"].external_traffic_policy = policy
    return loaded


def test_networkpolicy_ipblock_misses_hopped_traffic_under_cluster_policy() -> None:
    cluster = npsim.run(lab("Cluster")).requests
    local = npsim.run(lab("Local")).requests
    cluster = cluster[cluster["t_start"] < 15]  # every outcome known (timeout 3 s)
    dropped = (cluster["reason"] == "network_policy_dropped").mean()
    # 3 nodes, one pod each, random entry: 2 of 3 connections hop and arrive SNATed
    assert 0.6 < dropped < 0.73
    served = cluster[cluster["outcome"] == "completed"]
    assert (~served["cross_node"]).all()  # only same-node connections got through
    assert (local["reason"] == "network_policy_dropped").sum() == 0
    assert (local[local["t_start"] < 15]["outcome"] == "completed").all()


def test_explain_prints_the_firewalls_and_traces_through_them(tmp_path: Path) -> None:
    data = yaml.safe_load((SCENARIOS / "networkpolicy-snat.yaml").read_text())
    data["manifests"][0] = str(SCENARIOS / "manifests" / "web-netpol.yaml")
    data["cluster"]["proxyMode"] = "ipvs"
    data["cluster"]["firewall"] = {"iptables": HARDENING, "ufw": TUTORIAL_UFW}
    path = tmp_path / "fw.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["explain", str(path), "--node", "node-2", "--trace",
                                       "203.0.113.7", "--allow-outside-files"])
    out = result.stdout
    assert result.exit_code == 0, result.stderr
    assert "# node firewall of node-2 (ipvs mode: a NodePort connection to a pod traverses " \
           "PREROUTING and INPUT)" in out
    assert "iptables -A INPUT -p tcp --dport 30080 -m connlimit --connlimit-above 100 -j DROP" \
        in out and "ufw allow 30080/tcp" in out
    assert "# NetworkPolicy default/clients-only: selects app=web-app" in out
    trace = out.split("# trace of one new connection\n")[1]
    assert ("node firewall INPUT: rule 1 (iptables -A INPUT -p tcp --dport 30000:32767 ! -s "
            "10.0.0.0/8 -j DROP) -> DROP") in trace
    assert trace.rstrip().endswith("the client waits for its connect timeout")


def test_a_node_firewall_replaces_the_clusters_on_that_node_only() -> None:
    base = scenario("ipvs", BLOCK_OTHERS)
    base.spec.cluster.nodes[0].firewall = base.spec.cluster.firewall.model_copy(
        update={"iptables": "iptables -A INPUT -p tcp --dport 30080 -j ACCEPT\n"})
    node1 = npsim.run(base)  # the clients enter at node-1, whose own firewall admits them
    assert reasons(node1) == {"": settled(node1)}
    base.clients[0].entry.node = "node-2"  # node-2 keeps the cluster's hardening
    node2 = npsim.run(base)
    assert reasons(node2) == {"firewall_dropped": settled(node2)}


@pytest.mark.parametrize("mode", ["ipvs", "userspace"])
def test_a_connection_dropped_in_input_leaves_the_round_robin_alone(mode: str) -> None:
    """IPVS schedules in LOCAL_IN after the filter table's INPUT (and userspace accepts
    on its own socket after it): a dropped connection never reaches the scheduler, so
    the connections let through still alternate strictly between the two pods."""
    text = "iptables -A INPUT -p tcp -s 203.0.113.32/27 -j DROP\n"
    result = npsim.run(scenario(mode, {"iptables": text}, requests=400))
    frame = result.requests.sort_values("t_start")
    got = reasons(result)
    assert got.get("firewall_dropped", 0) > 100 and got.get("", 0) > 100
    served = frame[frame["outcome"] == "completed"]["pod"].astype(str).to_numpy()
    assert (served[1:] != served[:-1]).all()
