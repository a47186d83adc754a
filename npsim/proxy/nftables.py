"""nftables mode: ``numgen random mod N vmap { 0 : goto ep0, ... }``.

One verdict-map lookup picks endpoint i with probability 1/N (pkg/proxy/nftables
proxier.go ``writeServiceToEndpointRules``; KEP-3866), constant cost in
the number of Services (Kubernetes blog "NFTables mode for kube-proxy", 2025). Unlike
iptables, NodePorts answer only on
the node's primary address (``--nodeport-addresses primary`` default; never on
127.0.0.1): a client aiming at localhost or a secondary address gets no DNAT, nothing
listens there, and the connection is refused.
"""

from __future__ import annotations

from npsim.proxy.base import KubeProxy
from npsim.proxy.iptables import IptablesProxy
from npsim.proxy.rules import nftables as text


class NftablesProxy(IptablesProxy):
    mode = "nftables"
    rules = text.RULES
    forward_accepts_marked = False  # its own filter chains, not iptables' KUBE-FORWARD
    affinity_cap = None  # nft sets with timeouts have no default size cap

    # one transaction per sync, whatever the rule count (its cost is in syncBase)
    sync_seconds = KubeProxy.sync_seconds

    def loopback_node_ports(self) -> bool:
        """Never: ``ip daddr != 127.0.0.0/8`` with match-all, a listed loopback address
        skipped ("localhost NodePorts are not supported", proxier.go setupNFTables)."""
        return False
