"""``--nodeport-addresses`` (``cluster.kubeProxy.nodePortAddresses``): which of a node's
addresses a NodePort answers on.

kube-proxy's rules, re-read from kubernetes/kubernetes:

* ``cmd/kube-proxy/app/server.go``: the value ``primary`` alone becomes the node's
  primary IP as a /32 (``NewProxyServer``); nftables mode defaults an empty list to
  ``primary`` (``platformApplyDefaults``, KEP-3866), iptables and IPVS keep it empty.
* ``pkg/proxy/util/nodeport_addresses.go`` ``NewNodePortAddresses``: a family with no
  CIDR of its own gets ``0.0.0.0/0``; a zero CIDR makes the list match all (``MatchAll``);
  ``GetNodeIPs`` lists the node's interface addresses inside any CIDR.
* Match all: iptables jumps to KUBE-NODEPORTS for ``-m addrtype --dst-type LOCAL``
  (``! -d 127.0.0.0/8`` without localhost NodePorts); nftables matches ``fib daddr type
  local`` with ``ip daddr != 127.0.0.0/8`` and has no ``nodeport-ips`` set; IPVS makes
  virtual servers on every local address but loopback. Otherwise each mode writes the
  matching addresses: iptables one ``-d IP`` rule each (127.0.0.1 only with
  ``--iptables-localhost-nodeports``), nftables ``nodeport-ips`` elements (loopback
  skipped), IPVS virtual servers (loopback skipped).

npsim's node has these local addresses: its ``address`` (primary), an optional
``secondaryAddress`` (what ``address: secondary`` clients aim at; a node without one is
taken to have a secondary address that no CIDR list holds: only a match-all list opens
it), the pod bridge cni0 (the first host of its podCIDR) and 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from npsim.cluster.model import Node

LOOPBACK = int(ipaddress.IPv4Address("127.0.0.1"))
_LOOPBACK_START = int(ipaddress.IPv4Address("127.0.0.0"))


@dataclass(frozen=True, slots=True)
class NodePortAddresses:
    """One node's resolved ``--nodeport-addresses`` (IPv4): ``cidrs`` as (network, mask)
    pairs of ints; ``match_all`` when unset or a zero CIDR is listed."""

    values: tuple[str, ...]
    cidrs: tuple[tuple[int, int], ...]
    match_all: bool

    @classmethod
    def resolve(cls, setting: list[str] | None, mode: str, node_ip: int) -> NodePortAddresses:
        """The mode's default for an unset (or empty) list; ``primary`` as node_ip/32."""
        values = list(setting or (["primary"] if mode == "nftables" else []))
        if values == ["primary"]:
            values = [f"{ipaddress.IPv4Address(node_ip)}/32"]
        cidrs: list[tuple[int, int]] = []
        for text in values:
            net = ipaddress.IPv4Network(text, strict=False)
            if net.prefixlen == 0:  # IsZeroCIDR: ignore everything else
                return cls(tuple(values), (), True)
            cidrs.append((int(net.network_address), int(net.netmask)))
        if not cidrs:  # no CIDR of this family: 0.0.0.0/0
            return cls(("0.0.0.0/0",), (), True)
        return cls(tuple(values), tuple(cidrs), False)

    def matches(self, ip: int | None) -> bool:
        """Whether a local address is inside the list (``GetNodeIPs``)."""
        if ip is None:
            return False
        return self.match_all or any(ip & mask == net for net, mask in self.cidrs)

    @property
    def contains_loopback(self) -> bool:
        """``ContainsIPv4Loopback``: a CIDR whose address is a loopback one or that holds
        127.0.0.0 (kube-proxy sets route_localnet, and keeps localhost NodePorts, only
        then)."""
        return self.match_all or self.matches(_LOOPBACK_START) or any(
            net >> 24 == 127 for net, _ in self.cidrs)

    def node_ips(self, local: list[int]) -> list[int]:
        """The listed local addresses in numeric order (kube-proxy's order is a map's)."""
        return sorted({ip for ip in local if self.matches(ip)})


def local_addresses(node: Node, secondary: int | None) -> list[int]:
    """A node's interface addresses as npsim knows them: primary, secondary (if named),
    the cni0 bridge and loopback."""
    out = [node.ip, node.bridge_ip, LOOPBACK]
    if secondary is not None:
        out.insert(1, secondary)
    return out


def answering_kinds(npa: NodePortAddresses, node: Node, secondary: int | None,
                    loopback: bool) -> frozenset[str]:
    """The client address kinds (``primary``, ``secondary``, ``localhost``) a NodePort
    answers on. ``loopback``: whether the mode can serve 127.0.0.1 at all (iptables with
    localhost NodePorts; the userspace proxy's sockets)."""
    if npa.match_all:
        kinds = {"primary", "secondary", "localhost"}
    else:
        kinds = {kind for kind, ip in (("primary", node.ip), ("secondary", secondary),
                                       ("localhost", LOOPBACK)) if npa.matches(ip)}
    if not loopback:
        kinds.discard("localhost")
    return frozenset(kinds)


def closed_step(where: str, ip: str, port: int, npa: NodePortAddresses) -> str:
    """One walk step: the NodePort does not answer on this address (the engine's
    ``nodeport-closed``: the kernel answers the SYN with a RST). ``where``: the mode's
    ``rules.closed_nodeport``."""
    return (f"{where.format(ip=ip, port=port)}: {ip} is outside nodePortAddresses "
            f"{list(npa.values)}, so the packet is not DNATed; nothing listens on the port: "
            "connection refused")
