"""``npsim explain``: what kube-proxy programs on a node, and one connection's walk.

Each mode's text lives with the mode (:mod:`npsim.proxy.rules`); this module picks the
mode's rules for a node's kube-proxy, walks one new connection through the same route,
tables and firewalls the simulator uses, and prints the node's firewalls.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from npsim.cluster.model import Cluster, ServicePortModel, ip_str
from npsim.explain.connections import draw_note
from npsim.proxy.base import KubeProxy
from npsim.proxy.nodeport_addresses import closed_step
from npsim.sim.guard import Guard

if TYPE_CHECKING:
    from npsim.explain.state import StateAt


def render(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    """The rules ``proxy``'s mode programs, for every Service or only ``service``."""
    return proxy.rules.tables(proxy, cluster, service)


# --- one connection's walk ------------------------------------------------------------


def trace(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel, client_ip: int,
          src_port: int, other_services: int = 0, guard: Guard | None = None,
          state: StateAt | None = None, seed: int | None = None) -> Iterable[str]:
    """Steps of one new connection from an external ``client_ip:src_port`` to this node's
    NodePort, decided by the same route, tables and firewalls the simulator uses.

    ``state`` (``--at``): the node, its kube-proxy and the chosen pod as they are then,
    so the walk ends in what the client sees; ``seed``: say what the choice drew on."""
    node = proxy.node
    view = proxy.views[sp.index]
    yield (f"packet {ip_str(client_ip)}:{src_port} -> {ip_str(node.ip)}:{sp.node_port} "
           f"({sp.port.protocol}) arrives at {node.name}, kube-proxy mode {proxy.mode}")
    now = 0.0
    client = None
    if state is not None:
        now = state.at
        client = state.client(sp.index)
        down = state.entry_down(node.index, client)
        if down is not None:  # the packet never meets the rules
            yield down.why
            return
    if view.any and not proxy.accepts("primary"):  # nodePortAddresses leaves it out
        yield closed_step(proxy.rules.closed_nodeport, ip_str(node.ip), sp.node_port,
                          proxy.nodeport_addresses)
        return
    table, snat, reply_lost = (proxy.route(view, "external", False, False) if view.any
                               else (None, False, False))
    served = table is not None and table.n > 0
    affinity = view.affinity
    choice = 0
    late: list[str] = []
    stop_late = None
    if served:
        choice = (affinity.pick(table, client_ip, src_port, now) if affinity is not None
                  else table.pick(client_ip, src_port, now))
    if served and guard is not None:
        # the firewalls a packet meets before kube-proxy's choice come first
        ep = table.endpoints[choice]
        steps: list[str] = []
        stop = guard.check(node.index, "external", client_ip, sp.port.protocol, sp.node_port,
                           snat, ep.pod, ep.port, now, steps)
        guard.pending = []  # a trace opens no connection
        late = [x for x in steps if x.startswith(("node firewall FORWARD", "NetworkPolicy"))]
        early = [x for x in steps if x not in late]
        yield from early
        if stop is not None and not late:  # stopped before kube-proxy's choice
            yield _stopped(stop.times_out)
            return
        stop_late = stop
    rules = proxy.rules  # the node's own mode (nodes may differ)
    yield from rules.arrival(proxy, cluster, sp, table, other_services)
    if not served:
        return
    key = table.keys[choice]
    yield from rules.choice(sp, table, choice, client_ip, affinity is not None)
    if seed is not None:
        yield draw_note(proxy, table, seed)
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
        yield f"{rules.masquerade} -> the pod sees source {ip_str(seen)}"
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
    if state is not None and client is not None:
        yield state.outcome(proxy, table, choice, client_ip, src_port, affinity, client).why
        return
    yield f"served by pod {cluster.pods[ep.pod].name} ({key}) on {cluster.nodes[ep.node].name}"


def _stopped(times_out: bool) -> str:
    return ("the client waits for its connect timeout" if times_out else
            "the client is refused at once (ICMP port unreachable)")


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
        proxy = guard.proxies[node]
        out.append(f"# node firewall of {guard.cluster.nodes[node].name} ({proxy.mode} mode: a "
                   "NodePort connection to a pod traverses "
                   f"{' and '.join(proxy.firewall_chains)})")
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
