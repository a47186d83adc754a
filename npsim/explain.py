"""``npsim explain``: what kube-proxy programs on a node, and one connection's walk.

The text is rendered from the very :class:`~npsim.proxy.base.EndpointTable` objects the
simulator decides with, so the two cannot disagree. Formats follow kube-proxy's own
output (research notes in docs/kube-proxy-modes.md):

* iptables: the ``iptables-restore`` input kube-proxy writes (``-A`` lines, chain names
  ``KUBE-SVC-`` + first 16 base32 chars of sha256(servicePortName + protocol), endpoint
  chains hashing also "IP:port"; probabilities ``%0.10f``). ``iptables-save`` would show
  the kernel's rounding (``0.33333333349``);
* nftables: the ``kube-proxy`` table in ``nft list``'s layout, chain names
  ``service-`` + 8 base32 chars of sha256("ns/name/proto/port") + "-" + that string;
* IPVS: ``ipvsadm -Ln`` columns as ipvsadm.c prints them.

ClusterIPs are not simulated; they are numbered from 10.96.0.10 for display.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable

from npsim.cluster.model import Cluster, ServicePortModel, ip_str
from npsim.proxy.base import EndpointTable, KubeProxy
from npsim.proxy.iptables import cascade_probabilities, format_probability
from npsim.proxy.ipvs import IpvsTable
from npsim.proxy.userspace import RoundRobinTable

SERVICE_CIDR_BASE = int(ipaddress.IPv4Address("10.96.0.10"))
MASQ_MARK = "0x4000"  # masqueradeBit 14


def _hash(text: str, length: int) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:length]


def port_name_string(sp: ServicePortModel) -> str:
    """ServicePortName.String(): ``ns/name:port``, or ``ns/name`` for an unnamed port."""
    base = f"{sp.service.namespace}/{sp.service.name}"
    return f"{base}:{sp.port.name}" if sp.port.name else base


def chain(prefix: str, sp: ServicePortModel, endpoint: str = "") -> str:
    """iptables chain names (proxier.go portProtoHash, servicePortEndpointChainName)."""
    return prefix + _hash(port_name_string(sp) + sp.port.protocol.lower() + endpoint, 16)


def nft_chain(prefix: str, sp: ServicePortModel, endpoint: str = "") -> str:
    """nftables chain names (proxier.go servicePortChainNameBase, hashAndTruncate)."""
    name = (f"{sp.service.namespace}/{sp.service.name}/{sp.port.protocol.lower()}/"
            f"{sp.port.name}")
    if endpoint:
        ip, port = endpoint.rsplit(":", 1)
        name += f"__{ip}/{port}"
    return f"{prefix}{_hash(name, 8)}-{name}"


def cluster_ip(sp: ServicePortModel, cluster: Cluster) -> str:
    services = list(dict.fromkeys(s.service.name for s in cluster.service_ports))
    return ip_str(SERVICE_CIDR_BASE + services.index(sp.service.name))


def cluster_cidr(cluster: Cluster) -> str:
    """The local-traffic detector's range: the smallest network holding every pod CIDR."""
    nets = [n.pod_cidr for n in cluster.nodes]
    net = nets[0]
    while not all(n.subnet_of(net) for n in nets):
        net = net.supernet()
    return str(net)


def _selected(cluster: Cluster, service: str | None) -> list[ServicePortModel]:
    return [sp for sp in cluster.service_ports if service in (None, sp.service.name)]


# --- iptables ---------------------------------------------------------------------------


def iptables_rules(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    rules: list[str] = []
    local = cluster_cidr(cluster)
    for sp in _selected(cluster, service):
        table = proxy.tables[sp.index]
        spn = port_name_string(sp)
        svc, ext = chain("KUBE-SVC-", sp), chain("KUBE-EXT-", sp)
        proto, cip = sp.port.protocol.lower(), cluster_ip(sp, cluster)
        if table.n == 0:
            rules.append(f"# filter table: -A KUBE-EXTERNAL-SERVICES -m comment --comment "
                         f'"{spn} has no endpoints" -m addrtype --dst-type LOCAL -m {proto} '
                         f"-p {proto} --dport {sp.node_port} -j REJECT")
            continue
        chains += [ext, svc] + [chain("KUBE-SEP-", sp, k) for k in table.keys]
        rules.append(f'-A KUBE-SERVICES -m comment --comment "{spn} cluster IP" -m {proto} '
                     f"-p {proto} -d {cip} --dport {sp.port.port} -j {svc}")
        rules.append(f"-A KUBE-NODEPORTS -m comment --comment {spn} -m {proto} -p {proto} "
                     f"--dport {sp.node_port} -j {ext}")
        rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {spn} external '
                     f'destinations" -j KUBE-MARK-MASQ')
        rules.append(f"-A {ext} -j {svc}")
        rules.append(f'-A {svc} -m comment --comment "{spn} cluster IP" -m {proto} -p {proto} '
                     f"-d {cip} --dport {sp.port.port} ! -s {local} -j KUBE-MARK-MASQ")
        for key, p in zip(table.keys, cascade_probabilities(table.n), strict=True):
            stat = ("" if p is None else
                    f" -m statistic --mode random --probability {format_probability(p)}")
            rules.append(f'-A {svc} -m comment --comment "{spn} -> {key}"{stat} '
                         f"-j {chain('KUBE-SEP-', sp, key)}")
        for key in table.keys:
            sep = chain("KUBE-SEP-", sp, key)
            ip = key.rsplit(":", 1)[0]
            rules.append(f"-A {sep} -m comment --comment {spn} -s {ip} -j KUBE-MARK-MASQ")
            rules.append(f"-A {sep} -m comment --comment {spn} -m {proto} -p {proto} -j DNAT "
                         f"--to-destination {key}")
    rules.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
                 'this must be the last rule in this chain" -m addrtype --dst-type LOCAL '
                 "-j KUBE-NODEPORTS")
    rules += [f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
              f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
              f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
              '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
              'SNAT" -j MASQUERADE --random-fully']
    # KUBE-SERVICES first, as a packet meets them
    order = {"KUBE-SERVICES": 0, "KUBE-NODEPORTS": 1}
    rules.sort(key=lambda r: order.get(r.split()[1], 2) if r.startswith("-A") else 3)
    return "\n".join(["*nat", *(f":{c} - [0:0]" for c in dict.fromkeys(chains)), *rules,
                      "COMMIT"])


# --- nftables ---------------------------------------------------------------------------


def nft_rules(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    lines = ["table ip kube-proxy {", '\tcomment "rules for kube-proxy"', ""]
    nodeports, chains = [], []
    for sp in _selected(cluster, service):
        table = proxy.tables[sp.index]
        proto = sp.port.protocol.lower()
        if table.n == 0:
            nodeports.append(f'{proto} . {sp.node_port} comment "{port_name_string(sp)}" : '
                             "goto reject-chain")
            continue
        svc, ext = nft_chain("service-", sp), nft_chain("external-", sp)
        nodeports.append(f"{proto} . {sp.node_port} : goto {ext}")
        chains.append((ext, ["jump mark-for-masquerade", f"goto {svc}"]))
        vmap = " , ".join(f"{i} : goto {nft_chain('endpoint-', sp, k)}"
                          for i, k in enumerate(table.keys))
        chains.append((svc, [f"ip daddr {cluster_ip(sp, cluster)} ip saddr != "
                             f"{cluster_cidr(cluster)} jump mark-for-masquerade",
                             f"numgen random mod {table.n} vmap {{ {vmap} }}"]))
        for key in table.keys:
            chains.append((nft_chain("endpoint-", sp, key),
                           [f"ip saddr {key.rsplit(':', 1)[0]} jump mark-for-masquerade",
                            f"meta l4proto {proto} dnat to {key}"]))
    lines += ["\tmap service-nodeports {", "\t\ttype inet_proto . inet_service : verdict",
              '\t\tcomment "NodePort traffic"',
              "\t\telements = { " + ",\n\t\t\t     ".join(nodeports) + " }", "\t}", "",
              "\tchain nodeports {",
              f"\t\tip daddr {ip_str(proxy.node.ip)} meta l4proto . th dport vmap "
              "@service-nodeports", "\t}", ""]
    for name, body in chains:
        lines += [f"\tchain {name} {{", *(f"\t\t{r}" for r in body), "\t}", ""]
    lines += ["\tchain mark-for-masquerade {", f"\t\tmark set mark or {MASQ_MARK}", "\t}", "}"]
    return "\n".join(lines)


# --- IPVS ----------------------------------------------------------------------------------


def ipvsadm(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    lines = ["IP Virtual Server version 1.2.1 (size=4096)",
             "Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
    for sp in _selected(cluster, service):
        table = proxy.tables[sp.index]
        assert isinstance(table, IpvsTable)
        head = f"{sp.port.protocol}  {ip_str(proxy.node.ip)}:{sp.node_port}"[:33]
        lines.append(f"{head} {proxy.scheduler}")  # type: ignore[attr-defined]
        for key in sorted(table.keys, key=_numeric):  # ipvsadm sorts real servers numerically
            # ipvsadm pads every column, the last one included (trailing spaces)
            lines.append(f"  -> {key[:28]:<28} {'Masq':<7} {1:<6} "
                         f"{table.active.get(key, 0):<10} {table.inactive.get(key, 0):<10}")
    return "\n".join(lines)


def _numeric(key: str) -> tuple[int, int]:
    ip, port = key.rsplit(":", 1)
    return int(ipaddress.IPv4Address(ip)), int(port)


def userspace_table(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    lines = [f"# kube-proxy (userspace) on {proxy.node.name}: round robin over a shuffled list"]
    for sp in _selected(cluster, service):
        table = proxy.tables[sp.index]
        assert isinstance(table, RoundRobinTable)
        lines.append(f"{port_name_string(sp)} nodePort {sp.node_port} (next index "
                     f"{table.index if table.n else '-'}):")
        lines += [f"  {i}: {table.keys[e]}" for i, e in enumerate(getattr(table, "order", []))]
    return "\n".join(lines)


RENDERERS = {"iptables": iptables_rules, "nftables": nft_rules, "ipvs": ipvsadm,
             "userspace": userspace_table}


def render(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    return RENDERERS[proxy.mode](proxy, cluster, service)


# --- one connection's walk ------------------------------------------------------------


def trace(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel, client_ip: int,
          src_port: int, other_services: int = 0) -> Iterable[str]:
    """Steps of one new connection from ``client_ip:src_port`` to this node's NodePort."""
    node = proxy.node
    table: EndpointTable = proxy.tables[sp.index]
    spn = port_name_string(sp)
    yield (f"packet {ip_str(client_ip)}:{src_port} -> {ip_str(node.ip)}:{sp.node_port} "
           f"({sp.port.protocol}) arrives at {node.name}, kube-proxy mode {proxy.mode}")
    if table.n == 0:
        yield f"{spn} has no endpoints: filter KUBE-EXTERNAL-SERVICES REJECTs (connection refused)"
        return
    choice = table.pick(client_ip, src_port, 0.0)
    key = table.keys[choice]
    if proxy.mode == "iptables":
        vips = len(cluster.service_ports) + other_services
        yield (f"nat PREROUTING -> KUBE-SERVICES: {vips} cluster-IP rules compared, none "
               "match; last rule (dst-type LOCAL) -> KUBE-NODEPORTS")
        yield f"KUBE-NODEPORTS: --dport {sp.node_port} matches -> {chain('KUBE-EXT-', sp)}"
        yield f"{chain('KUBE-EXT-', sp)}: KUBE-MARK-MASQ (mark {MASQ_MARK}), then " \
              f"{chain('KUBE-SVC-', sp)}"
        for i, p in enumerate(cascade_probabilities(table.n)):
            label = "unconditional" if p is None else f"probability {format_probability(p)}"
            verdict = "MATCH" if i == choice else "no match"
            yield f"  rule {i + 1} -> {table.keys[i]} ({label}): {verdict}"
            if i == choice:
                break
        yield f"{chain('KUBE-SEP-', sp, key)}: DNAT --to-destination {key}"
    elif proxy.mode == "nftables":
        yield f"services: vmap lookup tcp . {sp.node_port} -> {nft_chain('external-', sp)}"
        yield "external chain: jump mark-for-masquerade; goto service chain"
        yield f"numgen random mod {table.n} = {choice} -> {nft_chain('endpoint-', sp, key)}"
        yield f"endpoint chain: dnat to {key}"
    elif proxy.mode == "ipvs":
        yield (f"KUBE-NODE-PORT ipset match -> KUBE-MARK-MASQ; IPVS virtual server "
               f"{ip_str(node.ip)}:{sp.node_port} scheduler {proxy.scheduler}")  # type: ignore[attr-defined]
        yield f"scheduler picks real server {key} (Masq)"
    else:
        yield f"REDIRECT to kube-proxy's proxy port; round robin picks {key}"
        yield "kube-proxy opens its own connection to the endpoint"
    ep = table.endpoints[choice]
    crossed = ep.node != node.index
    if proxy.pod_sees_node:
        source = ip_str(node.ip)
    else:
        source = ip_str(node.ip if crossed else node.bridge_ip)
    yield (f"POSTROUTING: MASQUERADE -> the pod sees source {source}"
           if not proxy.pod_sees_node else f"the pod sees kube-proxy's node address {source}")
    yield (f"cross-node hop {node.name} -> {cluster.nodes[ep.node].name}" if crossed else
           f"no hop: {cluster.pods[ep.pod].name} runs on {node.name}")
    yield f"served by pod {cluster.pods[ep.pod].name} ({key}) on {cluster.nodes[ep.node].name}"
