"""``npsim explain``: what kube-proxy programs on a node, and one connection's walk.

The text is rendered from the very :class:`~npsim.proxy.base.EndpointTable` objects the
simulator decides with, so the two cannot disagree. Formats follow kube-proxy's own
output (research notes in docs/kube-proxy-modes.md):

* iptables: the ``iptables-restore`` input kube-proxy writes (``-A`` lines, chain names
  ``KUBE-SVC-`` + first 16 base32 chars of sha256(servicePortName + protocol), endpoint
  chains hashing also "IP:port"; probabilities ``%0.10f``). ``iptables-save`` would show
  the kernel's rounding (``0.33333333349``);
* nftables: the transaction kube-proxy sends (``add table/chain/rule/element`` lines, as
  its TestOverallNFTablesRules dumps them), chain names ``service-`` + 8 base32 chars of
  sha256("ns/name/proto/port") + "-" + that string;
* IPVS: ``ipvsadm -Ln`` columns as ipvsadm.c prints them (ClusterIP and every node
  address, ``persistent`` for ClientIP), then ``ipset save`` and the iptables glue.

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
from npsim.scenario.firewall import TRAVERSES
from npsim.sim.guard import Guard

SERVICE_CIDR_BASE = int(ipaddress.IPv4Address("10.96.0.10"))
SERVICE_CIDR = "10.96.0.0/12"  # kube-apiserver --service-cluster-ip-range (kubeadm default)
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
    """The local-traffic detector's range (kube-proxy --cluster-cidr)."""
    return str(cluster.pod_network)


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
    """The ``iptables-restore`` input kube-proxy writes: ``*filter`` then ``*nat``
    (proxier.go syncProxyRules), then the hook rules it installs separately."""
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
        if sp.health_check_node_port:
            filters.append(f'-A KUBE-NODEPORTS -m comment --comment "{spn} health check node '
                           f'port" -m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT')
        if not view.any:
            filters.append(f'-A KUBE-SERVICES -m comment --comment "{spn} has no endpoints" '
                           f"-m {proto} -p {proto} -d {cip} --dport {sp.port.port} -j REJECT")
            if sp.node_port:
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
    filter_order = {"KUBE-NODEPORTS": 0, "KUBE-SERVICES": 1, "KUBE-EXTERNAL-SERVICES": 2}
    filters.sort(key=lambda r: filter_order[r.split()[1]])
    out = ["*filter", *(f":{c} - [0:0]" for c in FILTER_CHAINS), *filters, *KUBE_FORWARD,
           "COMMIT", "*nat", *(f":{c} - [0:0]" for c in dict.fromkeys(chains)), *rules,
           "COMMIT"]
    return "\n".join(out + ["", *IPTABLES_HOOKS])


FILTER_CHAINS = ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD",
                 "KUBE-PROXY-FIREWALL")
# the INVALID drop is written while nf_conntrack_tcp_be_liberal is 0 (the default)
KUBE_FORWARD = (
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark '
    f"{MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
    "--ctstate RELATED,ESTABLISHED -j ACCEPT")
# iptablesJumpChains: inserted with ``iptables -I`` once, outside the restore input
IPTABLES_HOOKS = (
    "# hooks (iptablesJumpChains, inserted at the top of the built-in chains):",
    "# -t filter INPUT   -m conntrack --ctstate NEW -m comment --comment \"kubernetes "
    "externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    "# -t filter FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes "
    "externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES",
    "# -t filter INPUT   -m comment --comment \"kubernetes health check service ports\" "
    "-j KUBE-NODEPORTS",
    "# -t filter FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service "
    "portals\" -j KUBE-SERVICES",
    "# -t filter OUTPUT  -m conntrack --ctstate NEW -m comment --comment \"kubernetes service "
    "portals\" -j KUBE-SERVICES",
    "# -t filter FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD",
    "# -t nat PREROUTING  -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "# -t nat OUTPUT      -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "# -t nat POSTROUTING -m comment --comment \"kubernetes postrouting rules\" "
    "-j KUBE-POSTROUTING")


# --- nftables ---------------------------------------------------------------------------


def _numgen(table: EndpointTable, sp: ServicePortModel, timeout: int | None) -> list[str]:
    """A service/local chain's body: affinity set checks, then numgen over endpoints."""
    rules = []
    if timeout is not None:
        for key in table.keys:
            rules.append(f"ip saddr @{nft_chain('affinity-', sp, key)} goto "
                         f"{nft_chain('endpoint-', sp, key)}")
    vmap = " , ".join(f"{i} : goto {nft_chain('endpoint-', sp, k)}"
                      for i, k in enumerate(table.keys))
    return [*rules, f"numgen random mod {table.n} vmap {{ {vmap} }}"]


def nft_base(node_ip: str, pod_cidr: str) -> list[str]:
    """The fixed part of the ``kube-proxy`` table (setupNFTables), as kube-proxy's
    TestOverallNFTablesRules ``baseRules`` dump it. NodePorts are checked against
    ``@nodeport-ips`` (``--nodeport-addresses primary``, the nftables default)."""
    t = "ip kube-proxy"
    return [
        f'add table {t} {{ comment "rules for kube-proxy" ; }}',
        "",
        f'add set {t} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}',
        f'add set {t} nodeport-ips {{ type ipv4_addr ; comment "IPs that accept NodePort '
        'traffic" ; }',
        "",
        f"add map {t} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; "
        'comment "destinations that are subject to LoadBalancerSourceRanges" ; }',
        f"add map {t} no-endpoint-nodeports {{ type inet_proto . inet_service : verdict ; "
        'comment "vmap to drop or reject packets to service nodeports with no endpoints" ; }',
        f"add map {t} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : "
        'verdict ; comment "vmap to drop or reject packets to services with no endpoints" ; }',
        f"add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; "
        'comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }',
        f"add map {t} service-nodeports {{ type inet_proto . inet_service : verdict ; "
        'comment "NodePort traffic" ; }',
        "",
        f"add chain {t} cluster-ips-check",
        f"add chain {t} filter-prerouting-pre-dnat {{ type filter hook prerouting priority "
        "-110 ; }",
        f"add chain {t} filter-output-pre-dnat {{ type filter hook output priority -110 ; }}",
        f"add chain {t} filter-forward {{ type filter hook forward priority 0 ; }}",
        f"add chain {t} filter-input {{ type filter hook input priority 0 ; }}",
        f"add chain {t} filter-output {{ type filter hook output priority 0 ; }}",
        f"add chain {t} firewall-check",
        f"add chain {t} mark-for-masquerade",
        f"add chain {t} masquerading",
        f"add chain {t} nat-output {{ type nat hook output priority -100 ; }}",
        f"add chain {t} nat-postrouting {{ type nat hook postrouting priority 100 ; }}",
        f"add chain {t} nat-prerouting {{ type nat hook prerouting priority -100 ; }}",
        f"add chain {t} nodeport-endpoints-check",
        f'add chain {t} reject-chain {{ comment "helper for @no-endpoint-services / '
        '@no-endpoint-nodeports" ; }',
        f"add chain {t} services",
        f"add chain {t} service-endpoints-check",
        "",
        f'add rule {t} cluster-ips-check ip daddr @cluster-ips reject comment "Reject traffic '
        'to invalid ports of ClusterIPs"',
        f"add rule {t} cluster-ips-check ip daddr {{ {SERVICE_CIDR} }} drop comment \"Drop "
        'traffic to unallocated ClusterIPs"',
        f"add rule {t} filter-prerouting-pre-dnat ct state new jump firewall-check",
        f"add rule {t} filter-forward ct state new jump service-endpoints-check",
        f"add rule {t} filter-forward ct state new jump cluster-ips-check",
        f"add rule {t} filter-input ct state new jump nodeport-endpoints-check",
        f"add rule {t} filter-input ct state new jump service-endpoints-check",
        f"add rule {t} filter-output ct state new jump service-endpoints-check",
        f"add rule {t} filter-output-pre-dnat ct state new jump firewall-check",
        f"add rule {t} filter-output ct state new jump cluster-ips-check",
        f"add rule {t} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips",
        f"add rule {t} mark-for-masquerade mark set mark or {MASQ_MARK}",
        f"add rule {t} masquerading mark and {MASQ_MARK} == 0 return",
        f"add rule {t} masquerading mark set mark xor {MASQ_MARK}",
        f"add rule {t} masquerading masquerade fully-random",
        f"add rule {t} nat-output jump services",
        f"add rule {t} nat-postrouting jump masquerading",
        f"add rule {t} nat-prerouting jump services",
        f"add rule {t} nodeport-endpoints-check ip daddr @nodeport-ips meta l4proto . th dport "
        "vmap @no-endpoint-nodeports",
        f"add rule {t} reject-chain reject",
        f"add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services ip daddr @nodeport-ips meta l4proto . th dport vmap "
        "@service-nodeports",
        "",
        f"add element {t} nodeport-ips {{ {node_ip} }}",
        f"add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport vmap "
        "@no-endpoint-services",
    ]


def nft_service(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel) -> list[str]:
    """One Service port's chains, sets and map elements (syncProxyRules), in the order
    kube-proxy's TestOverallNFTablesRules lists them."""
    t = "ip kube-proxy"
    view = proxy.views[sp.index]
    spn = port_name_string(sp)
    proto = sp.port.protocol.lower()
    cip = cluster_ip(sp, cluster)
    pods = cluster_cidr(cluster)
    out = [f"# {spn}"]
    if not view.any:
        out += [f"add element {t} cluster-ips {{ {cip} }}",
                f'add element {t} no-endpoint-services {{ {cip} . {proto} . {sp.port.port} '
                f'comment "{spn}" : goto reject-chain }}']
        if sp.node_port:
            out.append(f"add element {t} no-endpoint-nodeports {{ {proto} . {sp.node_port} "
                       f'comment "{spn}" : goto reject-chain }}')
        return out
    timeout = (sp.service.affinity_timeout if sp.service.session_affinity == "ClientIP"
               else None)
    svc, ext, loc = (nft_chain("service-", sp), nft_chain("external-", sp),
                     nft_chain("local-", sp))
    endpoints = dict.fromkeys(view.cluster.keys)
    if view.local_policy:
        endpoints.update(dict.fromkeys(view.local.keys))
    if timeout is not None:
        out += [f"add set {t} {nft_chain('affinity-', sp, key)} {{ type ipv4_addr ; flags "
                f"dynamic,timeout ; timeout {timeout}s ; }}" for key in endpoints]
    out += [f"add chain {t} {svc}",
            f"add rule {t} {svc} ip daddr {cip} ip saddr != {pods} jump mark-for-masquerade",
            *(f"add rule {t} {svc} {r}" for r in _numgen(view.cluster, sp, timeout))]
    if sp.node_port:
        out.append(f"add chain {t} {ext}")
        if view.local_policy:
            out += [f'add rule {t} {ext} ip saddr {pods} goto {svc} comment "short-circuit '
                    'pod traffic"',
                    f'add rule {t} {ext} fib saddr type local jump mark-for-masquerade comment '
                    '"masquerade local traffic"',
                    f'add rule {t} {ext} fib saddr type local goto {svc} comment "short-circuit '
                    'local traffic"']
            if view.local.n:
                out.append(f"add rule {t} {ext} goto {loc}")
                out += [f"add chain {t} {loc}",
                        *(f"add rule {t} {loc} {r}" for r in _numgen(view.local, sp, timeout))]
        else:
            out += [f"add rule {t} {ext} jump mark-for-masquerade",
                    f"add rule {t} {ext} goto {svc}"]
    for key in endpoints:
        ep = nft_chain("endpoint-", sp, key)
        out += [f"add chain {t} {ep}",
                f"add rule {t} {ep} ip saddr {key.rsplit(':', 1)[0]} jump mark-for-masquerade"]
        if timeout is not None:
            out.append(f"add rule {t} {ep} update @{nft_chain('affinity-', sp, key)} "
                       "{ ip saddr }")
        out.append(f"add rule {t} {ep} meta l4proto {proto} dnat to {key}")
    out += ["", f"add element {t} cluster-ips {{ {cip} }}",
            f"add element {t} service-ips {{ {cip} . {proto} . {sp.port.port} : goto {svc} }}"]
    if sp.node_port:
        out.append(f"add element {t} service-nodeports {{ {proto} . {sp.node_port} : "
                   f"goto {ext} }}")
        if view.local_policy and not view.local.n:
            out.append(f"add element {t} no-endpoint-nodeports {{ {proto} . {sp.node_port} "
                       f'comment "{spn}" : drop }}')
    return out


def nft_rules(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    """The ``kube-proxy`` table as the transaction kube-proxy sends (``nft -f`` input;
    the very lines of its unit tests' expected dumps)."""
    lines = nft_base(ip_str(proxy.node.ip), cluster_cidr(cluster))
    for sp in _selected(cluster, service):
        lines += ["", *nft_service(proxy, cluster, sp)]
    return "\n".join(lines)


# --- IPVS ----------------------------------------------------------------------------------


def _virtual_server(head: str, scheduler: str, timeout: int | None, table: object) -> list[str]:
    """One ``ipvsadm -Ln`` virtual server and its real servers (ipvsadm.c
    print_service_entry: ``persistent <timeout>`` after the scheduler for ClientIP)."""
    flags = f" persistent {timeout}" if timeout is not None else ""
    lines = [f"{head[:33]} {scheduler}{flags}"]
    keys = getattr(table, "keys", [])
    active = getattr(table, "active", {})
    inactive = getattr(table, "inactive", {})
    draining = getattr(table, "graceful", {})  # removed, weight 0 until their counts are 0
    # ipvsadm sorts real servers numerically
    for key in sorted([*keys, *draining], key=_numeric):
        # ipvsadm pads every column, the last one included (trailing spaces)
        weight = 0 if key in draining else 1
        lines.append(f"  -> {key[:28]:<28} {'Masq':<7} {weight:<6} "
                     f"{active.get(key, 0):<10} {inactive.get(key, 0):<10}")
    return lines


def node_addresses(proxy: KubeProxy) -> list[int]:
    """The node's local addresses IPVS binds NodePorts to (every local address except
    loopback and kube-ipvs0): here the node address and the pod bridge (cni0)."""
    return [proxy.node.ip, proxy.node.bridge_ip]


def ipvsadm(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    """``ipvsadm -Ln``: a ClusterIP virtual server and one NodePort virtual server per
    node address for each Service port (proxier.go syncProxyRules), then the ipsets and
    iptables rules that decide SNAT (writeIptablesRules)."""
    lines = ["IP Virtual Server version 1.2.1 (size=4096)",
             "Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
    scheduler = proxy.scheduler  # type: ignore[attr-defined]
    for sp in _selected(cluster, service):
        view = proxy.views[sp.index]
        timeout = (sp.service.affinity_timeout if sp.service.session_affinity == "ClientIP"
                   else None)
        table = proxy.tables[sp.index]
        assert isinstance(table, IpvsTable)
        proto = sp.port.protocol
        # the ClusterIP virtual server's own counters when a population calls it
        internal = (view.internal if proxy.serves_clusterip
                    else _Unused(view.cluster.keys))
        lines += _virtual_server(f"{proto}  {cluster_ip(sp, cluster)}:{sp.port.port}",
                                 scheduler, timeout, internal)
        if not sp.node_port:
            continue
        for address in node_addresses(proxy):
            # the simulated clients reach the primary address; the others carry no counts
            lines += _virtual_server(f"{proto}  {ip_str(address)}:{sp.node_port}", scheduler,
                                     timeout, table if address == proxy.node.ip else
                                     _Unused(table.keys))
    return "\n".join(lines + ["", *ipvs_ipsets(proxy, cluster, service), "",
                               *ipvs_iptables(cluster, service)])


class _Unused:
    """Real servers of a virtual server no simulated client uses (counters 0)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys


def ipvs_ipsets(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> list[str]:
    """``ipset save`` of the sets kube-proxy fills (proxier.go ipsetInfo)."""
    members: dict[str, list[str]] = {"KUBE-CLUSTER-IP": [], "KUBE-LOOP-BACK": []}
    kinds = {"KUBE-CLUSTER-IP": "hash:ip,port", "KUBE-LOOP-BACK": "hash:ip,port,ip"}
    for sp in _selected(cluster, service):
        view = proxy.views[sp.index]
        proto = sp.port.protocol
        members["KUBE-CLUSTER-IP"].append(f"{cluster_ip(sp, cluster)},{proto.lower()}:"
                                          f"{sp.port.port}")
        for ep in proxy.tables[sp.index].endpoints:
            if ep.node == proxy.node.index:
                ip = ip_str(ep.ip)
                members["KUBE-LOOP-BACK"].append(f"{ip},{proto.lower()}:{ep.port},{ip}")
        if sp.node_port:
            sets = [f"KUBE-NODE-PORT-{proto}"]
            if view.local_policy:
                sets.append(f"KUBE-NODE-PORT-LOCAL-{proto}")
            for name in sets:
                kinds[name] = "bitmap:port range 0-65535" if proto != "SCTP" else "hash:ip,port"
                members.setdefault(name, []).append(str(sp.node_port))
        if sp.health_check_node_port:
            kinds["KUBE-HEALTH-CHECK-NODE-PORT"] = "bitmap:port range 0-65535"
            members.setdefault("KUBE-HEALTH-CHECK-NODE-PORT", []).append(
                str(sp.health_check_node_port))
    out = []
    for name, entries in members.items():
        out.append(f"create {name} {kinds[name]}")
        out += [f"add {name} {e}" for e in dict.fromkeys(entries)]
    return out


def ipvs_iptables(cluster: Cluster, service: str | None = None) -> list[str]:
    """The iptables glue of IPVS mode: the LOCAL NodePort set RETURNs before the plain
    set marks for masquerade ("kubeNodePortLocalSetTCP must be prior to
    kubeNodePortSetTCP"); IPVS DNATs, KUBE-POSTROUTING masquerades."""
    protocols = sorted({sp.port.protocol for sp in _selected(cluster, service)
                        if sp.node_port})
    local = {sp.port.protocol for sp in _selected(cluster, service)
             if sp.node_port and sp.service.external_traffic_policy == "Local"}
    nat = ["*nat", ":KUBE-SERVICES - [0:0]", ":KUBE-POSTROUTING - [0:0]",
           ":KUBE-NODE-PORT - [0:0]", ":KUBE-LOAD-BALANCER - [0:0]", ":KUBE-MARK-MASQ - [0:0]",
           '-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source '
           'ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src '
           "-j MASQUERADE",
           f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
           f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
           '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
           'SNAT" -j MASQUERADE --random-fully',
           f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
           '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for '
           'masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst '
           f"! -s {cluster_cidr(cluster)} -j KUBE-MARK-MASQ",
           "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT"]
    for proto in protocols:
        low = proto.lower()
        if proto in local:
            nat.append(f'-A KUBE-NODE-PORT -p {low} -m comment --comment "Kubernetes nodeport '
                       f'{proto} port with externalTrafficPolicy=local" -m set --match-set '
                       f"KUBE-NODE-PORT-LOCAL-{proto} dst -j RETURN")
        nat.append(f'-A KUBE-NODE-PORT -p {low} -m comment --comment "Kubernetes nodeport '
                   f'{proto} port for masquerade purpose" -m set --match-set '
                   f"KUBE-NODE-PORT-{proto} dst -j KUBE-MARK-MASQ")
    nat += ["-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT", "COMMIT"]
    filt = ["*filter", ":KUBE-FORWARD - [0:0]", ":KUBE-NODE-PORT - [0:0]",
            ":KUBE-PROXY-FIREWALL - [0:0]", *KUBE_FORWARD[1:],
            '-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set '
            "--match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT", "COMMIT"]
    return filt + nat


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
          src_port: int, other_services: int = 0, guard: Guard | None = None) -> Iterable[str]:
    """Steps of one new connection from an external ``client_ip:src_port`` to this node's
    NodePort, decided by the same route, tables and firewalls the simulator uses."""
    node = proxy.node
    view = proxy.views[sp.index]
    spn = port_name_string(sp)
    proto = sp.port.protocol.lower()
    yield (f"packet {ip_str(client_ip)}:{src_port} -> {ip_str(node.ip)}:{sp.node_port} "
           f"({sp.port.protocol}) arrives at {node.name}, kube-proxy mode {proxy.mode}")
    table, snat, reply_lost = (proxy.route(view, "external", False, False) if view.any
                               else (None, False, False))
    served = table is not None and table.n > 0
    affinity = view.affinity
    choice = 0
    late: list[str] = []
    stop_late = None
    if served:
        choice = (affinity.pick(table, client_ip, src_port, 0.0) if affinity is not None
                  else table.pick(client_ip, src_port, 0.0))
    if served and guard is not None:
        # the firewalls a packet meets before kube-proxy's choice come first
        ep = table.endpoints[choice]
        steps: list[str] = []
        stop = guard.check(node.index, "external", client_ip, sp.port.protocol, sp.node_port,
                           snat, ep.pod, ep.port, 0.0, steps)
        guard.pending = []  # a trace opens no connection
        late = [x for x in steps if x.startswith(("node firewall FORWARD", "NetworkPolicy"))]
        early = [x for x in steps if x not in late]
        yield from early
        if stop is not None and not late:  # stopped before kube-proxy's choice
            yield _stopped(stop.times_out)
            return
        stop_late = stop
    if proxy.mode == "nftables":
        yield from _nft_entry(sp, view, table, spn, proto)
    elif proxy.mode == "iptables":
        yield from _iptables_entry(cluster, sp, view, table, spn, other_services)
    elif proxy.mode == "ipvs":
        yield from _ipvs_entry(proxy, sp, view, table, proto)
    else:
        yield "REDIRECT to kube-proxy's proxy port (the kube-proxy process)"
        if not view.any:
            yield f"{spn} has no endpoints: kube-proxy closes the connection (refused)"
    if not served:
        return
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
        if affinity is not None:
            yield (f"  affinity: ip saddr @affinity-... per endpoint for {ip_str(client_ip)} "
                   "(first connection: in no set), then numgen")
        yield f"numgen random mod {table.n} = {choice} -> {nft_chain('endpoint-', sp, key)}"
        if affinity is not None:
            yield f"endpoint chain: update @{nft_chain('affinity-', sp, key)} {{ ip saddr }}"
        yield f"endpoint chain: dnat to {key}"
    elif proxy.mode == "ipvs":
        yield f"scheduler picks real server {key} (Masq)"
        if affinity is not None:
            yield (f"persistent {sp.service.affinity_timeout}: a template pins "
                   f"{ip_str(client_ip)} to {key} on this virtual server")
    else:
        yield f"round robin picks {key}; kube-proxy opens its own connection to it"
    ep = table.endpoints[choice]
    crossed = ep.node != node.index
    forward = [x for x in late if x.startswith("node firewall FORWARD")]
    yield from forward  # filter FORWARD runs before POSTROUTING
    if stop_late is not None and len(forward) == len(late):
        yield _stopped(stop_late.times_out)
        return
    if proxy.pod_sees_node:
        yield f"the pod sees kube-proxy's node address {ip_str(node.ip)}"
    elif snat:
        seen = node.ip if crossed else node.bridge_ip
        how = ("nat-postrouting -> masquerading: mark set, masquerade fully-random"
               if proxy.mode == "nftables" else
               "POSTROUTING -> KUBE-POSTROUTING: mark set, MASQUERADE --random-fully")
        yield f"{how} -> the pod sees source {ip_str(seen)}"
    else:
        yield f"no masquerade: the pod sees the client's address {ip_str(client_ip)}"
    yield (f"cross-node hop {node.name} -> {cluster.nodes[ep.node].name}" if crossed else
           f"no hop: {cluster.pods[ep.pod].name} runs on {node.name}")
    yield from late[len(forward):]  # NetworkPolicy, at the pod
    if stop_late is not None:
        yield _stopped(stop_late.times_out)
        return
    if reply_lost:
        yield ("the pod's reply carries its own address and the client discards it: the "
               "connection times out (IPVS, Local policy, no local endpoint)")
        return
    yield f"served by pod {cluster.pods[ep.pod].name} ({key}) on {cluster.nodes[ep.node].name}"


def _stopped(times_out: bool) -> str:
    return ("the client waits for its connect timeout" if times_out else
            "the client is refused at once (ICMP port unreachable)")


def _iptables_entry(cluster: Cluster, sp: ServicePortModel, view: object, table: object,
                    spn: str, other_services: int) -> Iterable[str]:
    if not view.any:  # type: ignore[attr-defined]
        yield (f"filter INPUT -> KUBE-EXTERNAL-SERVICES: \"{spn} has no endpoints\" REJECT "
               "(ICMP port unreachable: connection refused)")
        return
    ext = chain("KUBE-EXT-", sp)
    local = view.local_policy  # type: ignore[attr-defined]
    svc = chain("KUBE-SVL-" if local else "KUBE-SVC-", sp)
    vips = len(cluster.service_ports) + other_services
    yield (f"nat PREROUTING -> KUBE-SERVICES: {vips} cluster-IP rules compared, none "
           "match; last rule (dst-type LOCAL) -> KUBE-NODEPORTS")
    yield f"KUBE-NODEPORTS: --dport {sp.node_port} matches -> {ext}"
    if local:
        yield (f"{ext}: not pod traffic, not from this node: no masquerade (Local)"
               + (f"; -> {svc}" if table.n else "; no jump: the packet leaves nat "  # type: ignore[attr-defined]
                  "un-DNATed"))
        if not table.n:  # type: ignore[attr-defined]
            yield (f"filter INPUT -> KUBE-EXTERNAL-SERVICES: \"{spn} has no local endpoints\" "
                   "DROP; the client waits for its connect timeout")
    else:
        yield f"{ext}: KUBE-MARK-MASQ (mark {MASQ_MARK}), then {svc}"


def _nft_entry(sp: ServicePortModel, view: object, table: object, spn: str,
               proto: str) -> Iterable[str]:
    ext = nft_chain("external-", sp)
    lookup = (f"nat-prerouting -> services: daddr . {proto} . {sp.node_port} not in "
              f"@service-ips; daddr in @nodeport-ips -> @service-nodeports {proto} . "
              f"{sp.node_port}")
    check = (f"filter-input (ct state new) -> nodeport-endpoints-check: daddr in "
             f"@nodeport-ips, {proto} . {sp.node_port} in @no-endpoint-nodeports")
    if not view.any:  # type: ignore[attr-defined]
        yield f"{lookup}: no element (no endpoints): not DNATed"
        yield (f'{check} ("{spn}"): goto reject-chain: reject (ICMP port unreachable: '
               "connection refused)")
        return
    yield f"{lookup} -> goto {ext}"
    if view.local_policy:  # type: ignore[attr-defined]
        if not table.n:  # type: ignore[attr-defined]
            yield (f"{ext}: not pod traffic, not fib saddr type local, and no local endpoint: "
                   "no rule matches, the packet leaves nat un-DNATed")
            yield (f'{check} ("{spn}"): drop; the client waits for its connect timeout')
            return
        yield (f"{ext}: not pod traffic, not fib saddr type local: no masquerade (Local); "
               f"goto {nft_chain('local-', sp)}")
    else:
        yield (f"{ext}: jump mark-for-masquerade (mark {MASQ_MARK}), goto "
               f"{nft_chain('service-', sp)}")


def _ipvs_entry(proxy: KubeProxy, sp: ServicePortModel, view: object, table: object,
                proto: str) -> Iterable[str]:
    upper = sp.port.protocol
    local = view.local_policy  # type: ignore[attr-defined]
    yield "nat PREROUTING -> KUBE-SERVICES: dst-type LOCAL -> KUBE-NODE-PORT"
    if local:
        yield (f"KUBE-NODE-PORT: {proto} dport {sp.node_port} in KUBE-NODE-PORT-LOCAL-{upper} "
               "-> RETURN (no masquerade)")
    else:
        yield (f"KUBE-NODE-PORT: {proto} dport {sp.node_port} in KUBE-NODE-PORT-{upper} -> "
               f"KUBE-MARK-MASQ (mark {MASQ_MARK})")
    scheduler = proxy.scheduler  # type: ignore[attr-defined]
    yield (f"INPUT: IPVS virtual server {upper} {ip_str(proxy.node.ip)}:{sp.node_port} "
           f"scheduler {scheduler}")
    if not view.any:  # type: ignore[attr-defined]
        yield ("  no real servers: IPVS answers ICMP port unreachable (ip_vs_leave): "
               "connection refused")


def firewall_rules(guard: Guard, node: int) -> str:
    """The firewalls configured on a node, next to kube-proxy's rules: the node's chains
    in ``iptables -S`` form, the cloud security group, the NetworkPolicies."""
    out = []
    if guard.security_group is not None:
        out.append("# cloud security group in front of the nodes (allow rules, default deny)")
        out += [f"allow {r.protocol or 'all'} {r.first}-{r.last} from {r.source}"
                for r in guard.security_group]
    firewall = guard.firewalls[node]
    if firewall is not None:
        mode = guard.modes[node]
        out.append(f"# node firewall of {guard.cluster.nodes[node].name} ({mode} mode: a NodePort "
                   f"connection to a pod traverses {' and '.join(TRAVERSES[mode])})")
        for name, chain in firewall.chains.items():
            table = "-t mangle " if name == "PREROUTING" else ""
            out.append(f"{table}-P {name} {chain.policy}")
            out += [rule.text or table + rule.describe().format(chain=name)
                    for rule in chain.rules]
    for policy in guard.policies:
        selector = ",".join(f"{k}={v}" for k, v in policy.pod_selector.items()) or "(all pods)"
        out.append(f"# NetworkPolicy {policy.namespace}/{policy.name}: selects {selector}; "
                   f"{len(policy.ingress)} ingress rule(s), judged on the source the pod sees")
    return "\n".join(out)
