"""nftables mode's text: the transaction kube-proxy sends, and a connection's walk.

``add table/chain/rule/element`` lines as kube-proxy's TestOverallNFTablesRules dumps
them (pkg/proxy/nftables proxier.go), chain names ``service-`` + 8 base32 characters of
sha256("ns/name/proto/port") + "-" + that string.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from npsim.cluster.model import Cluster, ServicePortModel, ip_str
from npsim.proxy.base import EndpointTable, KubeProxy, ModeRules
from npsim.proxy.nodeport_addresses import local_addresses
from npsim.proxy.rules.common import (
    MASQ_MARK,
    affinity_timeout,
    cluster_cidr,
    cluster_ip,
    hash_name,
    policies,
    port_name_string,
    selected,
)

MASQUERADE_STEP = "nat-postrouting -> masquerading: mark set, masquerade fully-random"


def nft_chain(prefix: str, sp: ServicePortModel, endpoint: str = "") -> str:
    """nftables chain names (proxier.go servicePortChainNameBase, hashAndTruncate)."""
    name = (f"{sp.service.namespace}/{sp.service.name}/{sp.port.protocol.lower()}/"
            f"{sp.port.name}")
    if endpoint:
        ip, port = endpoint.rsplit(":", 1)
        name += f"__{ip}/{port}"
    return f"{prefix}{hash_name(name, 8)}-{name}"


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


def nft_base(nodeport_ips: list[str] | None, service_cidr: str) -> list[str]:
    """The fixed part of the ``kube-proxy`` table (setupNFTables), as kube-proxy's
    TestOverallNFTablesRules ``baseRules`` dump it. NodePorts are checked against
    ``@nodeport-ips`` holding ``nodeport_ips`` (``--nodeport-addresses primary``, the
    nftables default, gives the node's address); None: the list matches all, so there is
    no set and the rules read ``fib daddr type local`` and ``ip daddr != 127.0.0.0/8``."""
    t = "ip kube-proxy"
    every = nodeport_ips is None
    daddr = "ip daddr != 127.0.0.0/8" if every else "ip daddr @nodeport-ips"
    base = [
        f'add table {t} {{ comment "rules for kube-proxy" ; }}',
        "",
        f'add set {t} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}',
        *([] if every else [f'add set {t} nodeport-ips {{ type ipv4_addr ; comment "IPs that '
                            'accept NodePort traffic" ; }']),
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
        f"add rule {t} cluster-ips-check ip daddr {{ {service_cidr} }} drop comment \"Drop "
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
        f"add rule {t} nodeport-endpoints-check {daddr} meta l4proto . th dport "
        "vmap @no-endpoint-nodeports",
        f"add rule {t} reject-chain reject",
        f"add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips",
        f"add rule {t} services {'fib daddr type local ' if every else ''}{daddr} "
        "meta l4proto . th dport vmap @service-nodeports",
        "",
        *(f"add element {t} nodeport-ips {{ {ip} }}" for ip in nodeport_ips or ()),
        f"add rule {t} service-endpoints-check ip daddr . meta l4proto . th dport vmap "
        "@no-endpoint-services",
    ]
    return base


def nodeport_ips(proxy: KubeProxy) -> list[str] | None:
    """The ``nodeport-ips`` elements: the node addresses inside ``--nodeport-addresses``
    less loopback ("localhost NodePorts are not supported", setupNFTables); None when
    the list matches all (the set is deleted)."""
    npa = proxy.nodeport_addresses
    if npa.match_all:
        return None
    return [ip_str(ip) for ip in npa.node_ips(local_addresses(proxy.node, proxy.secondary_ip))
            if ip >> 24 != 127]


def nft_service(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel) -> list[str]:
    """One Service port's chains, sets and map elements (syncProxyRules), in the order
    kube-proxy's TestOverallNFTablesRules lists them."""
    t = "ip kube-proxy"
    view = proxy.views[sp.index]
    svc_obj = sp.service
    spn = port_name_string(sp)
    proto, port = sp.port.protocol.lower(), sp.port.port
    cip = cluster_ip(sp, cluster)
    pods = cluster_cidr(cluster)
    outside = [*svc_obj.external_ips, *svc_obj.load_balancer_ips]
    out = [f"# {spn}"]
    fw_chain, fw_elements = _firewall(proxy, sp)
    if not view.any:
        out += [*fw_chain, f"add element {t} cluster-ips {{ {cip} }}",
                *(f'add element {t} no-endpoint-services {{ {ip} . {proto} . {port} '
                  f'comment "{spn}" : goto reject-chain }}' for ip in [cip, *outside]),
                *fw_elements]
        if sp.node_port:
            out.append(f"add element {t} no-endpoint-nodeports {{ {proto} . {sp.node_port} "
                       f'comment "{spn}" : goto reject-chain }}')
        return out
    timeout = affinity_timeout(sp)
    svc, ext, loc = (nft_chain("service-", sp), nft_chain("external-", sp),
                     nft_chain("local-", sp))
    uses_ext = bool(sp.node_port or outside)
    pol = policies(sp, view)
    no_external = not pol.has_external
    internal = loc if pol.internal_local else svc
    endpoints = pol.endpoints
    if timeout is not None:
        out += [f"add set {t} {nft_chain('affinity-', sp, key)} {{ type ipv4_addr ; flags "
                f"dynamic,timeout ; timeout {timeout}s ; }}" for key in endpoints]
    # the off-cluster masquerade rule heads the internal policy chain
    masq = (f"add rule {t} {internal} ip daddr {cip} ip saddr != {pods} jump "
            "mark-for-masquerade")
    if pol.uses_cluster:
        out += [f"add chain {t} {svc}", *([masq] if internal == svc else []),
                *(f"add rule {t} {svc} {r}" for r in _numgen(view.cluster, sp, timeout))]
    if pol.uses_local:
        out += [f"add chain {t} {loc}", *([masq] if internal == loc else []),
                *(f"add rule {t} {loc} {r}" for r in _numgen(view.local, sp, timeout))]
    if uses_ext:
        out.append(f"add chain {t} {ext}")
        if view.local_policy:
            out += [f'add rule {t} {ext} ip saddr {pods} goto {svc} comment "short-circuit '
                    'pod traffic"',
                    f'add rule {t} {ext} fib saddr type local jump mark-for-masquerade comment '
                    '"masquerade local traffic"',
                    f'add rule {t} {ext} fib saddr type local goto {svc} comment "short-circuit '
                    'local traffic"']
            if pol.has_external:
                out.append(f"add rule {t} {ext} goto {loc}")
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
    out += [*fw_chain, "", f"add element {t} cluster-ips {{ {cip} }}",
            *([f"add element {t} service-ips {{ {cip} . {proto} . {port} : goto {internal} }}"]
              if pol.has_internal else
              [f'add element {t} no-endpoint-services {{ {cip} . {proto} . {port} '
               f'comment "{spn}" : drop }}']),
            *(f"add element {t} service-ips {{ {ip} . {proto} . {port} : goto {ext} }}"
              for ip in outside)]
    if sp.node_port:
        out.append(f"add element {t} service-nodeports {{ {proto} . {sp.node_port} : "
                   f"goto {ext} }}")
    out += fw_elements
    if no_external:
        if sp.node_port:
            out.append(f"add element {t} no-endpoint-nodeports {{ {proto} . {sp.node_port} "
                       f'comment "{spn}" : drop }}')
        out += [f'add element {t} no-endpoint-services {{ {ip} . {proto} . {port} '
                f'comment "{spn}" : drop }}' for ip in outside]
    return out


def _firewall(proxy: KubeProxy, sp: ServicePortModel) -> tuple[list[str], list[str]]:
    """The firewall chain of a VIP with source ranges and its firewall-ips elements
    (usesFWChain: LB VIPs and source ranges, endpoints or not); the ranges, plus the VIPs
    when a range holds this node (allowFromNode)."""
    t, svc = "ip kube-proxy", sp.service
    if not (svc.load_balancer_ips and svc.load_balancer_source_ranges):
        return [], []
    fw = nft_chain("firewall-", sp)
    ranges = list(svc.load_balancer_source_ranges)
    node = ipaddress.IPv4Address(ip_str(proxy.node.ip))
    if any(node in ipaddress.IPv4Network(r) for r in ranges):
        ranges += svc.load_balancer_ips
    return (["", f"add chain {t} {fw}",
             f"add rule {t} {fw} ip saddr != {{ {' , '.join(ranges)} }} drop"],
            [f"add element {t} firewall-ips {{ {ip} . {sp.port.protocol.lower()} . "
             f"{sp.port.port} : goto {fw} }}" for ip in svc.load_balancer_ips])


def nft_rules(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    """The ``kube-proxy`` table as the transaction kube-proxy sends (``nft -f`` input;
    the very lines of its unit tests' expected dumps). A Service's ClusterIP enters
    ``cluster-ips`` once, whatever its ports (ensureElem)."""
    lines = nft_base(nodeport_ips(proxy), cluster.service_cidr)
    added: set[str] = set()
    for sp in selected(cluster, service):
        for line in ["", *nft_service(proxy, cluster, sp)]:
            if " cluster-ips { " in line:
                if line in added:
                    continue
                added.add(line)
            lines.append(line)
    return "\n".join(lines)


def arrival_steps(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel,
                  table: EndpointTable | None, other_services: int) -> Iterable[str]:
    """nat-prerouting's verdict maps to the external chain, or the filter check that
    refuses or drops (one lookup, whatever the number of Services)."""
    view = proxy.views[sp.index]
    spn = port_name_string(sp)
    proto = sp.port.protocol.lower()
    ext = nft_chain("external-", sp)
    where = ("daddr in @nodeport-ips" if not proxy.nodeport_addresses.match_all
             else "fib daddr type local, daddr != 127.0.0.0/8")
    lookup = (f"nat-prerouting -> services: daddr . {proto} . {sp.node_port} not in "
              f"@service-ips; {where} -> @service-nodeports {proto} . {sp.node_port}")
    check = (f"filter-input (ct state new) -> nodeport-endpoints-check: {where}, "
             f"{proto} . {sp.node_port} in @no-endpoint-nodeports")
    if not view.any:
        yield f"{lookup}: no element (no endpoints): not DNATed"
        yield (f'{check} ("{spn}"): goto reject-chain: reject (ICMP port unreachable: '
               "connection refused)")
        return
    yield f"{lookup} -> goto {ext}"
    if view.local_policy:
        if not table.n:
            yield (f"{ext}: not pod traffic, not fib saddr type local, and no local endpoint: "
                   "no rule matches, the packet leaves nat un-DNATed")
            yield (f'{check} ("{spn}"): drop; the client waits for its connect timeout')
            return
        yield (f"{ext}: not pod traffic, not fib saddr type local: no masquerade (Local); "
               f"goto {nft_chain('local-', sp)}")
    else:
        yield (f"{ext}: jump mark-for-masquerade (mark {MASQ_MARK}), goto "
               f"{nft_chain('service-', sp)}")


def choice_steps(sp: ServicePortModel, table: EndpointTable, choice: int, client_ip: int,
                 affinity: bool) -> Iterable[str]:
    """numgen's draw and the endpoint chain's DNAT (and affinity set update)."""
    key = table.keys[choice]
    if affinity:
        yield (f"  affinity: ip saddr @affinity-... per endpoint for {ip_str(client_ip)} "
               "(first connection: in no set), then numgen")
    yield f"numgen random mod {table.n} = {choice} -> {nft_chain('endpoint-', sp, key)}"
    if affinity:
        yield f"endpoint chain: update @{nft_chain('affinity-', sp, key)} {{ ip saddr }}"
    yield f"endpoint chain: dnat to {key}"


RULES = ModeRules(tables=nft_rules, arrival=arrival_steps, choice=choice_steps,
                  masquerade=MASQUERADE_STEP,
                  closed_nodeport="nat-prerouting -> services: daddr not in @nodeport-ips")
