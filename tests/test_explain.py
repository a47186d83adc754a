"""``npsim explain``: kube-proxy's rules for a node, rendered from the simulator's tables.

The tutorial's nginx-nodeport Service (scenarios/manifests/nginx.yaml) with 4 endpoints;
pod CIDRs are chosen so that kube-proxy's string order of "IP:port" differs from the
numeric order. Chain-name hashes are checked against kube-proxy's own test vectors
(TestOverallIPTablesRules / TestOverallNFTablesRules, research notes issue 3).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from npsim.cli import main
from npsim.cluster.model import ServicePortModel
from npsim.proxy.rules.common import port_name_string
from npsim.proxy.rules.iptables import chain
from npsim.proxy.rules.nftables import nft_chain
from npsim.scenario.objects import Service, ServicePort

NGINX = Path(__file__).resolve().parents[1] / "scenarios" / "manifests" / "nginx.yaml"
# pod IPs 10.244.10.2, 10.244.2.2, 10.244.9.2, 10.244.1.2 (one nginx pod per node)
CIDRS = ["10.244.10.0/24", "10.244.2.0/24", "10.244.9.0/24", "10.244.1.0/24"]
LEXICOGRAPHIC = ["10.244.1.2:80", "10.244.10.2:80", "10.244.2.2:80", "10.244.9.2:80"]
NUMERIC = ["10.244.1.2:80", "10.244.2.2:80", "10.244.9.2:80", "10.244.10.2:80"]
PROBABILITIES = ["0.2500000000", "0.3333333333", "0.5000000000", None]


def write_scenario(folder: Path, mode: str = "iptables", seed: int = 1,
                   scheduler: str | None = None) -> str:
    (folder / "manifests").mkdir(exist_ok=True)
    shutil.copy(NGINX, folder / "manifests" / "nginx.yaml")
    cluster: dict = {
        "proxyMode": mode,
        "nodes": [{"name": f"node-{i + 1}", "podCIDR": c} for i, c in enumerate(CIDRS)],
    }
    if scheduler:
        cluster["ipvs"] = {"scheduler": scheduler}
    data = {
        "name": "explain-test",
        "cluster": cluster,
        "manifests": ["manifests/nginx.yaml"],
        "workloads": {"nginx": {"workers": 4, "serviceTime": {"dist": "exponential",
                                                               "mean": "5ms"},
                                "placement": "spread"}},
        "clients": [{"name": "users", "service": "nginx-nodeport",
                     "arrival": {"rate": "100/s"}}],
        "run": {"duration": "10s", "seed": seed},
    }
    path = folder / f"scenario-{mode}-{seed}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def explain(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["explain", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


RULE = re.compile(r'^-A (KUBE-SVC-\w+) -m comment --comment "default/nginx-nodeport -> '
                  r'(?P<key>[\d.:]+)"(?: -m statistic --mode random --probability '
                  r"(?P<p>[\d.]+))? -j (?P<sep>KUBE-SEP-\w+)$")


def svc_rules(text: str) -> list[re.Match]:
    return [m for line in text.splitlines() if (m := RULE.match(line))]


# --- iptables ---------------------------------------------------------------------------


def test_iptables_probabilities_in_kube_proxy_order(tmp_path: Path) -> None:
    code, out, _ = explain(write_scenario(tmp_path))
    assert code == 0
    assert out.startswith("# node node-1, kube-proxy mode iptables\n*filter\n")
    tables = out.split("\n\n# hooks")[0]
    assert tables.count("COMMIT") == 2 and tables.rstrip().endswith("COMMIT")
    assert "\n*nat\n" in tables
    rules = svc_rules(out)
    assert [m["key"] for m in rules] == LEXICOGRAPHIC != NUMERIC
    assert [m["p"] for m in rules] == PROBABILITIES
    # the last rule is unconditional
    last = [line for line in out.splitlines() if line.startswith("-A KUBE-SVC-")][-1]
    assert "statistic" not in last and last.endswith(rules[-1]["sep"])
    # every endpoint chain masquerades hairpin traffic and DNATs to its endpoint
    for m in rules:
        ip = m["key"].split(":")[0]
        assert f"-A {m['sep']} -m comment --comment default/nginx-nodeport -s {ip} " \
               "-j KUBE-MARK-MASQ" in out
        assert f"-A {m['sep']} -m comment --comment default/nginx-nodeport -m tcp -p tcp " \
               f"-j DNAT --to-destination {m['key']}" in out
        assert f":{m['sep']} - [0:0]" in out
    assert "--dport 30080 -j KUBE-EXT-" in out
    assert out.count("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS") == 1


def test_every_node_programs_the_same_order(tmp_path: Path) -> None:
    path = write_scenario(tmp_path)
    for name in ("node-2", "node-4"):
        code, out, _ = explain(path, "--node", name)
        assert code == 0
        assert out.startswith(f"# node {name}, kube-proxy mode iptables")
        assert [m["key"] for m in svc_rules(out)] == LEXICOGRAPHIC


def test_service_filter(tmp_path: Path) -> None:
    code, out, _ = explain(write_scenario(tmp_path), "--service", "nginx-nodeport")
    assert code == 0
    assert len(svc_rules(out)) == 4


TRACE_RULE = re.compile(r"^  rule (?P<i>\d+) -> (?P<key>[\d.:]+) \((?:probability "
                        r"(?P<p>[\d.]+)|(?P<u>unconditional))\): (?P<v>no match|MATCH)$")


@pytest.mark.parametrize("seed", range(1, 9))
def test_trace_walks_the_statistic_rules_to_the_dnat(tmp_path: Path, seed: int) -> None:
    code, out, _ = explain(write_scenario(tmp_path, seed=seed), "--trace", "203.0.113.7:40000")
    assert code == 0
    dump, _, trace = out.partition("# trace of one new connection\n")
    rules = svc_rules(dump)
    lines = trace.splitlines()
    assert lines[0].startswith("packet 203.0.113.7:40000 -> ")
    assert ":30080 (TCP) arrives at node-1, kube-proxy mode iptables" in lines[0]
    walked = [m for line in lines if (m := TRACE_RULE.match(line))]
    assert walked, trace
    # the walk lists the dump's rules in order, with the same probabilities
    for i, m in enumerate(walked):
        assert int(m["i"]) == i + 1
        assert m["key"] == rules[i]["key"]
        assert m["p"] == rules[i]["p"]
        assert (m["u"] is not None) == (rules[i]["p"] is None)
    # it stops at its single MATCH, and the DNAT is that rule's endpoint chain
    assert [m["v"] for m in walked] == ["no match"] * (len(walked) - 1) + ["MATCH"]
    hit = rules[len(walked) - 1]
    assert f"{hit['sep']}: DNAT --to-destination {hit['key']}" in lines
    assert lines[-1].endswith(f"({hit['key']}) on node-{CIDRS.index(_cidr(hit['key'])) + 1}")


def _cidr(key: str) -> str:
    a, b, c, _ = key.split(":")[0].split(".")
    return f"{a}.{b}.{c}.0/24"


def test_trace_reaches_every_rule_over_seeds(tmp_path: Path) -> None:
    matched = set()
    for seed in range(1, 41):  # P(some rule never drawn) = 4 * 0.75^40 ~ 4e-5
        _, out, _ = explain(write_scenario(tmp_path, seed=seed), "--trace", "198.51.100.1")
        matched |= {m["key"] for line in out.splitlines()
                    if (m := TRACE_RULE.match(line)) and m["v"] == "MATCH"}
    assert matched == set(LEXICOGRAPHIC)  # including the unconditional last rule


# --- chain names: kube-proxy's test vectors ------------------------------------------------


def port_model(namespace: str, name: str, port_name: str, protocol: str = "TCP"
               ) -> ServicePortModel:
    port = ServicePort(name=port_name, protocol=protocol, port=80, target_port=80,
                       node_port=None)
    svc = Service(name=name, namespace=namespace, type="ClusterIP", ports=(port,),
                  selector={}, external_traffic_policy="Cluster", origin="test")
    return ServicePortModel(0, svc, port, 0, ())


def test_iptables_chain_names_match_kube_proxy() -> None:
    svc1 = port_model("ns1", "svc1", "p80")
    assert port_name_string(svc1) == "ns1/svc1:p80"
    assert chain("KUBE-SVC-", svc1) == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert chain("KUBE-SEP-", svc1, "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert chain("KUBE-SVC-", port_model("ns2", "svc2", "p80")) == "KUBE-SVC-GNZBNJ2PO5MGZ6GT"
    assert chain("KUBE-EXT-", port_model("ns2", "svc2", "p80")) == "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
    svc3 = port_model("ns3", "svc3", "p80")
    assert chain("KUBE-EXT-", svc3) == "KUBE-EXT-X27LE4BHSL4DOUIK"
    assert chain("KUBE-SEP-", svc3, "10.180.0.3:80") == "KUBE-SEP-OYPFS5VJICHGATKP"
    assert chain("KUBE-SVC-", port_model("ns4", "svc4", "p80")) == "KUBE-SVC-4SW47YFZTEDKD3PK"
    assert chain("KUBE-FW-", port_model("ns5", "svc5", "p80")) == "KUBE-FW-NUKIZ6OKUXPJNT4C"
    # seen in real dumps; the protocol is hashed in lower case
    assert chain("KUBE-SVC-", port_model("default", "kubernetes", "https")) == \
        "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert chain("KUBE-SVC-", port_model("kube-system", "kube-dns", "dns", "UDP")) == \
        "KUBE-SVC-TCOU7JCQXEZGVUNU"


def test_worked_example_default_web_http() -> None:
    web = port_model("default", "web", "http")
    assert chain("KUBE-SVC-", web) == "KUBE-SVC-CDGGSHYLG3RE2FKL"
    assert [chain("KUBE-SEP-", web, k) for k in
            ("10.244.1.2:80", "10.244.1.3:80", "10.244.2.2:80", "10.244.2.3:80")] == [
        "KUBE-SEP-PBQ62IOVWGYEN623", "KUBE-SEP-BHMTFEMIGCOTLSJP",
        "KUBE-SEP-MODFGJMBXTNUPWPX", "KUBE-SEP-7MXUJOUG3G2M65AE"]
    assert nft_chain("service-", web) == "service-SUSTUHLJ-default/web/tcp/http"


def test_nftables_chain_names_match_kube_proxy() -> None:
    svc1 = port_model("ns1", "svc1", "p80")
    assert nft_chain("service-", svc1) == "service-ULMVA6XW-ns1/svc1/tcp/p80"
    assert nft_chain("endpoint-", svc1, "10.180.0.1:80") == \
        "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"
    assert nft_chain("service-", port_model("ns2", "svc2", "p80")).startswith(
        "service-42NFTM6N-")
    svc3 = port_model("ns3", "svc3", "p80")
    assert nft_chain("external-", svc3) == "external-4AT6LBPK-ns3/svc3/tcp/p80"
    assert nft_chain("endpoint-", svc3, "10.180.0.3:80") == \
        "endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80"
    svc4 = port_model("ns4", "svc4", "p80")
    assert nft_chain("service-", svc4) == "service-LAUZTJTB-ns4/svc4/tcp/p80"
    assert nft_chain("endpoint-", svc4, "10.180.0.5:80") == \
        "endpoint-5RFCDDV7-ns4/svc4/tcp/p80__10.180.0.5/80"


def test_unnamed_port() -> None:
    sp = port_model("default", "nginx-nodeport", "")
    assert port_name_string(sp) == "default/nginx-nodeport"  # no trailing colon
    assert nft_chain("service-", sp).endswith("-default/nginx-nodeport/tcp/")


# --- nftables / IPVS / userspace ----------------------------------------------------------


def test_nftables_output(tmp_path: Path) -> None:
    code, out, _ = explain(write_scenario(tmp_path, mode="nftables"), "--trace", "203.0.113.9")
    assert code == 0
    assert "table ip kube-proxy {" in out
    assert "numgen random mod 4 vmap { " in out
    vmap = re.search(r"numgen random mod 4 vmap \{ (.*) \}", out)
    assert vmap is not None
    entries = re.findall(r"(\d+) : goto endpoint-\w{8}-default/nginx-nodeport/tcp/__"
                         r"([\d.]+)/(\d+)", vmap.group(1))
    assert [(int(i), f"{ip}:{port}") for i, ip, port in entries] == list(
        enumerate(LEXICOGRAPHIC))
    assert "tcp . 30080 : goto external-" in out
    picked = re.search(r"^numgen random mod 4 = (\d) -> (endpoint-\S+)$", out, re.M)
    assert picked is not None
    key = LEXICOGRAPHIC[int(picked.group(1))]
    assert picked.group(2).endswith("__" + key.replace(":", "/"))
    assert f"endpoint chain: dnat to {key}" in out
    assert f"meta l4proto tcp dnat to {key}" in out


IPVS_HEADER = ["IP Virtual Server version 1.2.1 (size=4096)",
               "Prot LocalAddress:Port Scheduler Flags",
               "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]


@pytest.mark.parametrize("scheduler", [None, "lc"])
def test_ipvs_output_has_the_ipvsadm_layout(tmp_path: Path, scheduler: str | None) -> None:
    path = write_scenario(tmp_path, mode="ipvs", scheduler=scheduler)
    code, out, _ = explain(path, "--node", "node-2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "# node node-2, kube-proxy mode ipvs"
    assert lines[1:4] == IPVS_HEADER
    # node-2 has the second default node address (kind style 172.18.0.2 + index)
    # the ClusterIP virtual server first, then one per node address
    assert lines[4] == f"TCP  10.96.0.10:80 {scheduler or 'rr'}"
    assert lines[9] == f"TCP  172.18.0.3:30080 {scheduler or 'rr'}"
    assert lines[14] == f"TCP  10.244.2.1:30080 {scheduler or 'rr'}"  # cni0 of node-2
    dests = lines[10:14]
    # ipvsadm sorts real servers numerically
    assert [d.split()[1] for d in dests] == NUMERIC
    for d, key in zip(dests, NUMERIC, strict=True):
        # ipvsadm pads the last column too ("%-10u"), so lines end in spaces
        assert d == f"  -> {key:<28} Masq    1      0          0         "


def test_userspace_output(tmp_path: Path) -> None:
    code, out, _ = explain(write_scenario(tmp_path, mode="userspace"))
    assert code == 0
    assert "round robin" in out
    listed = re.findall(r"^  \d: ([\d.:]+)$", out, re.M)
    assert sorted(listed) == sorted(LEXICOGRAPHIC)


# --- bad options ---------------------------------------------------------------------------


def test_bad_node_exits_2_naming_the_option(tmp_path: Path) -> None:
    code, out, err = explain(write_scenario(tmp_path), "--node", "node-9")
    assert code == 2
    assert "--node" in err and "node-9" in err
    assert "node-1" in err  # lists the real ones
    assert out == ""


def test_bad_service_exits_2_naming_the_option(tmp_path: Path) -> None:
    code, out, err = explain(write_scenario(tmp_path), "--service", "nope")
    assert code == 2
    assert "--service" in err and "nope" in err and "nginx-nodeport" in err
    assert out == ""


@pytest.mark.parametrize("value", ["not-an-ip", "203.0.113.7:0", "203.0.113.7:99999",
                                   "203.0.113.7:x", "203.0.113.7:"])
def test_bad_trace_exits_2(tmp_path: Path, value: str) -> None:
    code, _, err = explain(write_scenario(tmp_path), "--trace", value)
    assert code == 2
    assert "--trace" in err


def test_missing_scenario_exits_2(tmp_path: Path) -> None:
    code, _, err = explain(str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml" in err


# --- externalTrafficPolicy Local and affinity, rendered from the node's ServiceView ------

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_local_policy_renders_svl_chain_and_keeps_the_client_address() -> None:
    code, out, _ = explain(str(SCENARIOS / "local-vs-cluster.yaml"), "--service", "web-local",
                           "--node", "node-1", "--trace", "203.0.113.9:40000")
    assert code == 0
    assert "-j KUBE-SVL-" in out and "pod traffic for default/web-local" in out
    assert "masquerade traffic for default/web-local external" not in out
    assert "no masquerade: the pod sees the client's address 203.0.113.9" in out
    assert "no hop:" in out


def test_local_policy_without_local_endpoint_drops_not_rejects() -> None:
    code, out, _ = explain(str(SCENARIOS / "local-node-without-pod.yaml"), "--node", "node-3",
                           "--trace", "203.0.113.9")
    assert code == 0
    assert '"default/web-local has no local endpoints"' in out
    assert out.count("has no local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp "
                     "--dport 30081 -j DROP") == 1
    assert "REJECT" not in out
    assert ('filter INPUT -> KUBE-EXTERNAL-SERVICES: "default/web-local has no local '
            'endpoints" DROP; the client waits for its connect timeout') in out


def test_affinity_renders_recent_checks_before_the_cascade() -> None:
    code, out, _ = explain(str(SCENARIOS / "affinity-behind-nat.yaml"))
    assert code == 0
    svc_rules = [line for line in out.splitlines() if line.startswith("-A KUBE-SVC-")
                 and "cluster IP" not in line]
    recent = [i for i, line in enumerate(svc_rules) if "--rcheck --seconds 600 --reap" in line]
    cascade = [i for i, line in enumerate(svc_rules) if "statistic" in line]
    assert len(recent) == 4 and max(recent) < min(cascade)
    assert out.count("-m recent --name KUBE-SEP-") == 8  # 4 checks + 4 --set


# --- rule by rule against kube-proxy's own unit tests ----------------------------------------
# TestOverallNFTablesRules / TestOverallIPTablesRules build Services ns2/svc2 (LoadBalancer,
# Local, endpoint 10.180.0.2 on another node, nodePort 3001), ns3/svc3 (NodePort, endpoint
# 10.180.0.3:80, nodePort 3003) and ns5/svc5 (ClientIP affinity 10800 s, endpoint
# 10.180.0.3:80), pod CIDR 10.0.0.0/8, node 192.168.0.2, ClusterIPs 172.30.0.4x. The same
# Services are rebuilt here; only the ClusterIP and the service CIDR differ (npsim numbers
# ClusterIPs from 10.96.0.10), so those two are substituted before comparing.


def kube_proxy_case(tmp_path: Path, mode: str, name: str) -> str:
    ns = name.replace("svc", "ns")
    spec: dict = {"type": "NodePort", "selector": {"app": name},
                  "ports": [{"name": "p80", "port": 80, "protocol": "TCP",
                             "nodePort": {"svc2": 3001, "svc3": 3003, "svc5": 3002}[name]}]}
    if name == "svc2":
        spec.update(type="LoadBalancer", externalTrafficPolicy="Local")
    if name == "svc5":
        spec.update(sessionAffinity="ClientIP",
                    sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}})

    def deployment(dep: str, namespace: str, labels: dict) -> dict:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": dep, "namespace": namespace},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": dep, "ports": [
                                          {"containerPort": 80}]}]}}}}

    # the first pod of 10.180.0.0/24 takes .2: a filler puts the Service's pod at .3
    deployments = ([] if name == "svc2" else [deployment("filler", ns, {"app": "filler"})])
    deployments.append(deployment(name, ns, {"app": name}))
    node2 = "node-2" if name == "svc2" else "node-1"
    data = {
        "name": f"kube-proxy-{name}",
        "cluster": {"proxyMode": mode, "clusterCIDR": "10.0.0.0/8",
                    "serviceNodePortRange": "3000-3010",
                    "nodes": [{"name": "node-1", "address": "192.168.0.2",
                               "podCIDR": "10.180.1.0/24" if name == "svc2" else
                               "10.180.0.0/24"},
                              {"name": "node-2", "address": "192.168.0.3",
                               "podCIDR": "10.180.0.0/24" if name == "svc2" else
                               "10.180.2.0/24"}]},
        "manifests": [{"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "namespace": ns}, "spec": spec},
                      *deployments],
        "workloads": {d["metadata"]["name"]: {
            "serviceTime": {"dist": "constant", "value": "1ms"},
            "placement": {node2 if d["metadata"]["name"] == name else "node-1": 1}}
            for d in deployments},
        "clients": [{"name": "c", "service": name, "arrival": {"rate": "1/s"}}],
        "run": {"duration": "1s"},
    }
    path = tmp_path / f"{mode}-{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    code, out, err = explain(str(path), "--node", "node-1")
    assert code == 0, err
    return out


def kube_proxy_lines(out: str, cluster_ip: str) -> set[str]:
    return {line.replace("10.96.0.10", cluster_ip).replace("10.96.0.0/12", "172.30.0.0/16")
            for line in out.splitlines()}


NFT_BASE = """\
add rule ip kube-proxy cluster-ips-check ip daddr { 172.30.0.0/16 } drop comment "Drop traffic \
to unallocated ClusterIPs"
add rule ip kube-proxy filter-input ct state new jump nodeport-endpoints-check
add rule ip kube-proxy filter-input ct state new jump service-endpoints-check
add rule ip kube-proxy masquerading mark and 0x4000 == 0 return
add rule ip kube-proxy masquerading mark set mark xor 0x4000
add rule ip kube-proxy masquerading masquerade fully-random
add rule ip kube-proxy nat-prerouting jump services
add rule ip kube-proxy nat-postrouting jump masquerading
add rule ip kube-proxy nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport \
vmap @no-endpoint-nodeports
add rule ip kube-proxy reject-chain reject
add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip kube-proxy services ip daddr @nodeport-ips meta l4proto . th dport vmap \
@service-nodeports
add element ip kube-proxy nodeport-ips { 192.168.0.2 }"""

NFT_SVC = {
    "svc2": """\
add chain ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 ip daddr 172.30.0.42 ip saddr != \
10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-42NFTM6N-ns2/svc2/tcp/p80 numgen random mod 1 vmap { 0 : goto \
endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 }
add chain ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 ip saddr 10.0.0.0/8 goto \
service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit pod traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local jump \
mark-for-masquerade comment "masquerade local traffic"
add rule ip kube-proxy external-42NFTM6N-ns2/svc2/tcp/p80 fib saddr type local goto \
service-42NFTM6N-ns2/svc2/tcp/p80 comment "short-circuit local traffic"
add chain ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 ip saddr 10.180.0.2 \
jump mark-for-masquerade
add rule ip kube-proxy endpoint-SGOXE6O3-ns2/svc2/tcp/p80__10.180.0.2/80 meta l4proto tcp \
dnat to 10.180.0.2:80
add element ip kube-proxy cluster-ips { 172.30.0.42 }
add element ip kube-proxy service-ips { 172.30.0.42 . tcp . 80 : goto \
service-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3001 : goto \
external-42NFTM6N-ns2/svc2/tcp/p80 }
add element ip kube-proxy no-endpoint-nodeports { tcp . 3001 comment "ns2/svc2:p80" : drop }""",
    "svc3": """\
add chain ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 ip daddr 172.30.0.43 ip saddr != \
10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-4AT6LBPK-ns3/svc3/tcp/p80 numgen random mod 1 vmap { 0 : goto \
endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 }
add chain ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80
add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 goto service-4AT6LBPK-ns3/svc3/tcp/p80
add chain ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80
add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 \
jump mark-for-masquerade
add rule ip kube-proxy endpoint-UEIP74TE-ns3/svc3/tcp/p80__10.180.0.3/80 meta l4proto tcp \
dnat to 10.180.0.3:80
add element ip kube-proxy cluster-ips { 172.30.0.43 }
add element ip kube-proxy service-ips { 172.30.0.43 . tcp . 80 : goto \
service-4AT6LBPK-ns3/svc3/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3003 : goto \
external-4AT6LBPK-ns3/svc3/tcp/p80 }""",
    "svc5": """\
add set ip kube-proxy affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { type ipv4_addr ; \
flags dynamic,timeout ; timeout 10800s ; }
add chain ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip daddr 172.30.0.45 ip saddr != \
10.0.0.0/8 jump mark-for-masquerade
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 ip saddr \
@affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 goto \
endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add rule ip kube-proxy service-HVFWP5L3-ns5/svc5/tcp/p80 numgen random mod 1 vmap { 0 : goto \
endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 }
add chain ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 jump mark-for-masquerade
add rule ip kube-proxy external-HVFWP5L3-ns5/svc5/tcp/p80 goto service-HVFWP5L3-ns5/svc5/tcp/p80
add chain ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 ip saddr 10.180.0.3 \
jump mark-for-masquerade
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 update \
@affinity-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 { ip saddr }
add rule ip kube-proxy endpoint-GTK6MW7G-ns5/svc5/tcp/p80__10.180.0.3/80 meta l4proto tcp \
dnat to 10.180.0.3:80
add element ip kube-proxy cluster-ips { 172.30.0.45 }
add element ip kube-proxy service-ips { 172.30.0.45 . tcp . 80 : goto \
service-HVFWP5L3-ns5/svc5/tcp/p80 }
add element ip kube-proxy service-nodeports { tcp . 3002 : goto \
external-HVFWP5L3-ns5/svc5/tcp/p80 }"""}
CLUSTER_IPS = {"svc2": "172.30.0.42", "svc3": "172.30.0.43", "svc5": "172.30.0.45"}


@pytest.mark.parametrize("name", ["svc2", "svc3", "svc5"])
def test_nftables_rules_are_kube_proxys_own(tmp_path: Path, name: str) -> None:
    out = kube_proxy_case(tmp_path, "nftables", name)
    ours = kube_proxy_lines(out, CLUSTER_IPS[name])
    missing = [line for line in (NFT_BASE + "\n" + NFT_SVC[name]).splitlines()
               if line not in ours]
    assert missing == []
    # the service's own lines are exactly kube-proxy's, nothing more
    block = out.split(f"# {name.replace('svc', 'ns')}/{name}:p80\n")[1].split("\n# trace")[0]
    assert sorted(x for x in kube_proxy_lines(block, CLUSTER_IPS[name]) if x) == sorted(
        NFT_SVC[name].splitlines())


IPT_SVC3 = """\
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 \
-j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external \
destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp \
-d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" \
-j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT \
--to-destination 10.180.0.3:80
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name \
ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark \
0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack \
--ctstate RELATED,ESTABLISHED -j ACCEPT"""


def test_iptables_rules_are_kube_proxys_own(tmp_path: Path) -> None:
    out = kube_proxy_case(tmp_path, "iptables", "svc3")
    ours = kube_proxy_lines(out, "172.30.0.43")
    assert [line for line in IPT_SVC3.splitlines() if line not in ours] == []


def test_iptables_health_check_port_and_no_endpoint_rejects(tmp_path: Path) -> None:
    out = kube_proxy_case(tmp_path, "iptables", "svc2")
    hc = re.search(r'^-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node '
                   r'port" -m tcp -p tcp --dport (\d+) -j ACCEPT$', out, re.M)
    assert hc is not None and 3000 <= int(hc.group(1)) <= 3010
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" '
            "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP") in out


def test_iptables_service_without_endpoints_rejects_clusterip_and_nodeport(tmp_path: Path
                                                                            ) -> None:
    path = write_scenario(tmp_path)
    data = yaml.safe_load(Path(path).read_text())
    data["manifests"] = [{"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "empty"},
                          "spec": {"type": "NodePort", "selector": {"app": "none"},
                                   "ports": [{"port": 80, "nodePort": 30099}]}},
                         *data["manifests"]]
    Path(path).write_text(yaml.safe_dump(data))
    code, out, _ = explain(path, "--service", "empty", "--trace", "203.0.113.1")
    assert code == 0
    assert ('-A KUBE-SERVICES -m comment --comment "default/empty has no endpoints" -m tcp -p tcp '
            "-d 10.96.0.10 --dport 80 -j REJECT") in out
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/empty has no endpoints" '
            "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30099 -j REJECT") in out
    assert "REJECT (ICMP port unreachable: connection refused)" in out


def test_nftables_trace_uses_nftables_words(tmp_path: Path) -> None:
    _, out, _ = explain(str(SCENARIOS / "local-node-without-pod.yaml"), "--node", "node-3",
                        "--trace", "203.0.113.9")
    assert "KUBE-" in out  # iptables mode: the scenario's own
    path = tmp_path / "nft.yaml"
    text = (SCENARIOS / "local-node-without-pod.yaml").read_text()
    path.write_text(text.replace("proxyMode: iptables", "proxyMode: nftables").replace(
        "manifests/", str(SCENARIOS / "manifests") + "/"))
    code, out, _ = explain(str(path), "--node", "node-3", "--trace", "203.0.113.9",
                           "--allow-outside-files")  # the manifests stay in scenarios/
    assert code == 0
    assert "KUBE-" not in out and "goto reject-chain }" not in out
    trace = out.split("# trace of one new connection\n")[1]
    assert "@no-endpoint-nodeports" in trace and "drop; the client waits" in trace


def test_ipvs_persistence_node_addresses_and_snat_sets(tmp_path: Path) -> None:
    out = kube_proxy_case(tmp_path, "ipvs", "svc5")
    lines = out.splitlines()
    assert "TCP  10.96.0.10:80 rr persistent 10800" in lines
    assert "TCP  192.168.0.2:3002 rr persistent 10800" in lines
    assert "TCP  10.180.0.1:3002 rr persistent 10800" in lines  # cni0: a local address too
    assert "add KUBE-NODE-PORT-TCP 3002" in lines
    assert ('-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for '
            'masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ'
            ) in lines
    local = kube_proxy_case(tmp_path, "ipvs", "svc2").splitlines()
    ret = local.index('-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP '
                      'port with externalTrafficPolicy=local" -m set --match-set '
                      "KUBE-NODE-PORT-LOCAL-TCP dst -j RETURN")
    masq = local.index('-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP '
                       'port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst '
                       "-j KUBE-MARK-MASQ")
    assert ret < masq  # the LOCAL set must come first
    assert "add KUBE-NODE-PORT-LOCAL-TCP 3001" in local
    assert any(line.startswith("add KUBE-HEALTH-CHECK-NODE-PORT 30") for line in local)
