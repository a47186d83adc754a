"""The firewalls on a connection's way: cloud security group, node firewall, NetworkPolicy.

Built only when a scenario configures one of them (otherwise the engine holds ``None``
and a connection pays one attribute test). Checked once per *new* connection, in two
halves around kube-proxy's choice, in the order the kernel meets them: what comes before
the proxy's hook (security group, PREROUTING, INPUT) cannot change its state; FORWARD and
NetworkPolicy come after the DNAT and depend on the chosen pod (which chain the packet
traverses, which source the pod sees: npsim/scenario/firewall.py,
npsim/scenario/netpol.py). Which of INPUT or FORWARD a packet traverses depends on the
kube-proxy mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npsim.cluster.model import Cluster, ip_str
from npsim.outcomes import (
    FIREWALL_DROPPED,
    FIREWALL_REJECTED,
    POLICY_DROPPED,
    SECURITY_GROUP_DROPPED,
)
from npsim.scenario.firewall import (
    Chain,
    NodeFirewall,
    SecurityGroupRule,
    build_node_firewall,
    build_security_group,
)
from npsim.scenario.netpol import NetworkPolicy, admits
from npsim.sim.timeline import EventLog

if TYPE_CHECKING:
    from npsim.proxy.base import KubeProxy
    from npsim.scenario.scenario import Scenario


@dataclass
class Decision:
    """Why a connection stops: a failure reason, whether the client waits for its
    timeout (DROP) or learns at once (REJECT), and the words for explain."""

    reason: int
    times_out: bool
    why: str


class ConnectionClose:
    """Closes a guarded connection: frees its connlimit slots (and tells IPVS)."""

    __slots__ = ("inner", "counted")

    def __init__(self, inner: Any, counted: list[tuple[Chain, list[tuple[int, int]]]]) -> None:
        self.inner = inner
        self.counted = counted

    def closed(self, key: str, now: float) -> None:
        if self.inner is not None:
            self.inner.closed(key, now)
        for chain, entries in self.counted:
            chain.closed(entries)


class Guard:
    """The scenario's firewalls, per node, with their connlimit counters."""

    def __init__(self, cluster: Cluster, proxies: Sequence[KubeProxy],
                 firewalls: list[NodeFirewall | None],
                 security_group: list[SecurityGroupRule] | None,
                 policies: list[NetworkPolicy], events: EventLog) -> None:
        self.cluster = cluster
        self.proxies = proxies  # per node: which chains its mode's packets traverse
        self.firewalls = firewalls
        self.security_group = security_group
        self.policies = policies
        self.events = events
        self.counts_connections = any(
            rule.connlimit_above is not None for fw in firewalls if fw is not None
            for chain in fw.chains.values() for rule in chain.rules)
        self.pending: list[tuple[Chain, list[tuple[int, int]]]] = []

    @classmethod
    def build(cls, scenario: Scenario, cluster: Cluster, proxies: Sequence[KubeProxy],
              events: EventLog) -> Guard | None:
        """None when the scenario has no firewall, security group or NetworkPolicy."""
        spec = scenario.spec.cluster
        per_node = [ns.firewall or spec.firewall for ns in spec.nodes]
        policies = list(getattr(scenario, "network_policies", {}).values())
        if all(f is None for f in per_node) and spec.security_group is None and not policies:
            return None
        firewalls = [build_node_firewall(f) if f is not None else None for f in per_node]
        group = (build_security_group(spec.security_group) if spec.security_group is not None
                 else None)
        return cls(cluster, proxies, firewalls, group, policies, events)

    # --- the checks ------------------------------------------------------------------------

    def check(self, entry: int, kind: str, source: int, protocol: str, node_port: int,
              snat: bool, pod: int, target_port: int, now: float,
              steps: list[str] | None = None) -> Decision | None:
        """None if the connection gets through (its connlimit slots are then pending
        until :meth:`opened`), else why not. ``kind``: external, pod, host, or clusterip
        (in-cluster traffic to the ClusterIP: only NetworkPolicy applies). ``steps``
        collects explain's words. The engine calls the two halves around kube-proxy's
        choice: :meth:`before_choice`, then :meth:`after_choice`."""
        stop = self.before_choice(entry, kind, source, protocol, node_port, now, steps)
        if stop is not None:
            return stop
        return self.after_choice(entry, kind, source, protocol, node_port, snat, pod,
                                 target_port, now, steps)

    def before_choice(self, entry: int, kind: str, source: int, protocol: str,
                      node_port: int, now: float,
                      steps: list[str] | None = None) -> Decision | None:
        """What a packet meets before kube-proxy picks an endpoint: the cloud security
        group (in front of the node), the node's PREROUTING, and INPUT where the proxy
        hooks in after it (IPVS schedules in LOCAL_IN after the filter table, priority
        NF_IP_PRI_NAT_SRC - 2 in ``net/netfilter/ipvs/ip_vs_core.c``; userspace accepts on
        its own socket). A connection stopped here leaves the scheduler's state (IPVS rr
        cursor, userspace round robin, affinity) as it was."""
        self.pending = []
        proto = protocol.lower()
        if self.security_group is not None and kind == "external":
            hit = next((r for r in self.security_group if r.allows(source, proto, node_port)),
                       None)
            if hit is None:
                if steps is not None:
                    steps.append(f"security group: no rule allows {ip_str(source)} to "
                                 f"{proto}/{node_port}: dropped (default deny)")
                return Decision(SECURITY_GROUP_DROPPED, True, "security group")
            if steps is not None:
                steps.append(f"security group: allowed ({proto} {hit.first}-{hit.last} from "
                             f"{hit.source})")
        return self._chains(("PREROUTING", "INPUT"), entry, kind, source, proto, node_port,
                            False, now, steps)

    def after_choice(self, entry: int, kind: str, source: int, protocol: str,
                     node_port: int, snat: bool, pod: int, target_port: int, now: float,
                     steps: list[str] | None = None) -> Decision | None:
        """What a packet meets after kube-proxy's DNAT chose ``pod``: the node's FORWARD
        (iptables/nftables: filter FORWARD runs after nat PREROUTING, so the choice, and
        an affinity entry, are made even for a packet FORWARD drops), then the pod's
        NetworkPolicy."""
        stop = self._chains(("FORWARD",), entry, kind, source, protocol.lower(), node_port,
                            snat, now, steps)
        if stop is not None:
            return stop
        if self.policies:
            target = self.cluster.pods[pod]
            seen, source_pod = self._seen(entry, kind, source, snat, target.node)
            local_host = seen in (self.cluster.nodes[target.node].ip,
                                  self.cluster.nodes[target.node].bridge_ip)
            if local_host:
                ok, why = True, ("the source is the pod's own node: always allowed")
            else:
                ok, why = admits(self.policies, target.namespace, target.labels, seen,
                                 source_pod, protocol, target_port, target.container_ports)
            if steps is not None:
                steps.append(f"NetworkPolicy at {target.name}: source seen {ip_str(seen)}: "
                             + why + ("" if ok else ": dropped"))
            if not ok:
                self.pending = []
                return Decision(POLICY_DROPPED, True, "NetworkPolicy")
        return None

    def _chains(self, names: tuple[str, ...], entry: int, kind: str, source: int, proto: str,
                node_port: int, snat: bool, now: float,
                steps: list[str] | None) -> Decision | None:
        """Walk the node firewall's chains ``names`` that this node's mode traverses."""
        firewall = self.firewalls[entry] if kind != "clusterip" else None
        if firewall is None:
            return None
        node = self.cluster.nodes[entry]
        proxy = self.proxies[entry]
        for name in names:
            chain = firewall.chain(name)
            if chain is None:
                continue
            if name not in proxy.firewall_chains:
                if steps is not None:
                    steps.append(f"node firewall {name}: not traversed in {proxy.mode} mode "
                                 + _why_not(name))
                continue
            if name == "FORWARD" and proxy.forward_accepts_marked and snat:
                if steps is not None:
                    steps.append("node firewall FORWARD: KUBE-FORWARD (first in FORWARD) "
                                 "ACCEPTs the masquerade-marked packet before your rules")
                continue
            dport = node_port if proxy.input_sees_node_port else None
            verdict, index, logged, counted = chain.walk(source, proto, dport)
            for i in logged:
                rule = chain.rules[i]
                self.events.record(now, "firewall_log", node.name,
                                   f"{rule.log_prefix}{name} SRC={ip_str(source)} "
                                   f"PROTO={proto.upper()} DPT={node_port}")
                if steps is not None:
                    steps.append(f"node firewall {name} rule {i + 1} "
                                 f"({rule.describe().format(chain=name)}): LOG, go on")
            if steps is not None:
                what = (f"rule {index + 1} ({chain.rules[index].describe().format(chain=name)})"
                        if index >= 0 else f"policy {chain.policy}")
                steps.append(f"node firewall {name}: {what} -> {verdict}")
            if verdict == "DROP":
                return Decision(FIREWALL_DROPPED, True, f"{name} DROP")
            if verdict == "REJECT":
                return Decision(FIREWALL_REJECTED, False, f"{name} REJECT")
            if counted:
                self.pending.append((chain, counted))
        return None

    def _seen(self, entry: int, kind: str, source: int, snat: bool,
              pod_node: int) -> tuple[int, tuple[str, dict[str, str]] | None]:
        """The source address at the pod, and the source pod (namespace, labels) if any."""
        node = self.cluster.nodes[entry]
        if snat:
            return (node.bridge_ip if entry == pod_node else node.ip), None
        if kind in ("pod", "clusterip"):
            return source, ("default", {})  # in-cluster client pods: default, no labels
        return source, None

    def opened(self, inner: Any) -> ConnectionClose | None:
        """The connection is established: count it in its connlimit rules. Returns the
        closer to call when it ends (wrapping IPVS's own ``inner`` tracker), or None."""
        if not self.pending:
            return None
        for chain, entries in self.pending:
            chain.opened(entries)
        closer = ConnectionClose(inner, self.pending)
        self.pending = []
        return closer


def _why_not(chain: str) -> str:
    if chain == "INPUT":
        return ("(kube-proxy DNATs in PREROUTING: the packet is forwarded to the pod, never "
                "delivered to the node)")
    return "(IPVS forwards from INPUT; userspace relays from kube-proxy's own socket)"
