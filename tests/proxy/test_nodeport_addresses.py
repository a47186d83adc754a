"""``cluster.kubeProxy.nodePortAddresses`` (kube-proxy's --nodeport-addresses): which node
addresses answer, in the simulation and in what ``npsim explain`` writes, held against
kubernetes/kubernetes pkg/proxy/util/nodeport_addresses.go and the three proxiers."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from npsim.cluster.model import Node
from npsim.proxy.nodeport_addresses import NodePortAddresses, answering_kinds

from .golden_copy import explain_lines, golden_copy
from .helpers import client, run_frame, scenario

NODE_IP = int(ipaddress.IPv4Address("192.168.0.2"))
JUMP = ('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this '
        'must be the last rule in this chain"')


def _node() -> Node:
    return Node(0, "node-1", "zone-a", NODE_IP, ipaddress.IPv4Network("10.181.0.0/24"))


def _ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


# --- the list as kube-proxy resolves it --------------------------------------------------


def test_unset_is_every_address_except_in_nftables_where_it_is_primary() -> None:
    """server_linux.go platformApplyDefaults: nftables and an empty list -> "primary";
    NewNodePortAddresses: no CIDR of the family -> 0.0.0.0/0, MatchAll."""
    assert NodePortAddresses.resolve(None, "iptables", NODE_IP).match_all
    assert NodePortAddresses.resolve([], "ipvs", NODE_IP).match_all
    nft = NodePortAddresses.resolve(None, "nftables", NODE_IP)
    assert not nft.match_all and nft.values == ("192.168.0.2/32",)


def test_primary_becomes_the_node_ip_as_a_host_cidr() -> None:
    """server.go: "primary" alone -> fmt.Sprintf("%s/32", nodeIP)."""
    npa = NodePortAddresses.resolve(["primary"], "iptables", NODE_IP)
    assert npa.values == ("192.168.0.2/32",)
    assert npa.matches(NODE_IP) and not npa.matches(NODE_IP + 1)


def test_a_zero_cidr_matches_all_whatever_else_is_listed() -> None:
    """NewNodePortAddresses: IsZeroCIDR -> "Ignore everything else", matchAll."""
    npa = NodePortAddresses.resolve(["10.0.0.0/8", "0.0.0.0/0"], "nftables", NODE_IP)
    assert npa.match_all and npa.matches(_ip("8.8.8.8"))


def test_host_bits_are_dropped_and_loopback_is_found() -> None:
    """ParseCIDRSloppy keeps the network; ContainsIPv4Loopback checks 127.0.0.0."""
    npa = NodePortAddresses.resolve(["192.168.0.77/24", "127.0.0.0/8"], "iptables", NODE_IP)
    assert npa.matches(NODE_IP) and npa.contains_loopback
    assert not NodePortAddresses.resolve(["192.168.0.0/24"], "iptables",
                                         NODE_IP).contains_loopback


@pytest.mark.parametrize(("mode_loopback", "values", "secondary", "kinds"), [
    (True, None, None, {"primary", "secondary", "localhost"}),
    (False, None, None, {"primary", "secondary"}),
    (True, ["192.168.0.0/24"], None, {"primary"}),
    (True, ["192.168.0.0/24"], "10.9.0.2", {"primary"}),
    (True, ["10.9.0.0/16"], "10.9.0.2", {"secondary"}),
    (True, ["10.9.0.0/16", "127.0.0.1/32"], "10.9.0.2", {"secondary", "localhost"}),
    (False, ["10.9.0.0/16", "127.0.0.1/32"], "10.9.0.2", {"secondary"}),
    (True, ["172.16.0.0/12"], None, set()),
])
def test_answering_kinds(mode_loopback: bool, values: list[str] | None,
                         secondary: str | None, kinds: set[str]) -> None:
    npa = NodePortAddresses.resolve(values, "iptables", NODE_IP)
    second = _ip(secondary) if secondary else None
    assert answering_kinds(npa, _node(), second, mode_loopback) == kinds


# --- the simulation ----------------------------------------------------------------------


def _nodes() -> list[dict]:
    return [{"name": "node-1", "address": "192.168.1.11", "secondaryAddress": "10.9.0.11"},
            {"name": "node-2", "address": "192.168.2.12", "secondaryAddress": "10.9.0.12"}]


@pytest.mark.parametrize("mode", ["iptables", "nftables", "ipvs"])
def test_a_node_outside_the_list_refuses_its_nodeport(mode: str) -> None:
    """node-2's address is outside 192.168.1.0/24: kube-proxy writes no rule (iptables),
    no nodeport-ips element (nftables), no virtual server (IPVS) for it, so its
    connections are refused; node-1 serves as before."""
    scn = scenario(mode=mode, nodes=_nodes(), replicas=2, requests=400,
                   kube_proxy={"nodePortAddresses": ["192.168.1.0/24"]},
                   clients=[client(entry="random")])
    _, frame = run_frame(scn)
    on1, on2 = (frame[frame["entry_node"] == n] for n in ("node-1", "node-2"))
    assert len(on1) > 50 and len(on2) > 50
    assert (on1["outcome"] == "completed").all()
    assert (on2["reason"] == "nodeport_closed").all() and on2["pod"].isna().all()


@pytest.mark.parametrize(("mode", "listed", "answers"), [
    ("nftables", ["10.9.0.0/16"], True),  # a listed secondary address gets an element
    ("nftables", ["primary"], False),
    ("iptables", ["192.168.0.0/16"], False),  # the default would answer on it
    ("ipvs", ["10.9.0.11/32"], True),
])
def test_secondary_address_follows_the_list(mode: str, listed: list[str],
                                            answers: bool) -> None:
    scn = scenario(mode=mode, nodes=_nodes(), replicas=2, requests=100,
                   kube_proxy={"nodePortAddresses": listed},
                   clients=[client(entry={"node": "node-1", "address": "secondary"})])
    frame = run_frame(scn)[1]
    if answers:
        assert (frame["outcome"] == "completed").all()
    else:
        assert (frame["reason"] == "nodeport_closed").all()


@pytest.mark.parametrize(("localhost", "answers"), [(True, True), (False, False)])
def test_listed_loopback_answers_in_iptables_only_with_localhost_nodeports(
        localhost: bool, answers: bool) -> None:
    """proxier.go: a loopback node IP with --iptables-localhost-nodeports=false is logged
    ("--nodeport-addresses includes localhost but ...") and gets no rule."""
    scn = scenario(mode="iptables", nodes=_nodes(), replicas=2, requests=100,
                   kube_proxy={"nodePortAddresses": ["127.0.0.0/8"],
                               "localhostNodePorts": localhost},
                   clients=[client(entry={"node": "node-1", "address": "localhost"})])
    frame = run_frame(scn)[1]
    assert (frame["outcome"] == "completed").all() == answers
    assert (frame["reason"] == "nodeport_closed").all() != answers


# --- what explain writes -----------------------------------------------------------------


def _golden(tmp_path: Path, mode: str, **kube_proxy: object) -> list[str]:
    def edit(data: dict) -> None:
        data["cluster"]["kubeProxy"].update(kube_proxy)
    return explain_lines(golden_copy(tmp_path, mode, edit), "--service", "svc3")


def test_iptables_writes_one_jump_per_listed_address(tmp_path: Path) -> None:
    """TestOnlyLocalNodePorts (pkg/proxy/iptables/proxier_test.go): nodePortAddresses
    ["192.168.0.0/24", ...] and localhostNodePorts false give exactly
    `... NOTE: this must be the last rule in this chain" -d 192.168.0.2 -j KUBE-NODEPORTS`
    (proxier.go "create nodeport rules for each IP one by one") and no addrtype rule."""
    out = _golden(tmp_path, "iptables", nodePortAddresses=["192.168.0.0/24"],
                  localhostNodePorts=False)
    jumps = [line for line in out if line.startswith(JUMP)]
    assert jumps == [f"{JUMP} -d 192.168.0.2 -j KUBE-NODEPORTS"]


GUARD = '-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections"'


def test_iptables_lists_loopback_only_with_localhost_nodeports(tmp_path: Path) -> None:
    """The localnet guard stays while localhost NodePorts are on and the list holds a
    loopback address (127.0.0.1/32: ContainsIPv4Loopback's cidr.IP.IsLoopback())."""
    out = _golden(tmp_path, "iptables", nodePortAddresses=["192.168.0.0/24", "127.0.0.1/32"])
    assert [line for line in out if line.startswith(JUMP)] == [
        f"{JUMP} -d 127.0.0.1 -j KUBE-NODEPORTS", f"{JUMP} -d 192.168.0.2 -j KUBE-NODEPORTS"]
    assert any(line.startswith(GUARD) for line in out)


def test_a_list_without_loopback_turns_localhost_nodeports_off(tmp_path: Path) -> None:
    """iptables NewProxier: `if !nodePortAddresses.ContainsIPv4Loopback() {
    localhostNodePorts = false }`: no KUBE-FIREWALL chain nor localhost nfacct counter,
    with the flag left at its default (true)."""
    out = _golden(tmp_path, "iptables", nodePortAddresses=["192.168.0.0/24"])
    assert not any(line.startswith((GUARD, ":KUBE-FIREWALL")) for line in out)
    assert not any("localhost_nps_accepted_pkts" in line for line in out)
    assert any(line.startswith(GUARD) for line in _golden(tmp_path, "iptables"))


def test_iptables_match_all_keeps_the_addrtype_rule(tmp_path: Path) -> None:
    """MatchAll: `-m addrtype --dst-type LOCAL` (TestInternalTrafficPolicyE2E's dump)."""
    out = _golden(tmp_path, "iptables", nodePortAddresses=["0.0.0.0/0"])
    assert [line for line in out if line.startswith(JUMP)] == [
        f"{JUMP} -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"]


def test_nftables_match_all_drops_the_set_and_matches_fib_local(tmp_path: Path) -> None:
    """setupNFTables with MatchAll: nodeport-ips deleted; services gets `fib daddr type
    local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports`;
    nodeport-endpoints-check `ip daddr != 127.0.0.0/8 ...`."""
    out = _golden(tmp_path, "nftables", nodePortAddresses=["0.0.0.0/0"])
    assert not any("nodeport-ips" in line for line in out)
    assert ("add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 "
            "meta l4proto . th dport vmap @service-nodeports") in out
    assert ("add rule ip kube-proxy nodeport-endpoints-check ip daddr != 127.0.0.0/8 "
            "meta l4proto . th dport vmap @no-endpoint-nodeports") in out


def test_nftables_set_holds_the_listed_addresses_but_loopback(tmp_path: Path) -> None:
    """The default is TestOverallNFTablesRules' `add element ip kube-proxy nodeport-ips
    { 192.168.0.2 }`; a listed loopback address is skipped ("localhost NodePorts are not
    supported"), a CIDR holding no node address leaves the set empty."""
    default = _golden(tmp_path, "nftables")
    assert [x for x in default if "element" in x and "nodeport-ips" in x] == [
        "add element ip kube-proxy nodeport-ips { 192.168.0.2 }"]
    out = _golden(tmp_path, "nftables", nodePortAddresses=["10.181.0.0/24", "127.0.0.0/8"])
    assert [x for x in out if "element" in x and "nodeport-ips" in x] == [
        "add element ip kube-proxy nodeport-ips { 10.181.0.1 }"]  # cni0 of node-1
    none = _golden(tmp_path, "nftables", nodePortAddresses=["172.16.0.0/12"])
    assert not [x for x in none if "element" in x and "nodeport-ips" in x]
    assert "add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport " \
           "vmap @service-nodeports" in none


def test_ipvs_virtual_servers_only_on_listed_addresses(tmp_path: Path) -> None:
    """ipvs proxier.go: without MatchAll, nodeIPs = GetNodeIPs less loopback; one NodePort
    virtual server per node IP."""
    default = _golden(tmp_path, "ipvs")
    assert any(x.startswith("TCP  192.168.0.2:3003 ") for x in default)
    assert any(x.startswith("TCP  10.181.0.1:3003 ") for x in default)  # cni0
    out = _golden(tmp_path, "ipvs", nodePortAddresses=["192.168.0.0/24", "127.0.0.0/8"])
    servers = [x.split()[1] for x in out if x.startswith("TCP  ") and x.split()[1].endswith(
        ":3003")]
    assert servers == ["192.168.0.2:3003"]


def test_trace_to_an_address_outside_the_list_is_refused(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        data["cluster"]["kubeProxy"]["nodePortAddresses"] = ["10.0.0.0/8"]
    out = explain_lines(golden_copy(tmp_path, "nftables", edit), "--service", "svc3",
                        "--trace", "203.0.113.9:40000")
    trace = out[out.index("# trace of one new connection") + 1:]
    assert trace[1].startswith("nat-prerouting -> services: daddr not in @nodeport-ips: "
                               "192.168.0.2 is outside nodePortAddresses ['10.0.0.0/8']")
    assert trace[1].endswith("connection refused") and len(trace) == 2
