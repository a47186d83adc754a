"""IPVS mode's text: ``ipvsadm -Ln`` as ipvsadm.c prints it (the ClusterIP and every node
address, ``persistent`` for ClientIP), ``ipset save``, the iptables glue, and a
connection's walk.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from npsim.cluster.model import Cluster, ServicePortModel, ip_str
from npsim.proxy.base import EndpointTable, KubeProxy, ModeRules
from npsim.proxy.nodeport_addresses import LOOPBACK, local_addresses
from npsim.proxy.rules.common import (
    KUBE_FORWARD,
    KUBE_POSTROUTING_STEP,
    MASQ_MARK,
    affinity_timeout,
    cluster_cidr,
    cluster_ip,
    kube_postrouting,
    selected,
)


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
    """The node's local addresses IPVS binds NodePorts to: with ``--nodeport-addresses``
    matching all, every local address except loopback and kube-ipvs0 (here the node
    address, a secondaryAddress and the pod bridge cni0); else those inside its CIDRs,
    loopback left out (proxier.go syncProxyRules, ``GetNodeIPs`` ... ``!ip.IsLoopback()``)."""
    local = local_addresses(proxy.node, proxy.secondary_ip)
    npa = proxy.nodeport_addresses
    if npa.match_all:
        return [ip for ip in local if ip != LOOPBACK]
    return [ip for ip in npa.node_ips(local) if ip >> 24 != 127]


def ipvsadm(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    """``ipvsadm -Ln``: a ClusterIP virtual server and one NodePort virtual server per
    node address for each Service port (proxier.go syncProxyRules), then the ipsets and
    iptables rules that decide SNAT (writeIptablesRules)."""
    lines = ["IP Virtual Server version 1.2.1 (size=4096)",
             "Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"]
    scheduler = proxy.scheduler  # type: ignore[attr-defined]
    for sp in selected(cluster, service):
        view = proxy.views[sp.index]
        timeout = affinity_timeout(sp)
        table = proxy.tables[sp.index]
        proto = sp.port.protocol
        # the ClusterIP virtual server's own counters when a population calls it
        internal = (view.internal if proxy.serves_clusterip
                    else _Unused(view.internal.keys))
        lines += _virtual_server(f"{proto}  {cluster_ip(sp, cluster)}:{sp.port.port}",
                                 scheduler, timeout, internal)
        # external IPs and LB VIPs, bound to kube-ipvs0 (their clients' counts go to the
        # NodePort virtual server's table, which they share here)
        for address in (*sp.service.external_ips, *sp.service.load_balancer_ips):
            lines += _virtual_server(f"{proto}  {address}:{sp.port.port}", scheduler,
                                     timeout, _Unused(table.keys))
        if not sp.node_port:
            continue
        for address in node_addresses(proxy):
            # the simulated clients reach the primary address; the others carry no counts
            lines += _virtual_server(f"{proto}  {ip_str(address)}:{sp.node_port}", scheduler,
                                     timeout, table if address == proxy.node.ip else
                                     _Unused(table.keys))
    sets = ipvs_ipsets(proxy, cluster, service)
    used = {line.split()[1] for line in sets if line.startswith("add ")}
    return "\n".join(lines + ["", *sets, "",
                               *ipvs_iptables(cluster, service,
                                             proxy.settings.masquerade_random_fully, used)])


class _Unused:
    """Real servers of a virtual server no simulated client uses (counters 0)."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys


def ipvs_ipsets(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> list[str]:
    """``ipset save`` of the sets kube-proxy fills (proxier.go ipsetInfo)."""
    members: dict[str, list[str]] = {"KUBE-CLUSTER-IP": [], "KUBE-LOOP-BACK": []}
    kinds = {"KUBE-CLUSTER-IP": "hash:ip,port", "KUBE-LOOP-BACK": "hash:ip,port,ip"}
    for sp in selected(cluster, service):
        view = proxy.views[sp.index]
        proto = sp.port.protocol
        members["KUBE-CLUSTER-IP"].append(f"{cluster_ip(sp, cluster)},{proto.lower()}:"
                                          f"{sp.port.port}")
        for ep in proxy.tables[sp.index].endpoints:
            if ep.node == proxy.node.index:
                ip = ip_str(ep.ip)
                members["KUBE-LOOP-BACK"].append(f"{ip},{proto.lower()}:{ep.port},{ip}")
        if sp.node_port:
            for name in node_port_sets(proto, view.local_policy):
                if proto == "SCTP":  # a hash of every node address, not a port bitmap
                    kinds[name] = "hash:ip,port"
                    members.setdefault(name, []).extend(
                        f"{ip_str(a)},sctp:{sp.node_port}" for a in node_addresses(proxy))
                else:
                    kinds[name] = "bitmap:port range 0-65535"
                    members.setdefault(name, []).append(str(sp.node_port))
        for name, kind, entries in _external_sets(proxy, sp):
            kinds[name] = kind
            members.setdefault(name, []).extend(entries)
        if sp.health_check_node_port:
            kinds["KUBE-HEALTH-CHECK-NODE-PORT"] = "bitmap:port range 0-65535"
            members.setdefault("KUBE-HEALTH-CHECK-NODE-PORT", []).append(
                str(sp.health_check_node_port))
    out = []
    for name, entries in members.items():
        out.append(f"create {name} {kinds[name]}")
        out += [f"add {name} {e}" for e in dict.fromkeys(entries)]
    return out


def node_port_sets(proto: str, local: bool) -> list[str]:
    """The NodePort sets of a protocol (ipset.go): SCTP's are hash:ip,port sets named
    ``...-SCTP-HASH``, matched ``dst,dst``; TCP's and UDP's port bitmaps."""
    suffix = "SCTP-HASH" if proto == "SCTP" else proto
    return [f"KUBE-NODE-PORT-{suffix}", *([f"KUBE-NODE-PORT-LOCAL-{suffix}"] if local else [])]


def _external_sets(proxy: KubeProxy, sp: ServicePortModel
                   ) -> Iterable[tuple[str, str, list[str]]]:
    """The ipsets of a Service's external addresses (proxier.go syncService: ipsetInfo's
    KUBE-EXTERNAL-IP[-LOCAL], KUBE-LOAD-BALANCER[-LOCAL|-FW|-SOURCE-CIDR|-SOURCE-IP]),
    written whether or not the Service has endpoints, as its virtual servers are."""
    svc = sp.service
    proto, port = sp.port.protocol.lower(), sp.port.port
    local = svc.external_traffic_policy == "Local"
    ips = [f"{ip},{proto}:{port}" for ip in svc.external_ips]
    if ips:
        yield ("KUBE-EXTERNAL-IP-LOCAL" if local else "KUBE-EXTERNAL-IP", "hash:ip,port", ips)
    vips = [f"{ip},{proto}:{port}" for ip in svc.load_balancer_ips]
    if not vips:
        return
    yield "KUBE-LOAD-BALANCER", "hash:ip,port", vips
    if local:
        yield "KUBE-LOAD-BALANCER-LOCAL", "hash:ip,port", vips
    ranges = svc.load_balancer_source_ranges
    if ranges:
        yield "KUBE-LOAD-BALANCER-FW", "hash:ip,port", vips
        yield ("KUBE-LOAD-BALANCER-SOURCE-CIDR", "hash:ip,port,net",
               [f"{v},{r}" for v in vips for r in ranges])
        node = ipaddress.IPv4Address(ip_str(proxy.node.ip))
        if any(node in ipaddress.IPv4Network(r) for r in ranges):  # allowFromNode
            yield ("KUBE-LOAD-BALANCER-SOURCE-IP", "hash:ip,port,ip",
                   [f"{v},{ip}" for v in vips for ip in svc.load_balancer_ips])


def _set_rule(chain: str, name: str, comment: str, match: str, target: str) -> str:
    return (f'-A {chain} -m comment --comment "{comment}" -m set --match-set {name} '
            f"{match} -j {target}")


EXTERNAL_IP = "Kubernetes service external ip + port for masquerade and filter purpose"
EXTERNAL_IP_LOCAL = "Kubernetes service external ip + port with externalTrafficPolicy=local"


def _external_rules(used: set[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Rules of the external-address sets in use (writeIptablesRules and
    ipsetWithIptablesChain): KUBE-SERVICES' jump to KUBE-LOAD-BALANCER, the external-IP
    masquerade and ACCEPTs, KUBE-LOAD-BALANCER's Local RETURN, and the filter table's
    source-range check (KUBE-PROXY-FIREWALL -> KUBE-SOURCE-RANGES-FIREWALL)."""
    services_head, services_ext, balancer, firewall = [], [], [], []
    if "KUBE-LOAD-BALANCER" in used:
        services_head.append(_set_rule("KUBE-SERVICES", "KUBE-LOAD-BALANCER",
                                       "Kubernetes service lb portal", "dst,dst",
                                       "KUBE-LOAD-BALANCER"))
    if "KUBE-LOAD-BALANCER-LOCAL" in used:
        balancer.append(_set_rule(
            "KUBE-LOAD-BALANCER", "KUBE-LOAD-BALANCER-LOCAL", "Kubernetes service load "
            "balancer ip + port with externalTrafficPolicy=local", "dst,dst", "RETURN"))
    for name, comment in (("KUBE-EXTERNAL-IP", EXTERNAL_IP),
                          ("KUBE-EXTERNAL-IP-LOCAL", EXTERNAL_IP_LOCAL)):
        if name not in used:
            continue
        head = (f'-A KUBE-SERVICES -m comment --comment "{comment}" -m set --match-set '
                f"{name} dst,dst")
        if name == "KUBE-EXTERNAL-IP":
            services_ext.append(f"{head} -j KUBE-MARK-MASQ")
        services_ext += [f"{head} -m physdev ! --physdev-is-in -m addrtype ! --src-type "
                         "LOCAL -j ACCEPT", f"{head} -m addrtype --dst-type LOCAL -j ACCEPT"]
    if "KUBE-LOAD-BALANCER-FW" in used:
        firewall.append(_set_rule(
            "KUBE-PROXY-FIREWALL", "KUBE-LOAD-BALANCER-FW", "Kubernetes service load "
            "balancer ip + port for load balancer with sourceRange", "dst,dst",
            "KUBE-SOURCE-RANGES-FIREWALL"))
        for name, what in (("KUBE-LOAD-BALANCER-SOURCE-CIDR", "source cidr"),
                           ("KUBE-LOAD-BALANCER-SOURCE-IP", "source IP")):
            if name in used:
                firewall.append(_set_rule(
                    "KUBE-SOURCE-RANGES-FIREWALL", name, "Kubernetes service load balancer "
                    f"ip + port + {what} for packet filter purpose", "dst,dst,src", "RETURN"))
    firewall.append("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP")
    return services_head, services_ext, balancer, firewall


def ipvs_iptables(cluster: Cluster, service: str | None = None,
                  random_fully: bool = True, used: set[str] | None = None) -> list[str]:
    """The iptables glue of IPVS mode: the LOCAL NodePort set RETURNs before the plain
    set marks for masquerade ("kubeNodePortLocalSetTCP must be prior to
    kubeNodePortSetTCP"); IPVS DNATs, KUBE-POSTROUTING masquerades. The first rule lets
    localhost's own connections pass untouched: IPVS does not serve 127.0.0.0/8
    (writeIptablesRules, IPv4 only)."""
    protocols = sorted({sp.port.protocol for sp in selected(cluster, service)
                        if sp.node_port})
    local = {sp.port.protocol for sp in selected(cluster, service)
             if sp.node_port and sp.service.external_traffic_policy == "Local"}
    head, external, balancer, firewall = _external_rules(used or set())
    nat = ["*nat", ":KUBE-SERVICES - [0:0]", ":KUBE-POSTROUTING - [0:0]",
           ":KUBE-NODE-PORT - [0:0]", ":KUBE-LOAD-BALANCER - [0:0]", ":KUBE-MARK-MASQ - [0:0]",
           '-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source '
           'ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src '
           "-j MASQUERADE",
           *kube_postrouting(random_fully),
           f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
           "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN", *head,
           '-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for '
           'masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst '
           f"! -s {cluster_cidr(cluster)} -j KUBE-MARK-MASQ", *external,
           "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT", *balancer]
    for proto in protocols:
        low = proto.lower()
        plain, *with_local = node_port_sets(proto, proto in local)
        match = "dst,dst" if proto == "SCTP" else "dst"
        hashed = " with type 'hash ip:port'" if proto == "SCTP" else ""
        for name in with_local:
            nat.append(f'-A KUBE-NODE-PORT -p {low} -m comment --comment "Kubernetes nodeport '
                       f'{proto} port with externalTrafficPolicy=local{hashed}" -m set '
                       f"--match-set {name} {match} -j RETURN")
        nat.append(f'-A KUBE-NODE-PORT -p {low} -m comment --comment "Kubernetes nodeport '
                   f'{proto} port for masquerade purpose{hashed}" -m set --match-set '
                   f"{plain} {match} -j KUBE-MARK-MASQ")
    nat += ["-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ",
            "-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT",
            *(["-A KUBE-SERVICES -m set --match-set KUBE-LOAD-BALANCER dst,dst -j ACCEPT"]
              if "KUBE-LOAD-BALANCER" in (used or set()) else []), "COMMIT"]
    filt = ["*filter", ":KUBE-FORWARD - [0:0]", ":KUBE-NODE-PORT - [0:0]",
            ":KUBE-PROXY-FIREWALL - [0:0]", ":KUBE-SOURCE-RANGES-FIREWALL - [0:0]",
            *firewall, *KUBE_FORWARD,
            '-A KUBE-NODE-PORT -m comment --comment "Kubernetes health check node port" -m set '
            "--match-set KUBE-HEALTH-CHECK-NODE-PORT dst -j ACCEPT", "COMMIT"]
    return filt + nat


def _numeric(key: str) -> tuple[int, int]:
    ip, port = key.rsplit(":", 1)
    return int(ipaddress.IPv4Address(ip)), int(port)


def arrival_steps(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel,
                  table: EndpointTable | None, other_services: int) -> Iterable[str]:
    """The ipset that decides masquerade, then the virtual server on the node address."""
    view = proxy.views[sp.index]
    proto = sp.port.protocol.lower()
    upper = sp.port.protocol
    local = view.local_policy
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
    if not view.any:
        yield ("  no real servers: IPVS answers ICMP port unreachable (ip_vs_leave): "
               "connection refused")


def choice_steps(sp: ServicePortModel, table: EndpointTable, choice: int, client_ip: int,
                 affinity: bool) -> Iterable[str]:
    """The scheduler's real server (and the persistence template that pins it)."""
    key = table.keys[choice]
    yield f"scheduler picks real server {key} (Masq)"
    if affinity:
        yield (f"persistent {sp.service.affinity_timeout}: a template pins "
               f"{ip_str(client_ip)} to {key} on this virtual server")


RULES = ModeRules(tables=ipvsadm, arrival=arrival_steps, choice=choice_steps,
                  masquerade=KUBE_POSTROUTING_STEP,
                  closed_nodeport="no IPVS virtual server on {ip}:{port}")
