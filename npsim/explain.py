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

ClusterIPs are a manifest's ``spec.clusterIP``; when none is given they are numbered
from 10.96.0.10 for display.
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
    """The Service's own ``spec.clusterIP`` when the manifest gives one; otherwise a
    display address numbered from 10.96.0.10, skipping the addresses manifests took."""
    if sp.service.cluster_ip is not None:
        return sp.service.cluster_ip
    taken = {int(ipaddress.IPv4Address(s.service.cluster_ip)) for s in cluster.service_ports
             if s.service.cluster_ip is not None}
    services = list(dict.fromkeys(s.service.name for s in cluster.service_ports
                                  if s.service.cluster_ip is None))
    address = SERVICE_CIDR_BASE
    for _ in range(services.index(sp.service.name) + 1):
        while address in taken:
            address += 1
        address += 1
    return ip_str(address - 1)


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


def _lb_rules(svc_chain: str, table: EndpointTable, sp: ServicePortModel,
              timeout: int | None) -> list[str]:
    """The load-balancing rules of a KUBE-SVC-/KUBE-SVL- chain: affinity checks first
    (``-m recent --rcheck``), then the statistic cascade (writeServiceToEndpointRules)."""
    spn = port_name_string(sp)
    rules = []
    if timeout is not None:
        for key in table.keys:
            sep = chain("KUBE-SEP-", sp, key)
            rules.append(f'-A {svc_chain} -m comment --comment "{spn} -> {key}" -m recent '
                         f"--name {sep} --rcheck --seconds {timeout} --reap -j {sep}")
    for key, p in zip(table.keys, cascade_probabilities(table.n), strict=True):
        stat = "" if p is None else (
            f" -m statistic --mode random --probability {format_probability(p)}")
        rules.append(f'-A {svc_chain} -m comment --comment "{spn} -> {key}"{stat} '
                     f"-j {chain('KUBE-SEP-', sp, key)}")
    return rules


def iptables_rules(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    rules: list[str] = []
    filters: list[str] = []
    local = cluster_cidr(cluster)
    for sp in _selected(cluster, service):
        view = proxy.views[sp.index]
        spn = port_name_string(sp)
        svc, ext, svl = chain("KUBE-SVC-", sp), chain("KUBE-EXT-", sp), chain("KUBE-SVL-", sp)
        proto, cip = sp.port.protocol.lower(), cluster_ip(sp, cluster)
        nodeport = f"-m addrtype --dst-type LOCAL -m {proto} -p {proto} --dport {sp.node_port}"
        if not view.any:
            filters.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{spn} has no '
                           f'endpoints" {nodeport} -j REJECT')
            continue
        timeout = (sp.service.affinity_timeout if sp.service.session_affinity == "ClientIP"
                   else None)
        endpoints = dict.fromkeys(view.cluster.keys)
        chains += [ext, svc]
        rules.append(f'-A KUBE-SERVICES -m comment --comment "{spn} cluster IP" -m {proto} '
                     f"-p {proto} -d {cip} --dport {sp.port.port} -j {svc}")
        if sp.node_port:
            rules.append(f"-A KUBE-NODEPORTS -m comment --comment {spn} -m {proto} "
                         f"-p {proto} --dport {sp.node_port} -j {ext}")
        if view.local_policy:  # the short-circuits, then the local endpoints or nothing
            rules += [
                f'-A {ext} -m comment --comment "pod traffic for {spn} external destinations" '
                f"-s {local} -j {svc}",
                f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {spn} external '
                f'destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
                f'-A {ext} -m comment --comment "route LOCAL traffic for {spn} external '
                f'destinations" -m addrtype --src-type LOCAL -j {svc}']
            if view.local.n:
                chains.append(svl)
                rules.append(f"-A {ext} -j {svl}")
                rules += _lb_rules(svl, view.local, sp, timeout)
                endpoints.update(dict.fromkeys(view.local.keys))
            else:
                filters.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{spn} has no '
                               f'local endpoints" {nodeport} -j DROP')
        else:
            rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {spn} '
                         'external destinations" -j KUBE-MARK-MASQ')
            rules.append(f"-A {ext} -j {svc}")
        rules.append(f'-A {svc} -m comment --comment "{spn} cluster IP" -m {proto} -p {proto} '
                     f"-d {cip} --dport {sp.port.port} ! -s {local} -j KUBE-MARK-MASQ")
        rules += _lb_rules(svc, view.cluster, sp, timeout)
        recent = "" if timeout is None else " -m recent --name {sep} --set"
        for key in endpoints:
            sep = chain("KUBE-SEP-", sp, key)
            chains.append(sep)
            ip = key.rsplit(":", 1)[0]
            rules.append(f"-A {sep} -m comment --comment {spn} -s {ip} -j KUBE-MARK-MASQ")
            rules.append(f"-A {sep} -m comment --comment {spn}{recent.format(sep=sep)} "
                         f"-m {proto} -p {proto} -j DNAT --to-destination {key}")
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
    rules.sort(key=lambda r: order.get(r.split()[1], 2))
    out = ["*nat", *(f":{c} - [0:0]" for c in dict.fromkeys(chains)), *rules, "COMMIT"]
    if filters:
        out += ["*filter", ":KUBE-EXTERNAL-SERVICES - [0:0]", *filters, "COMMIT"]
    return "\n".join(out)


# --- nftables ---------------------------------------------------------------------------


def _numgen(chain_name: str, table: EndpointTable, sp: ServicePortModel,
            timeout: int | None) -> list[str]:
    """An nftables service/local chain: affinity set checks, then numgen over endpoints."""
    rules = []
    if timeout is not None:
        for key in table.keys:
            rules.append(f"ip saddr @{nft_chain('affinity-', sp, key)} goto "
                         f"{nft_chain('endpoint-', sp, key)}")
    vmap = " , ".join(f"{i} : goto {nft_chain('endpoint-', sp, k)}"
                      for i, k in enumerate(table.keys))
    return [*rules, f"numgen random mod {table.n} vmap {{ {vmap} }}"]


def nft_rules(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    lines = ["table ip kube-proxy {", '\tcomment "rules for kube-proxy"', ""]
    nodeports, chains, sets = [], [], []
    local_range = cluster_cidr(cluster)
    for sp in _selected(cluster, service):
        view = proxy.views[sp.index]
        spn = port_name_string(sp)
        proto = sp.port.protocol.lower()
        if not view.any:
            nodeports.append(f'{proto} . {sp.node_port} comment "{spn}" : goto reject-chain')
            continue
        timeout = (sp.service.affinity_timeout if sp.service.session_affinity == "ClientIP"
                   else None)
        svc, ext = nft_chain("service-", sp), nft_chain("external-", sp)
        loc = nft_chain("local-", sp)
        endpoints = dict.fromkeys(view.cluster.keys)
        if view.local_policy and not view.local.n:
            nodeports.append(f'{proto} . {sp.node_port} comment "{spn}" : drop')
        else:
            nodeports.append(f"{proto} . {sp.node_port} : goto {ext}")
        if view.local_policy:
            chains.append((ext, [f"ip saddr {local_range} goto {svc}",
                                 "fib saddr type local jump mark-for-masquerade",
                                 f"fib saddr type local goto {svc}"]
                           + ([f"goto {loc}"] if view.local.n else [])))
            if view.local.n:
                chains.append((loc, _numgen(loc, view.local, sp, timeout)))
                endpoints.update(dict.fromkeys(view.local.keys))
        else:
            chains.append((ext, ["jump mark-for-masquerade", f"goto {svc}"]))
        chains.append((svc, [f"ip daddr {cluster_ip(sp, cluster)} ip saddr != {local_range} "
                             "jump mark-for-masquerade",
                             *_numgen(svc, view.cluster, sp, timeout)]))
        for key in endpoints:
            update = ([f"update @{nft_chain('affinity-', sp, key)} {{ ip saddr }}"]
                      if timeout is not None else [])
            if timeout is not None:
                sets.append((nft_chain("affinity-", sp, key), timeout))
            chains.append((nft_chain("endpoint-", sp, key),
                           [f"ip saddr {key.rsplit(':', 1)[0]} jump mark-for-masquerade",
                            *update, f"meta l4proto {proto} dnat to {key}"]))
    for name, timeout in sets:
        lines += [f"\tset {name} {{", "\t\ttype ipv4_addr", "\t\tflags dynamic,timeout",
                  f"\t\ttimeout {timeout}s", "\t}", ""]
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
    """Steps of one new connection from an external ``client_ip:src_port`` to this node's
    NodePort, decided by the same route and tables the simulator uses."""
    node = proxy.node
    view = proxy.views[sp.index]
    spn = port_name_string(sp)
    yield (f"packet {ip_str(client_ip)}:{src_port} -> {ip_str(node.ip)}:{sp.node_port} "
           f"({sp.port.protocol}) arrives at {node.name}, kube-proxy mode {proxy.mode}")
    if not view.any:
        yield f"{spn} has no endpoints: filter KUBE-EXTERNAL-SERVICES REJECTs (connection refused)"
        return
    table, snat, reply_lost = proxy.route(view, "external", False, False)
    ext = chain("KUBE-EXT-", sp)
    svc = chain("KUBE-SVL-" if view.local_policy else "KUBE-SVC-", sp)
    if proxy.mode == "iptables":
        vips = len(cluster.service_ports) + other_services
        yield (f"nat PREROUTING -> KUBE-SERVICES: {vips} cluster-IP rules compared, none "
               "match; last rule (dst-type LOCAL) -> KUBE-NODEPORTS")
        yield f"KUBE-NODEPORTS: --dport {sp.node_port} matches -> {ext}"
        if view.local_policy:
            yield (f"{ext}: not pod traffic, not from this node: no masquerade (Local)"
                   + (f"; -> {svc}" if table.n else ""))
        else:
            yield f"{ext}: KUBE-MARK-MASQ (mark {MASQ_MARK}), then {svc}"
    elif proxy.mode == "nftables":
        yield f"services: vmap lookup tcp . {sp.node_port} -> {nft_chain('external-', sp)}"
    elif proxy.mode == "ipvs":
        yield (f"IPVS virtual server {ip_str(node.ip)}:{sp.node_port} scheduler "
               f"{proxy.scheduler}")  # type: ignore[attr-defined]
    else:
        yield "REDIRECT to kube-proxy's proxy port (the kube-proxy process)"
    if table.n == 0:
        yield (f"{spn} has no local endpoints on {node.name}: filter KUBE-EXTERNAL-SERVICES "
               "DROPs the packet; the client waits for its connect timeout")
        return
    affinity = view.affinity
    choice = (affinity.pick(table, client_ip, src_port, 0.0) if affinity is not None
              else table.pick(client_ip, src_port, 0.0))
    key = table.keys[choice]
    if proxy.mode == "iptables":
        if affinity is not None:
            yield (f"  affinity: -m recent --rcheck per endpoint for {ip_str(client_ip)} "
                   "(first connection: no entry), then the cascade")
        for i, p in enumerate(cascade_probabilities(table.n)):
            label = "unconditional" if p is None else f"probability {format_probability(p)}"
            verdict = "MATCH" if i == choice else "no match"
            yield f"  rule {i + 1} -> {table.keys[i]} ({label}): {verdict}"
            if i == choice:
                break
        yield f"{chain('KUBE-SEP-', sp, key)}: DNAT --to-destination {key}"
    elif proxy.mode == "nftables":
        yield f"numgen random mod {table.n} = {choice} -> {nft_chain('endpoint-', sp, key)}"
        yield f"endpoint chain: dnat to {key}"
    elif proxy.mode == "ipvs":
        yield f"scheduler picks real server {key} (Masq)"
    else:
        yield f"round robin picks {key}; kube-proxy opens its own connection to it"
    ep = table.endpoints[choice]
    crossed = ep.node != node.index
    if proxy.pod_sees_node:
        yield f"the pod sees kube-proxy's node address {ip_str(node.ip)}"
    elif snat:
        seen = node.ip if crossed else node.bridge_ip
        yield f"POSTROUTING: MASQUERADE -> the pod sees source {ip_str(seen)}"
    else:
        yield f"no masquerade: the pod sees the client's address {ip_str(client_ip)}"
    yield (f"cross-node hop {node.name} -> {cluster.nodes[ep.node].name}" if crossed else
           f"no hop: {cluster.pods[ep.pod].name} runs on {node.name}")
    if reply_lost:
        yield ("the pod's reply carries its own address and the client discards it: the "
               "connection times out (IPVS, Local policy, no local endpoint)")
        return
    yield f"served by pod {cluster.pods[ep.pod].name} ({key}) on {cluster.nodes[ep.node].name}"
