"""``npsim import``: a kubectl dump becomes a scenario that keeps the cluster's own facts
(addresses, clusterIPs, nodePorts, policies, affinity, kube-proxy mode) and runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import npsim
from npsim.cli import main
from npsim.importer import import_cluster
from npsim.scenario.loader import load_scenario

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "cluster.yaml"
ROOT = HERE.parents[1]


def _import(tmp_path: Path, *args: str, out: str = "mine.yaml") -> tuple[int, str, Path]:
    target = tmp_path / out
    result = CliRunner().invoke(main, ["import", *args, "--out", str(target)])
    return result.exit_code, result.output, target


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("import") / "shop.yaml"
    import_cluster([FIXTURE], out)
    return out


def test_the_dump_s_services_keep_their_clusterips_nodeports_policies_and_affinity(
        imported: Path) -> None:
    scenario = load_scenario(imported)
    web, api, ledger = (scenario.services[n] for n in ("web", "api", "ledger"))
    assert (web.cluster_ip, web.ports[0].node_port) == ("10.96.120.7", 31080)
    assert (web.session_affinity, web.affinity_timeout) == ("ClientIP", 600)
    assert web.ports[0].target_port == "http"
    assert (api.cluster_ip, api.ports[0].node_port) == ("10.96.200.15", 30900)
    assert api.external_traffic_policy == "Local"
    assert api.traffic_distribution == "PreferClose"
    assert ledger.selector == {} and [s.name for s in ledger.endpoint_slices] == ["ledger-manual"]
    assert scenario.services["kubernetes"].cluster_ip == "10.96.0.1"
    assert "web-headless" not in scenario.services  # kube-proxy programs nothing for it


def test_cluster_ip_services_are_written_without_external_traffic_policy(
        imported: Path) -> None:
    """The API server refuses externalTrafficPolicy on a ClusterIP Service
    (validateServiceExternalTrafficPolicy): the imported file does not carry it there."""
    import yaml

    docs = yaml.safe_load(imported.read_text())["manifests"]
    services = [d for d in docs if d.get("kind") == "Service"]
    cluster_ip = [d for d in services if d["spec"].get("type", "ClusterIP") == "ClusterIP"]
    assert cluster_ip and all("externalTrafficPolicy" not in d["spec"] for d in cluster_ip)
    assert any("externalTrafficPolicy" in d["spec"] for d in services
               if d["spec"].get("type") in ("NodePort", "LoadBalancer"))


def test_kube_proxy_configmap_and_nodes_are_read(imported: Path) -> None:
    cluster = load_scenario(imported).spec.cluster
    assert cluster.proxy_mode == "ipvs"
    assert cluster.ipvs.scheduler == "lc"
    assert cluster.kube_proxy.min_sync_period == 2.0  # ipvs.minSyncPeriod, not iptables'
    nodes = {n.name: n for n in cluster.nodes}
    assert (nodes["worker-a1"].address, nodes["worker-a1"].zone) == ("192.168.10.11",
                                                                     "eu-west-1a")
    assert nodes["worker-a1"].cpu == pytest.approx(3.92)
    assert nodes["worker-b2"].pod_cidr == "10.244.3.0/24"  # the IPv4 one of podCIDRs
    assert cluster.cluster_cidr == "10.244.0.0/16"
    assert cluster.service_node_port_range == "30000-32767"
    text = imported.read_text()
    assert re.search(r"# NotReady \(Ready condition: Unknown\); cordoned.*unreachable:"
                     r"NoSchedule.*\n\s+- \{name: worker-b2", text)


def test_pods_sit_where_the_slices_put_them_with_their_conditions(imported: Path) -> None:
    workloads = load_scenario(imported).spec.workloads
    web = {p.ip: p for p in workloads["web"].pods or []}
    assert set(web) == {"10.244.1.17", "10.244.2.9", "10.244.2.23", "10.244.3.5"}
    assert web["10.244.1.17"].node == "worker-a1"
    assert web["10.244.1.17"].name == "web-5d4f8-abcde"
    old = web["10.244.2.23"]
    assert (old.ready, old.serving, old.terminating) == (False, True, True)
    assert web["10.244.3.5"].ready is False
    backends = workloads["ledger-endpoints"]
    assert [(p.node, p.ip) for p in backends.pods or []] == [("worker-a1", "10.244.1.200"),
                                                             ("worker-b1", "10.244.2.200")]


def test_nothing_unused_or_secret_is_copied(imported: Path) -> None:
    text = imported.read_text()
    for leak in ("aHVudGVyMg==", "db-password", "managedFields", "last-applied",
                 "NGINX_WORKERS", "readyReplicas", "uid:", "kind: Pod\n", "kind: Secret"):
        assert leak not in text
    assert "kind: NetworkPolicy" in text and "203.0.113.0/24" in text
    assert "readinessProbe: httpGet /healthz:8080" in text  # probes as comments


def test_cli_reports_ignored_kinds_and_the_scenario_validates(tmp_path: Path) -> None:
    code, output, out = _import(tmp_path, str(FIXTURE))
    assert code == 0, output
    assert "ignored (not copied): 1 ConfigMap, 1 Pod, 1 Secret, 1 Service (headless)" in output
    assert "endpoint 192.168.10.2 has no nodeName" in output
    result = CliRunner().invoke(main, ["validate", str(out)])
    assert result.exit_code == 0 and ": ok - 3 nodes, 4 services" in result.output


def test_imported_scenario_runs_and_serves_only_ready_endpoints(imported: Path) -> None:
    scenario = load_scenario(imported)
    scenario.spec.run.warmup = 0.5
    scenario.spec.run.duration = 3.0
    # the carried-over NetworkPolicy admits only 203.0.113.0/24 to web's pods: after the
    # NodePort's SNAT no connection matches, so web serves nothing until it is removed
    assert list(scenario.network_policies) == ["web-from-lb"]
    guarded = npsim.run(scenario).pods.set_index("pod_ip")
    assert guarded.loc["10.244.1.17", "requests"] == 0
    assert guarded.loc["10.244.1.40", "requests"] > 0  # api: no policy
    scenario.network_policies.clear()
    result = npsim.run(scenario)
    pods = result.pods.set_index("pod_ip")
    assert pods.loc["10.244.2.23", "requests"] == 0  # terminating: a ready one exists
    assert pods.loc["10.244.3.5", "requests"] == 0  # not ready
    assert pods.loc["10.244.1.17", "requests"] > 0
    assert pods.loc["10.244.1.200", "requests"] > 0  # the selector-less Service's backend
    assert set(result.requests["outcome"].unique()) <= {"completed", "in_flight"}


def test_explain_shows_the_dump_s_addresses(imported: Path, tmp_path: Path) -> None:
    ipvs = CliRunner().invoke(main, ["explain", str(imported), "--node", "worker-a1"])
    assert ipvs.exit_code == 0, ipvs.output
    assert "kube-proxy mode ipvs" in ipvs.output
    assert "TCP  10.96.120.7:80 lc persistent 600" in ipvs.output  # clusterIP, affinity
    assert "TCP  192.168.10.11:31080 lc persistent 600" in ipvs.output
    assert "TCP  10.96.0.1:443 lc" in ipvs.output
    assert "-> 10.244.1.17:8080" in ipvs.output and "-> 10.244.1.200:5432" in ipvs.output
    as_iptables = tmp_path / "iptables.yaml"
    as_iptables.write_text(imported.read_text().replace("proxyMode: ipvs", "proxyMode: iptables"))
    rules = CliRunner().invoke(main, ["explain", str(as_iptables), "--service", "web"])
    assert rules.exit_code == 0, rules.output
    assert "-d 10.96.120.7 --dport 80 -j KUBE-SVC-" in rules.output
    assert "--dport 31080 -j KUBE-EXT-" in rules.output
    assert "--rcheck --seconds 600 --reap" in rules.output
    assert "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ" in rules.output  # the ConfigMap's clusterCIDR
    assert "--to-destination 10.244.2.9:8080" in rules.output


BAD = {
    "not-yaml.yaml": ("apiVersion: v1\nitems: [\n  - kind: Node\nkind: List\n",
                      r"not-yaml\.yaml:3:3: YAML syntax error"),
    "single.yaml": ("apiVersion: v1\nkind: List\nitems:\n  apiVersion: v1\n  kind: Node\n",
                    r"single\.yaml:3:1: items: expected a list of objects, got a single "
                    r"object"),
    "scalar.yaml": ("just some text\n", r"scalar\.yaml: expected a Kubernetes object"),
    "no-kind.yaml": ("apiVersion: v1\nkind: List\nitems:\n- metadata: {name: x}\n",
                     r"no-kind\.yaml:4:3: items\[0\]\.apiVersion: Required value"),
    "no-ip.yaml": ("apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus:\n  addresses:\n"
                   "  - {type: Hostname, address: n1}\n",
                   r"no-ip\.yaml:5:3: status\.addresses: Required value: an InternalIP"),
    "bad-port.yaml": ("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n"
                      "  metadata: {name: web}\n  spec:\n    ports:\n    - {port: 99999}\n",
                      r"bad-port\.yaml:9:8: items\[0\]\.spec\.ports\[0\]\.port: Invalid "
                      r"value: 99999"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_dumps_get_located_errors_and_nothing_is_written(tmp_path: Path, name: str) -> None:
    text, expected = BAD[name]
    (tmp_path / name).write_text(text)
    code, output, out = _import(tmp_path, str(tmp_path / name))
    assert code == 2
    assert "Traceback" not in output and "nothing was written" in output
    assert re.search(expected, output), output
    assert not out.exists()


def test_a_slice_naming_an_unknown_node_is_located(tmp_path: Path) -> None:
    text = FIXTURE.read_text().replace("nodeName: worker-b1\n    zone: eu-west-1b\n"
                                       "    hints:\n      forZones: [{name: eu-west-1b}]\n"
                                       "- apiVersion: discovery.k8s.io/v1",
                                       "nodeName: worker-z9\n    zone: eu-west-1b\n"
                                       "    hints:\n      forZones: [{name: eu-west-1b}]\n"
                                       "- apiVersion: discovery.k8s.io/v1", 1)
    line = text.splitlines().index("    nodeName: worker-z9") + 1
    (tmp_path / "dump.yaml").write_text(text)
    code, output, _ = _import(tmp_path, str(tmp_path / "dump.yaml"))
    assert code == 2
    assert (f"dump.yaml:{line}:5: items[9].endpoints[1].nodeName: unknown node "
            "'worker-z9'") in output
    assert "1 problem in the dump" in output


def test_existing_files_are_kept_unless_forced_and_written_by_import(tmp_path: Path) -> None:
    code, _, out = _import(tmp_path, str(FIXTURE))
    assert code == 0
    first = out.read_text()
    code, output, _ = _import(tmp_path, str(FIXTURE))
    assert code == 2 and "already exists" in output
    code, output, _ = _import(tmp_path, str(FIXTURE), "--force")
    assert code == 0 and out.read_text() == first
    mine = tmp_path / "kept.yaml"
    mine.write_text("name: my own notes\n")
    code, output, _ = _import(tmp_path, str(FIXTURE), "--force", out="kept.yaml")
    assert code == 2 and "was not written by npsim import" in output
    assert mine.read_text() == "name: my own notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.yaml", "mine.yaml"]


def test_a_folder_of_manifests_with_namespace_and_service_filters(tmp_path: Path) -> None:
    folder = tmp_path / "rendered"
    folder.mkdir()
    (folder / "nodes.yaml").write_text(
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {podCIDR: 10.1.0.0/24}\n"
        "status:\n  addresses: [{type: InternalIP, address: 10.0.0.1}]\n")
    app = ("apiVersion: v1\nkind: Service\nmetadata: {{name: {n}, namespace: {ns}}}\nspec:\n"
           "  type: NodePort\n  selector: {{app: {n}}}\n  ports: [{{port: 80, nodePort: {p}}}]\n"
           "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {n}, namespace: {ns}}}"
           "\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {n}}}}}\n  template:\n"
           "    metadata: {{labels: {{app: {n}}}}}\n    spec: {{containers: [{{name: c}}]}}\n")
    (folder / "shop.yaml").write_text(app.format(n="web", ns="shop", p=30080) + "---\n"
                                      + app.format(n="cart", ns="shop", p=30081))
    (folder / "ops.yml").write_text(app.format(n="grafana", ns="ops", p=29300))
    (folder / "v6.yaml").write_text(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-v6\n"
        "  namespace: shop\n  labels: {kubernetes.io/service-name: web}\naddressType: IPv6\n"
        "endpoints: [{addresses: ['fd00::5'], nodeName: n1}]\n")
    code, output, out = _import(tmp_path, str(folder), "--namespace", "shop")
    assert code == 0, output
    scenario = load_scenario(out)
    assert sorted(scenario.services) == ["cart", "web"]
    assert scenario.spec.workloads["web"].pods is None  # no slices: spread the replicas
    assert "left out by --namespace/--service: 2 objects" in output
    assert "1 EndpointSlice (IPv6)" in output  # a dual-stack cluster's other half
    code, output, out = _import(tmp_path, str(folder), "--service", "grafana", out="g.yaml")
    assert code == 0, output
    grafana = load_scenario(out)
    assert sorted(grafana.services) == ["grafana"]
    # a nodePort below the default range: the cluster's range must reach it
    assert grafana.spec.cluster.service_node_port_range == "29300-32767"
    code, output, _ = _import(tmp_path, str(folder), "--service", "nope", out="n.yaml")
    assert code == 2 and "--service 'nope': no Service of that name" in output


def test_rates_and_service_times_from_csv(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("service,namespace,rate_per_s\nweb,shop,250\nkubernetes,default,0\n")
    times = tmp_path / "times.csv"
    times.write_text("deployment,namespace,service_time,workers\nweb,shop,4ms,8\n")
    code, output, out = _import(tmp_path, str(FIXTURE), "--rates", str(rates),
                                "--service-times", str(times))
    assert code == 0, output
    spec = load_scenario(out).spec
    web = next(c for c in spec.clients if c.service == "web")
    assert web.arrival.rate == 250
    assert spec.workloads["web"].service_time.mean == pytest.approx(0.004)
    assert spec.workloads["web"].workers == 8
    assert next(c for c in spec.clients if c.service == "api").arrival.rate == 100  # default
    bad = tmp_path / "bad.csv"
    bad.write_text("service,namespace,rate_per_s\nweb,shop,lots\nshop-ui,shop,3\n")
    code, output, _ = _import(tmp_path, str(FIXTURE), "--rates", str(bad), out="b.yaml")
    assert code == 2
    assert "bad.csv:2:10: rate_per_s: expected requests per second" in output
    assert "bad.csv:3:1: service: no Service shop/shop-ui" in output


def test_generated_large_dump_imports_and_validates_small_version(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_cluster_dump.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    dump = tmp_path / "big.yaml"
    gen.write_dump(dump, nodes=40, services=120, node_ports=50)
    code, output, out = _import(tmp_path, str(dump))
    assert code == 0, output
    scenario = load_scenario(out)
    assert (len(scenario.spec.cluster.nodes), len(scenario.services)) == (40, 120)
    assert len(scenario.spec.clients) == 50  # the NodePort Services
    assert scenario.services["svc-00007"].cluster_ip == "10.96.0.9"
    assert sum(len(w.pods or []) for w in scenario.spec.workloads.values()) == 240


def test_only_regular_files_are_read_and_none_is_quoted(tmp_path: Path) -> None:
    """A FIFO or /dev/zero as a dump or CSV hung or ran out of memory; a file that is
    no dump or CSV had its first line printed (a shadow file's password hash)."""
    import os

    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secrethash:19000:0:99999:7\n")
    os.mkfifo(tmp_path / "fifo.csv")
    for args, words in (([str(secret)], "got a string"),
                        ([str(FIXTURE), "--rates", str(secret)], "not a CSV header"),
                        ([str(FIXTURE), "--rates", str(tmp_path / "fifo.csv")], "is a FIFO"),
                        ([str(FIXTURE), "--service-times", "/dev/zero"], "is a device"),
                        (["/dev/zero"], "is a device")):
        code, output, target = _import(tmp_path, *args)
        assert code == 2 and words in output, output
        assert "secrethash" not in output and not target.exists()


def test_external_ips_lb_ingress_and_source_ranges_survive_the_import(tmp_path: Path) -> None:
    """kube-proxy programs them, so the scenario keeps them (issue 25)."""
    text = FIXTURE.read_text().replace(
        "    externalTrafficPolicy: Cluster\n    internalTrafficPolicy: Cluster\n",
        "    externalTrafficPolicy: Cluster\n    internalTrafficPolicy: Cluster\n"
        "    externalIPs: [192.0.2.50]\n", 1).replace(
        "  spec:\n    type: NodePort\n    clusterIP: 10.96.200.15\n",
        "  spec:\n    type: LoadBalancer\n    clusterIP: 10.96.200.15\n"
        "    loadBalancerSourceRanges: [203.0.113.0/24]\n", 1).replace(
        "    externalTrafficPolicy: Local\n    trafficDistribution: PreferClose\n",
        "    externalTrafficPolicy: Local\n    trafficDistribution: PreferClose\n"
        "  status:\n    loadBalancer:\n      ingress: [{ip: 198.51.100.9, ipMode: VIP}]\n", 1)
    assert text.count("192.0.2.50") == 1 and text.count("198.51.100.9") == 1
    dump = tmp_path / "dump.yaml"
    dump.write_text(text)
    out = tmp_path / "shop.yaml"
    import_cluster([dump], out)
    scenario = load_scenario(out)
    web, api = scenario.services["web"], scenario.services["api"]
    assert web.external_ips == ("192.0.2.50",)
    assert api.load_balancer_ips == ("198.51.100.9",)
    assert api.load_balancer_source_ranges == ("203.0.113.0/24",)
