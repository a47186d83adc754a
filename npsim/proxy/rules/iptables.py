"""iptables mode's text: the ``iptables-restore`` input kube-proxy writes, and a
connection's walk through it.

``-A`` lines, chain names ``KUBE-SVC-`` + the first 16 base32 characters of
sha256(servicePortName + protocol), endpoint chains hashing "IP:port" too; probabilities
``%0.10f`` (pkg/proxy/iptables proxier.go). ``iptables-save`` would show the kernel's
rounding (``0.33333333349``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from npsim.cluster.model import Cluster, ServicePortModel, ip_str
from npsim.proxy.base import EndpointTable, KubeProxy, ModeRules
from npsim.proxy.nodeport_addresses import local_addresses
from npsim.proxy.rules.common import (
    KUBE_FORWARD,
    KUBE_POSTROUTING_STEP,
    MASQ_MARK,
    affinity_timeout,
    cluster_cidr,
    cluster_ip,
    hash_name,
    kube_forward_invalid,
    kube_postrouting,
    policies,
    port_name_string,
    selected,
)


def cascade_probabilities(n: int) -> list[float | None]:
    """Probability on each rule of an n-endpoint chain; ``None`` = unconditional."""
    return [1.0 / (n - i) for i in range(n - 1)] + [None] if n else []


def format_probability(p: float) -> str:
    """As kube-proxy writes it: ``%0.10f`` (proxier.go computeProbability)."""
    return f"{p:0.10f}"


def chain(prefix: str, sp: ServicePortModel, endpoint: str = "") -> str:
    """iptables chain names (proxier.go portProtoHash, servicePortEndpointChainName)."""
    return prefix + hash_name(port_name_string(sp) + sp.port.protocol.lower() + endpoint, 16)


# past this many endpoints kube-proxy writes no comment on the endpoint rules
# (proxier.go largeClusterEndpointsThreshold, appendServiceCommentLocked)
LARGE_CLUSTER_ENDPOINTS = 1000


def large_cluster(proxy: KubeProxy, cluster: Cluster) -> bool:
    """kube-proxy's large-cluster mode: more than 1000 endpoints over every Service port
    (here the endpoints the node has programmed; kube-proxy counts not-ready ones too)."""
    total = 0
    for sp in cluster.service_ports:
        view = proxy.views[sp.index]
        if view.any:
            local = view.local.keys if policies(sp, view).uses_local else ()
            total += len({*view.cluster.keys, *local})
    return total > LARGE_CLUSTER_ENDPOINTS


def _comment(text: str, large: bool) -> str:
    """`` -m comment --comment TEXT`` unless in large-cluster mode."""
    return "" if large else f" -m comment --comment {text}"


def _lb_rules(svc_chain: str, table: EndpointTable, sp: ServicePortModel,
              timeout: int | None, large: bool = False) -> list[str]:
    """The load-balancing rules of a KUBE-SVC-/KUBE-SVL- chain: affinity checks first
    (``-m recent --rcheck``), then the statistic cascade (writeServiceToEndpointRules)."""
    spn = port_name_string(sp)
    rules = []
    if timeout is not None:
        for key in table.keys:
            sep = chain("KUBE-SEP-", sp, key)
            label = _comment(f'"{spn} -> {key}"', large)
            rules.append(f"-A {svc_chain}{label} -m recent --name {sep} --rcheck --seconds "
                         f"{timeout} --reap -j {sep}")
    for key, p in zip(table.keys, cascade_probabilities(table.n), strict=True):
        stat = "" if p is None else (
            f" -m statistic --mode random --probability {format_probability(p)}")
        label = _comment(f'"{spn} -> {key}"', large)
        rules.append(f"-A {svc_chain}{label}{stat} -j {chain('KUBE-SEP-', sp, key)}")
    return rules


def _filter_drop(chain_name: str, comment: str, match: str, target: str) -> str:
    return f"-A {chain_name} -m comment --comment {comment} {match} -j {target}"


def iptables_rules(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    """The ``iptables-restore`` input kube-proxy writes: ``*filter`` then ``*nat``
    (proxier.go syncProxyRules, rule for rule), then the hook rules it installs
    separately."""
    settings = proxy.settings
    # IPv4 only, as every npsim cluster is; NewProxier turns localhostNodePorts off when
    # --nodeport-addresses holds no loopback address (ContainsIPv4Loopback)
    localhost = proxy.loopback_node_ports()
    chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    rules: list[str] = []
    filters: list[str] = []
    firewall: list[str] = []  # KUBE-PROXY-FIREWALL: LB traffic outside the source ranges
    local = cluster_cidr(cluster)
    node_ip = ipaddress.IPv4Address(ip_str(proxy.node.ip))
    large = large_cluster(proxy, cluster)
    for sp in selected(cluster, service):
        view = proxy.views[sp.index]
        svc_obj = sp.service
        spn = port_name_string(sp)
        svc, ext, svl = chain("KUBE-SVC-", sp), chain("KUBE-EXT-", sp), chain("KUBE-SVL-", sp)
        fw = chain("KUBE-FW-", sp)
        proto, cip, port = sp.port.protocol.lower(), cluster_ip(sp, cluster), sp.port.port
        match = f"-m {proto} -p {proto}"
        pol = policies(sp, view)
        has_endpoints, has_external = view.any, pol.has_external
        internal = svl if pol.internal_local else svc
        uses_ext = has_endpoints and bool(sp.node_port or svc_obj.externally_accessible)
        uses_fw = (has_endpoints and bool(svc_obj.load_balancer_ips)
                   and bool(svc_obj.load_balancer_source_ranges))
        lb_target = fw if uses_fw else ext
        if not has_endpoints:
            filter_comment, filter_target = f'"{spn} has no endpoints"', "REJECT"
        else:
            filter_comment, filter_target = f'"{spn} has no local endpoints"', "DROP"
        if pol.has_internal:
            rules.append(f'-A KUBE-SERVICES -m comment --comment "{spn} cluster IP" {match} '
                         f"-d {cip} --dport {port} -j {internal}")
        else:
            filters.append(_filter_drop("KUBE-SERVICES", filter_comment,
                                        f"{match} -d {cip} --dport {port}", filter_target))
        for ip in svc_obj.external_ips:
            if has_endpoints:
                rules.append(f'-A KUBE-SERVICES -m comment --comment "{spn} external IP" '
                             f"{match} -d {ip} --dport {port} -j {ext}")
            if not has_external:
                filters.append(_filter_drop("KUBE-EXTERNAL-SERVICES", filter_comment,
                                            f"{match} -d {ip} --dport {port}", filter_target))
        for ip in svc_obj.load_balancer_ips:
            if has_endpoints:
                rules.append(f'-A KUBE-SERVICES -m comment --comment "{spn} loadbalancer IP" '
                             f"{match} -d {ip} --dport {port} -j {lb_target}")
            if uses_fw:
                firewall.append(_filter_drop(
                    "KUBE-PROXY-FIREWALL", f'"{spn} traffic not accepted by {fw}"',
                    f"{match} -d {ip} --dport {port}", "DROP"))
        if not has_external:
            filters += [_filter_drop("KUBE-EXTERNAL-SERVICES", filter_comment,
                                     f"{match} -d {ip} --dport {port}", filter_target)
                        for ip in svc_obj.load_balancer_ips]
        if sp.node_port:
            if has_endpoints:
                if localhost and settings.nfacct:
                    rules.append(f"-A KUBE-NODEPORTS -m comment --comment {spn} {match} "
                                 f"-d 127.0.0.0/8 --dport {sp.node_port} -m nfacct "
                                 f"--nfacct-name localhost_nps_accepted_pkts -j {ext}")
                rules.append(f"-A KUBE-NODEPORTS -m comment --comment {spn} {match} "
                             f"--dport {sp.node_port} -j {ext}")
            if not has_external:
                filters.append(_filter_drop(
                    "KUBE-EXTERNAL-SERVICES", filter_comment,
                    f"-m addrtype --dst-type LOCAL {match} --dport {sp.node_port}",
                    filter_target))
        if sp.health_check_node_port:
            filters.append(f'-A KUBE-NODEPORTS -m comment --comment "{spn} health check node '
                           f'port" -m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT')
        if not has_endpoints:
            continue
        timeout = affinity_timeout(sp)
        if pol.has_internal:  # off-cluster sources of the ClusterIP are masqueraded
            rules.append(f'-A {internal} -m comment --comment "{spn} cluster IP" {match} '
                         f"-d {cip} --dport {port} ! -s {local} -j KUBE-MARK-MASQ")
        if uses_ext:
            chains.append(ext)
            if view.local_policy:  # the short-circuits, then the local endpoints or nothing
                rules += [
                    f'-A {ext} -m comment --comment "pod traffic for {spn} external '
                    f'destinations" -s {local} -j {svc}',
                    f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {spn} '
                    'external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ',
                    f'-A {ext} -m comment --comment "route LOCAL traffic for {spn} external '
                    f'destinations" -m addrtype --src-type LOCAL -j {svc}']
                if has_external:
                    rules.append(f"-A {ext} -j {svl}")
            else:
                rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {spn} '
                             'external destinations" -j KUBE-MARK-MASQ')
                rules.append(f"-A {ext} -j {svc}")
        if uses_fw:
            chains.append(fw)
            head = f'-A {fw} -m comment --comment "{spn} loadbalancer IP"'
            ranges = svc_obj.load_balancer_source_ranges
            rules += [f"{head} -s {cidr} -j {ext}" for cidr in ranges]
            if any(node_ip in ipaddress.IPv4Network(cidr) for cidr in ranges):
                rules += [f"{head} -s {ip} -j {ext}" for ip in svc_obj.load_balancer_ips]
            rules.append(f'-A {fw} -m comment --comment "other traffic to {spn} will be '
                         'dropped by KUBE-PROXY-FIREWALL"')
        if pol.uses_cluster:
            chains.append(svc)
            rules += _lb_rules(svc, view.cluster, sp, timeout, large)
        if pol.uses_local:
            chains.append(svl)
            rules += _lb_rules(svl, view.local, sp, timeout, large)
        recent = "" if timeout is None else " -m recent --name {sep} --set"
        for key in pol.endpoints:
            sep = chain("KUBE-SEP-", sp, key)
            chains.append(sep)
            ip = key.rsplit(":", 1)[0]
            rules.append(f"-A {sep}{_comment(spn, large)} -s {ip} -j KUBE-MARK-MASQ")
            rules.append(f"-A {sep}{_comment(spn, large)}{recent.format(sep=sep)} "
                         f"{match} -j DNAT --to-destination {key}")
    rules += nodeports_jumps(proxy)
    rules += [f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
              *kube_postrouting(settings.masquerade_random_fully)]
    # KUBE-SERVICES first, as a packet meets them
    order = {"KUBE-SERVICES": 0, "KUBE-NODEPORTS": 1}
    rules.sort(key=lambda r: order.get(r.split()[1], 2))
    filter_order = {"KUBE-NODEPORTS": 0, "KUBE-SERVICES": 1, "KUBE-EXTERNAL-SERVICES": 2}
    filters.sort(key=lambda r: filter_order[r.split()[1]])
    filter_chains = [c for c in FILTER_CHAINS if c != "KUBE-FIREWALL" or localhost]
    out = ["*filter", *(f":{c} - [0:0]" for c in filter_chains), *filters,
           *([LOCALNET_GUARD] if localhost else []), kube_forward_invalid(settings.nfacct),
           *KUBE_FORWARD, *firewall, "COMMIT",
           "*nat", *(f":{c} - [0:0]" for c in dict.fromkeys(chains)), *rules, "COMMIT"]
    return "\n".join(out + ["", *IPTABLES_HOOKS])


_NODEPORTS_JUMP = ('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: '
                   'this must be the last rule in this chain"')


def nodeports_jumps(proxy: KubeProxy) -> list[str]:
    """KUBE-SERVICES' last rule(s), to KUBE-NODEPORTS (proxier.go syncProxyRules, "Finally,
    tail-call to the nodePorts chain"): with ``--nodeport-addresses`` matching all, one
    ``-m addrtype --dst-type LOCAL`` rule (``! -d 127.0.0.0/8`` without localhost
    NodePorts); else one ``-d IP`` rule per listed node address (GetNodeIPs), a loopback
    address only with ``--iptables-localhost-nodeports``."""
    npa = proxy.nodeport_addresses
    localhost = proxy.loopback_node_ports()
    if npa.match_all:
        skip_localhost = "" if localhost else " ! -d 127.0.0.0/8"
        return [f"{_NODEPORTS_JUMP} -m addrtype --dst-type LOCAL{skip_localhost} "
                "-j KUBE-NODEPORTS"]
    ips = npa.node_ips(local_addresses(proxy.node, proxy.secondary_ip))
    return [f"{_NODEPORTS_JUMP} -d {ip_str(ip)} -j KUBE-NODEPORTS" for ip in ips
            if localhost or ip >> 24 != 127]


# kube-proxy's (and the kubelet's) guard for route_localnet, https://issue.k8s.io/90259
LOCALNET_GUARD = ('-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" '
                  "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate "
                  "RELATED,ESTABLISHED,DNAT -j DROP")
FILTER_CHAINS = ("KUBE-NODEPORTS", "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL",
                 "KUBE-FORWARD", "KUBE-PROXY-FIREWALL")
# iptablesJumpChains then iptablesKubeletJumpChains: inserted with ``iptables -I`` at a
# full sync, outside the restore input (proxier.go)
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
    *(f"# -t filter {hook:<7} -m conntrack --ctstate NEW -m comment --comment \"kubernetes "
      "load balancer firewall\" -j KUBE-PROXY-FIREWALL" for hook in ("INPUT", "OUTPUT",
                                                                      "FORWARD")),
    "# -t nat OUTPUT      -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "# -t nat PREROUTING  -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
    "# -t nat POSTROUTING -m comment --comment \"kubernetes postrouting rules\" "
    "-j KUBE-POSTROUTING",
    # iptablesKubeletJumpChains: the kubelet's own jumps, which kube-proxy ensures too
    "# -t filter INPUT   -j KUBE-FIREWALL",
    "# -t filter OUTPUT  -j KUBE-FIREWALL")


def service_rules(proxy: KubeProxy, cluster: Cluster) -> int:
    """nat KUBE-SERVICES rules before its last: one per ClusterIP with internal endpoints,
    one per external IP and LB IP of a Service with any (proxier.go syncProxyRules)."""
    count = 0
    for sp in cluster.service_ports:
        view = proxy.views[sp.index]
        if view.any:
            count += (policies(sp, view).has_internal + len(sp.service.external_ips)
                      + len(sp.service.load_balancer_ips))
    return count


def arrival_steps(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel,
                  table: EndpointTable | None, other_services: int) -> Iterable[str]:
    """nat PREROUTING to the Service chain, or the filter rule that refuses or drops."""
    view = proxy.views[sp.index]
    spn = port_name_string(sp)
    if not view.any:
        yield (f"filter INPUT -> KUBE-EXTERNAL-SERVICES: \"{spn} has no endpoints\" REJECT "
               "(ICMP port unreachable: connection refused)")
        return
    ext = chain("KUBE-EXT-", sp)
    local = view.local_policy
    svc = chain("KUBE-SVL-" if local else "KUBE-SVC-", sp)
    vips = service_rules(proxy, cluster) + other_services
    yield (f"nat PREROUTING -> KUBE-SERVICES: {vips} rules compared (ClusterIPs, external and "
           "LB IPs), none match; last rule (dst-type LOCAL) -> KUBE-NODEPORTS")
    yield f"KUBE-NODEPORTS: --dport {sp.node_port} matches -> {ext}"
    if local:
        yield (f"{ext}: not pod traffic, not from this node: no masquerade (Local)"
               + (f"; -> {svc}" if table.n else "; no jump: the packet leaves nat "
                  "un-DNATed"))
        if not table.n:
            yield (f"filter INPUT -> KUBE-EXTERNAL-SERVICES: \"{spn} has no local endpoints\" "
                   "DROP; the client waits for its connect timeout")
    else:
        yield f"{ext}: KUBE-MARK-MASQ (mark {MASQ_MARK}), then {svc}"


def choice_steps(sp: ServicePortModel, table: EndpointTable, choice: int, client_ip: int,
                 affinity: bool) -> Iterable[str]:
    """The statistic cascade rule by rule up to the one that matches, then its DNAT."""
    if affinity:
        yield (f"  affinity: -m recent --rcheck per endpoint for {ip_str(client_ip)} "
               "(first connection: no entry), then the cascade")
    for i, p in enumerate(cascade_probabilities(table.n)):
        label = "unconditional" if p is None else f"probability {format_probability(p)}"
        verdict = "MATCH" if i == choice else "no match"
        yield f"  rule {i + 1} -> {table.keys[i]} ({label}): {verdict}"
        if i == choice:
            break
    key = table.keys[choice]
    yield f"{chain('KUBE-SEP-', sp, key)}: DNAT --to-destination {key}"


RULES = ModeRules(tables=iptables_rules, arrival=arrival_steps, choice=choice_steps,
                  masquerade=KUBE_POSTROUTING_STEP,
                  closed_nodeport="nat PREROUTING -> KUBE-SERVICES: no rule matches (no "
                                  "'-d {ip} -j KUBE-NODEPORTS' rule)")
