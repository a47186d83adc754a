"""What every mode's rule text shares: kube-proxy's names for a Service port, the
ClusterIP shown, the masquerade mark and the walk over the Services asked for.

ClusterIPs are a manifest's ``spec.clusterIP``; when none is given they are numbered
from the tenth address of ``cluster.serviceCIDR`` (10.96.0.10 by default) for display.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from dataclasses import dataclass

from npsim.cluster.model import Cluster, ServicePortModel, ip_str
from npsim.proxy.base import ServiceView

MASQ_MARK = "0x4000"  # masqueradeBit 14
# filter KUBE-FORWARD as iptables mode writes it after its INVALID drop (IPVS mode's text
# writes only these two)
KUBE_FORWARD = (
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark '
    f"{MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
    '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack '
    "--ctstate RELATED,ESTABLISHED -j ACCEPT")


def kube_forward_invalid(nfacct: bool) -> str:
    """The INVALID drop iptables mode writes while nf_conntrack_tcp_be_liberal is 0 (the
    default), counted by nfacct where the kernel has it (proxier.go,
    IPTablesCTStateInvalidDroppedNFAcctCounter)."""
    count = " -m nfacct --nfacct-name ct_state_invalid_dropped_pkts" if nfacct else ""
    return f"-A KUBE-FORWARD -m conntrack --ctstate INVALID{count} -j DROP"


def kube_postrouting(random_fully: bool) -> tuple[str, ...]:
    """nat KUBE-POSTROUTING as iptables and IPVS mode write it: masquerade what is marked,
    ``--random-fully`` when the node's iptables supports it (iptables.HasRandomFully)."""
    flag = " --random-fully" if random_fully else ""
    return (f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
            f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
            '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
            f'SNAT" -j MASQUERADE{flag}')


# a masqueraded connection's step in iptables and IPVS mode (both leave SNAT to iptables)
KUBE_POSTROUTING_STEP = "POSTROUTING -> KUBE-POSTROUTING: mark set, MASQUERADE --random-fully"


def hash_name(text: str, length: int) -> str:
    """The first ``length`` base32 characters of sha256(text): kube-proxy's chain names."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:length]


def port_name_string(sp: ServicePortModel) -> str:
    """ServicePortName.String(): ``ns/name:port``, or ``ns/name`` for an unnamed port."""
    base = f"{sp.service.namespace}/{sp.service.name}"
    return f"{base}:{sp.port.name}" if sp.port.name else base


def cluster_ip(sp: ServicePortModel, cluster: Cluster) -> str:
    """The Service's own ``spec.clusterIP`` when the manifest gives one; otherwise a
    display address numbered from 10.96.0.10, skipping the addresses manifests took."""
    if sp.service.cluster_ip is not None:
        return sp.service.cluster_ip
    taken = {int(ipaddress.IPv4Address(s.service.cluster_ip)) for s in cluster.service_ports
             if s.service.cluster_ip is not None}
    services = list(dict.fromkeys(s.service.name for s in cluster.service_ports
                                  if s.service.cluster_ip is None))
    # the first addresses of the range stay free, as kubeadm's kube-dns takes .10
    address = int(ipaddress.IPv4Network(cluster.service_cidr).network_address) + 10
    for _ in range(services.index(sp.service.name) + 1):
        while address in taken:
            address += 1
        address += 1
    return ip_str(address - 1)


def cluster_cidr(cluster: Cluster) -> str:
    """The local-traffic detector's range (kube-proxy --cluster-cidr)."""
    return str(cluster.pod_network)


def selected(cluster: Cluster, service: str | None) -> list[ServicePortModel]:
    """The Service ports shown: every one, or those of the Service ``service``."""
    return [sp for sp in cluster.service_ports if service in (None, sp.service.name)]


def affinity_timeout(sp: ServicePortModel) -> int | None:
    """``sessionAffinityConfig.clientIP.timeoutSeconds`` under ClientIP affinity, else None."""
    return (sp.service.affinity_timeout if sp.service.session_affinity == "ClientIP"
            else None)


@dataclass(frozen=True)
class Policies:
    """Which endpoint chains one Service port gets on this node, as kube-proxy's
    syncProxyRules decides them in iptables and nftables mode (pkg/proxy/*/proxier.go;
    ServicePort.UsesClusterEndpoints / UsesLocalEndpoints in pkg/proxy/serviceport.go).

    ``internal_local``: internalTrafficPolicy Local, so the ClusterIP goes to the Local
    chain; ``uses_cluster`` / ``uses_local``: the Cluster (KUBE-SVC-, service-) and Local
    (KUBE-SVL-, local-) chains are written; ``has_internal`` / ``has_external``: the
    ClusterIP / the external addresses have endpoints to go to (else DROP, or REJECT when
    the Service has none at all); ``endpoints``: the "IP:port" of every endpoint chain
    (allLocallyReachableEndpoints).
    """

    internal_local: bool
    uses_cluster: bool
    uses_local: bool
    has_internal: bool
    has_external: bool
    endpoints: tuple[str, ...]


def policies(sp: ServicePortModel, view: ServiceView) -> Policies:
    """:class:`Policies` of ``sp`` from this node's programmed ``view``."""
    svc = sp.service
    external = bool(sp.node_port) or svc.externally_accessible
    internal_local = svc.internal_traffic_policy == "Local"
    local_n = view.local.n if (internal_local or view.local_policy) else 0
    uses_cluster = view.any and view.cluster.n > 0 and (not internal_local or external)
    uses_local = local_n > 0 and (internal_local or (view.local_policy and external))
    keys = dict.fromkeys(view.cluster.keys if uses_cluster else ())
    if uses_local:
        keys.update(dict.fromkeys(view.local.keys))
    return Policies(internal_local, uses_cluster, uses_local,
                    view.any and (not internal_local or local_n > 0),
                    view.any and (not view.local_policy or local_n > 0), tuple(keys))
