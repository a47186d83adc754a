"""What a lab's prose says against what its cells print: a sentence that states a figure
the notebook no longer produces misleads every student who reads it. Each test runs the
lab's own scenario the way the notebook does (in-process, seconds) and checks both the
figure and the sentence that states it."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

import npsim
from npsim.cli import main as npsim_cli
from npsim.scenario.problems import ScenarioError

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"


def _prose(lab: str) -> str:
    """The lab's markdown, joined, with line breaks read as spaces."""
    notebook = nbformat.read(NOTEBOOKS / f"{lab}.ipynb", as_version=4)
    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return " ".join(text.split())


def test_lab4_stickiness_with_own_addresses_is_what_the_text_says() -> None:
    """Lab 4 compares users behind 3 NAT addresses with the same 1,000 users on their own
    addresses. Behind the NAT every address stays on its pod; on their own addresses
    1,000 clients overflow iptables' per-endpoint ``recent`` lists (100 addresses each),
    so about half of the connections move: the text must not claim 100% for both."""
    behind_nat = npsim.bundled("affinity-behind-nat")
    behind_nat.run.duration = 30
    own_addresses = behind_nat.copy()
    own_addresses.clients[0].nat_gateways = []
    nat, plain = npsim.run(behind_nat), npsim.run(own_addresses)
    assert nat.metric("client_stickiness") == 1.0
    assert 0.4 < plain.metric("client_stickiness") < 0.6
    nftables = own_addresses.copy()
    nftables.cluster.proxy_mode = "nftables"  # sets without a size cap: affinity holds
    assert npsim.run(nftables).metric("client_stickiness") == 1.0
    prose = _prose("04-session-affinity")
    assert "Stickiness is 100% in both" not in prose
    assert "about half" in prose and "recent" in prose


def test_lab5_cluster_hops_can_be_read_off_the_report() -> None:
    """Lab 5 says Cluster hops for 1/3 of node-1's and 2/3 of node-2's requests, but the
    report's nodes table counts both populations (Local never hops): 16% and 33%. The
    text must say how the two agree, or a student checking it finds other numbers."""
    base = npsim.bundled("local-vs-cluster")
    base.run.duration = 30
    result = npsim.run(base)
    req = result.requests[~result.requests["warmup"] & result.requests["pod"].notna()]
    cluster = req[req["population"] == "to-cluster"]
    hops = cluster.groupby(cluster["entry_node"].astype(str))["cross_node"].mean()
    assert abs(hops["node-1"] - 1 / 3) < 0.03 and abs(hops["node-2"] - 2 / 3) < 0.03
    table = result.nodes.set_index("node")["cross_node_fraction"]
    assert round(table["node-1"], 2) == 0.16 and round(table["node-2"], 2) == 0.33
    prose = _prose("05-local-vs-cluster")
    assert "16%" in prose and "33%" in prose


# tutorial 6.3's policy: pods of namespaces labelled name=allowed-namespace, on port 8080
TUTORIAL_POLICY_PEER = {"namespaceSelector": {"matchLabels": {"name": "allowed-namespace"}}}


def test_lab8_the_tutorials_namespace_selector_admits_no_outside_client() -> None:
    """Lab 8 runs tutorial 6.3's own policy (a namespaceSelector) in front of the NodePort:
    it selects pods, never outside clients. Under Cluster only the third kube-proxy keeps
    on the receiving node passes (it arrives from the node's own address, always
    allowed); under Local, with the client's address kept, nothing does."""
    snat = npsim.bundled("networkpolicy-snat")
    tutorial = snat.with_changes({"manifests[2].spec.ingress[0].from[0]": TUTORIAL_POLICY_PEER})
    served = {}
    for policy in ("Cluster", "Local"):
        run = npsim.run(tutorial.with_changes({"services.web-app.externalTrafficPolicy": policy}))
        m = run.requests[~run.requests["warmup"]]
        served[policy] = (m["outcome"] == "completed").mean()
        assert set(m.loc[m["outcome"] == "failed", "reason"].astype(str)) == {
            "network_policy_dropped"}
    assert abs(served["Cluster"] - 1 / 3) < 0.03 and served["Local"] == 0
    prose = _prose("08-firewalls")
    assert "allowed-namespace" in prose and "namespaceSelector" in prose
    assert "under local nothing gets in" in prose.lower() and "a third is served" in prose


# tutorial 2.3's multi-port Service: every port needs a name, every nodePort its own value
TUTORIAL_PORTS = [{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080},
                  {"name": "https", "port": 443, "targetPort": 8443, "nodePort": 30443},
                  {"name": "metrics", "port": 9090, "targetPort": 9090, "nodePort": 30090}]


def test_lab1_a_service_with_three_ports(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Lab 1 gives quickstart's Service the tutorial's three ports: three nodePorts, each
    open on every node (30443 and 30090 in the dynamic band, lab 7's warning); a port
    without a name, or a nodePort used twice, is refused as the API server refuses it."""
    multi = npsim.bundled("quickstart").with_changes(
        {"services.nginx-nodeport.ports": TUTORIAL_PORTS})
    path = tmp_path / "multi-port.yaml"
    path.write_text(yaml.safe_dump(multi.to_dict(), sort_keys=False))
    capsys.readouterr()
    npsim_cli(["ports", str(path)], standalone_mode=False)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith("default")]
    assert [(r[2], r[6], r[7]) for r in rows] == [
        ("http", "30080", "static"), ("https", "30443", "dynamic"),
        ("metrics", "30090", "dynamic")]
    with pytest.raises(ScenarioError, match=r"ports\[1\]\.name.*Required value"):
        multi.with_changes({"services.nginx-nodeport.ports[1].name": None})
    with pytest.raises(ScenarioError, match=r"ports\[2\]\.nodePort.*Duplicate value: 30080"):
        multi.with_changes({"services.nginx-nodeport.ports[2].nodePort": 30080})
    prose = _prose("01-nodeport-path")
    assert "30443" in prose and "dynamic band" in prose


# tutorial 6.1's ufw lines and 7.4's LOG rule, on every node of nodeport-firewall
TUTORIAL_UFW = "ufw default deny incoming\nufw allow from 10.0.0.0/8 to any port 30080\n"
TUTORIAL_LOG = 'iptables -A INPUT -p tcp --dport 30080 -j LOG --log-prefix "NodePort Access: "\n'


def test_lab8_ufw_and_the_log_rule_see_nothing_in_iptables_mode() -> None:
    """Lab 8: ufw's rules and the LOG rule live in INPUT, like the tutorial's iptables
    lines: in iptables mode `internet` is served despite `default deny incoming` and not
    one connection is logged; under IPVS every connection is logged and `internet` is
    dropped."""
    base = npsim.bundled("nodeport-firewall")
    logged, internet_served = {}, {}
    for mode in ("iptables", "ipvs"):
        ufw = npsim.run(base.with_changes({"cluster.proxyMode": mode,
                                           "cluster.firewall.iptables": None,
                                           "cluster.firewall.ufw": TUTORIAL_UFW}))
        internet = ufw.requests[ufw.requests["population"] == "internet"]
        internet_served[mode] = (internet["outcome"] == "completed").mean()
        log = npsim.run(base.with_changes({"cluster.proxyMode": mode,
                                           "cluster.firewall.iptables": TUTORIAL_LOG}))
        logged[mode] = int((log.events["kind"] == "firewall_log").sum())
        connections = int(log.requests["new_connection"].sum())
    assert logged["iptables"] == 0 and logged["ipvs"] == connections
    assert internet_served["iptables"] > 0.95 and internet_served["ipvs"] == 0
    prose = _prose("08-firewalls")
    assert "ufw default deny incoming" in prose and "NodePort Access" in prose
    assert "not one connection is logged" in prose


def _pinned_pod(requests, start: float, end: float):
    """Each client's pod (the one most of its requests reached) between two times."""
    window = requests[requests["t_start"].between(start, end) & requests["pod"].notna()]
    return window.groupby("client_ip", observed=True)["pod"].agg(
        lambda pods: pods.astype(str).mode()[0])


def test_lab4_a_pod_that_goes_away_takes_its_clients_sessions() -> None:
    """Lab 4 (tutorial 5.2: sessions are lost when a pod fails): the 1,000 users on their
    own addresses (nftables, so no list overflows) and web scaled from 4 pods to 3 at
    20 s. The quarter of the clients pinned to the deleted pod are balanced afresh over
    the other three; every other client keeps its pod."""
    behind_nat = npsim.bundled("affinity-behind-nat")
    behind_nat.run.duration = 40
    own = behind_nat.with_changes({"clients.office-and-home.natGateways": [],
                                   "cluster.proxyMode": "nftables"})
    run = npsim.run(own.with_changes(
        {"events": [{"at": "20s", "scale": {"deployment": "web", "replicas": 3}}]}))
    deleted = run.events.loc[run.events["kind"] == "pod_deleted", "subject"].tolist()
    before, after = _pinned_pod(run.requests, 5, 20), _pinned_pod(run.requests, 21, 40)
    both = before.index.intersection(after.index)
    moved = before[both] != after[both]
    assert abs(moved.mean() - 1 / 4) < 0.04
    assert set(before[both][moved]) == set(deleted) and len(deleted) == 1
    assert not (after[both] == deleted[0]).any()
    prose = _prose("04-session-affinity")
    assert "a quarter of the clients" in prose and "Redis" in prose


def test_labs_md_states_lab3s_dns_node_shares() -> None:
    """docs/labs.md quotes lab 3's lumpy DNS node shares; they are the lab's run's."""
    s = npsim.bundled("quickstart")
    s.clients[0].entry = {"dns": {"ttl": "30s", "order": "random"}}
    s.clients[0].arrival = {"users": 12, "thinkTime": {"dist": "exponential", "mean": "8ms"}}
    s.run.duration = 10
    received = npsim.run(s).nodes.set_index("node")["received"]
    shares = "/".join(f"{share:.0%}".rstrip("%") for share in received / received.sum())
    assert shares == "34/25/42"
    assert f"(e.g. {shares}%)" in " ".join((ROOT / "docs" / "labs.md").read_text().split())


def test_labs_md_states_what_the_2ms_hop_does_to_lab5s_means() -> None:
    """docs/labs.md on lab 5's costly hop: Cluster's mean grows from its same-zone value
    (the hop already cost ~0.1 ms there), and the gap to Local is the 0.98 ms the lab prints."""
    base = npsim.bundled("local-vs-cluster")
    base.run.duration = 30
    far = base.with_changes({"cluster.nodes.node-2.zone": "zone-b",
                             "cluster.network.crossZone": {"dist": "constant", "value": "2ms"}})
    near_run, far_run = npsim.run(base), npsim.run(far)

    def mean_ms(run: npsim.Result, population: str) -> float:
        return run.metric("latency_mean", population=population) * 1e3

    near, away = mean_ms(near_run, "to-cluster"), mean_ms(far_run, "to-cluster")
    gap = away - mean_ms(far_run, "to-local")
    text = " ".join((ROOT / "docs" / "labs.md").read_text().split())
    assert f"from {near:.2f} to {away:.2f} ms" in text and f"{gap:.2f} ms faster" in text


def test_each_lab_says_the_time_the_teachers_table_gives() -> None:
    """A teacher plans the sessions from docs/labs.md's table; each lab's first cell
    tells the students the same time."""
    table = {}
    for line in (ROOT / "docs" / "labs.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 5 and cells[2].endswith(".ipynb`") and cells[4].endswith(" min"):
            table[cells[2].strip("`")] = int(cells[4].split()[0])
    assert sorted(table) == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for name, minutes in table.items():
        first = nbformat.read(NOTEBOOKS / name, as_version=4).cells[0].source
        assert f"About {minutes} minutes" in " ".join(first.split()), name


def test_labs_md_states_when_lab6s_balancer_takes_node2_out() -> None:
    """docs/labs.md on lab 6's balancer (checks every 2 s, 1 s timeout, fall 3; node-2
    crashes at 60 s, on a check): out at 65 s, within the 67 s bound the lab derives."""
    lb = npsim.bundled("node-failure-lb")
    lb.clients[0].arrival.rate = 50
    lb.run.duration = 70
    events = npsim.run(lb).events
    marked = events.loc[events["kind"] == "lb_mark_down", "time"].min()
    assert marked == 65.0
    text = " ".join((ROOT / "docs" / "labs.md").read_text().split())
    assert "at 65 s (the checks at 60, 62 and 64 s each time out after 1 s;" in text
    assert "at most crash + interval x fall + timeout = 67 s" in text


def _udp_lab_figures(scenario: npsim.Scenario) -> dict:
    """What lab 6's UDP section reads off a run of ``udp-syslog``: when syslog-1 left
    each node's rules, and per protocol the lost messages, the last one sent, the flows
    started after the hang and where traffic went after the restart."""
    run = npsim.run(scenario)
    ev, req = run.events, run.requests[~run.requests["warmup"]]
    removed = sorted(ev.loc[ev["kind"] == "endpoints_removed", "time"].unique())
    hang = ev.loc[ev["kind"] == "pod_hang", "time"].min()
    figures: dict = {"removed": removed}
    for population, sent in req.groupby(req["population"].astype(str)):
        lost = sent[sent["outcome"] != "completed"]
        later = sent[(sent["t_start"] > hang) & sent["new_connection"]]
        after = sent[sent["t_start"] > 82]
        figures[population.split("-")[0]] = {
            "lost": len(lost), "last_lost": lost["t_start"].max(),
            "pinned": sent.loc[(sent["t_start"] < hang) & (sent["pod"] == "syslog-1"),
                               "client_ip"].nunique(),
            "restarted_flows": later[["t_start", "pod"]],
            "shares": after["pod"].astype(str).value_counts(normalize=True)}
    return figures


def test_lab6_udp_flows_move_at_the_sync_tcp_connections_stay() -> None:
    """Lab 6's UDP section (tutorial 7.3), docs/labs.md and the scenario's header state
    these figures of ``udp-syslog`` (seed 1): kube-proxy deletes the UDP conntrack entries
    of the pod that left, so its 10 UDP flows start again on the other pods at the sync
    and no UDP message is lost after it; the TCP connections stay on the hung pod until
    the restart; the restarted pod gets no UDP flow back; a 2 s readiness period cuts
    only the UDP loss."""
    syslog = npsim.bundled("udp-syslog")
    base = _udp_lab_figures(syslog)
    udp, tcp = base["udp"], base["tcp"]
    assert [round(t, 2) for t in base["removed"]] == [51.14, 51.16]
    assert udp["pinned"] == tcp["pinned"] == 10
    assert udp["lost"] == 546 and round(udp["last_lost"], 2) == 51.15
    assert tcp["lost"] == 1218 and 81 <= tcp["last_lost"] < 83
    moved = udp["restarted_flows"]
    assert len(moved) == 10 and moved["t_start"].min() > base["removed"][0]
    assert "syslog-1" not in set(moved["pod"].astype(str))
    assert "syslog-1" not in udp["shares"].index
    assert [f"{udp['shares'][p]:.0%}" for p in ("syslog-0", "syslog-2", "syslog-3")] == \
        ["32%", "41%", "27%"]
    assert f"{tcp['shares']['syslog-1']:.0%}" == "5%"
    fast = _udp_lab_figures(syslog.with_changes(
        {"manifests[1].spec.template.spec.containers[0].readinessProbe.periodSeconds": 2}))
    assert round(fast["removed"][-1]) == 35
    assert fast["udp"]["lost"] == 139 and fast["tcp"]["lost"] == 1218
    prose = _prose("06-node-failure")
    for stated in ("51.14 s (node-1) and 51.16 s (node-2)", "546 lost in all, the last sent "
                   "at 51.15 s", "(1,218 lost)", "gets **no** UDP traffic (TCP: 5%",
                   "32/41/27% on syslog-0, syslog-2 and syslog-3", "from 546 to 139",
                   "out at 35 s", "10 of the 40 forwarders"):
        assert stated in prose, stated
    docs = " ".join((ROOT / "docs" / "labs.md").read_text().split())
    for stated in ("(51.14 and 51.16 s)", "546 UDP messages lost, the last sent at 51.15 s",
                   "(1,218 lost)", "(TCP: 5%)", "cuts the UDP loss to 139",
                   "546 messages lost, none after 51.15 s"):
        assert stated in docs, stated
    header = " ".join(line.lstrip("# ") for line in
                      npsim.bundled_path("udp-syslog").read_text().splitlines()
                      if line.startswith("#"))
    for stated in ("51.14 s (node-1) and 51.16 s (node-2)", "after 51.15 s (546 in all)",
                   "(1,218 lost)", "5% of TCP", "out at 35 s, 139 UDP messages lost"):
        assert stated in header, stated
