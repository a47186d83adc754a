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
from npsim.explain import chain, nft_chain, port_name_string
from npsim.scenario.manifests import Service, ServicePort

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
    assert out.startswith("# node node-1, kube-proxy mode iptables\n*nat\n")
    assert out.rstrip().endswith("COMMIT")
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
    assert lines[4] == f"TCP  172.18.0.3:30080 {scheduler or 'rr'}"
    dests = lines[5:9]
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
                                   "203.0.113.7:x"])
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
    assert '"default/web-local has no local endpoints"' in out and out.count("-j DROP") == 1
    assert "REJECT" not in out
    assert "DROPs the packet; the client waits for its connect timeout" in out


def test_affinity_renders_recent_checks_before_the_cascade() -> None:
    code, out, _ = explain(str(SCENARIOS / "affinity-behind-nat.yaml"))
    assert code == 0
    svc_rules = [line for line in out.splitlines() if line.startswith("-A KUBE-SVC-")
                 and "cluster IP" not in line]
    recent = [i for i, line in enumerate(svc_rules) if "--rcheck --seconds 600 --reap" in line]
    cascade = [i for i, line in enumerate(svc_rules) if "statistic" in line]
    assert len(recent) == 4 and max(recent) < min(cascade)
    assert out.count("-m recent --name KUBE-SEP-") == 8  # 4 checks + 4 --set
