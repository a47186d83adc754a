"""userspace mode's text: kube-proxy's own round-robin list per Service port (there are
no kernel rules to show: the kube-proxy process relays every connection), and a
connection's walk.
"""

from __future__ import annotations

from collections.abc import Iterable

from npsim.cluster.model import Cluster, ServicePortModel
from npsim.proxy.base import EndpointTable, KubeProxy, ModeRules
from npsim.proxy.rules.common import (
    KUBE_POSTROUTING_STEP,
    port_name_string,
    selected,
)


def userspace_table(proxy: KubeProxy, cluster: Cluster, service: str | None = None) -> str:
    """Each Service port's shuffled endpoint list and the index the next connection takes
    (roundrobin.go)."""
    lines = [f"# kube-proxy (userspace) on {proxy.node.name}: round robin over a shuffled list"]
    for sp in selected(cluster, service):
        table = proxy.tables[sp.index]  # a RoundRobinTable (proxy/userspace.py)
        lines.append(f"{port_name_string(sp)} nodePort {sp.node_port} (next index "
                     f"{table.index if table.n else '-'}):")  # type: ignore[attr-defined]
        lines += [f"  {i}: {table.keys[e]}" for i, e in enumerate(getattr(table, "order", []))]
    return "\n".join(lines)


def arrival_steps(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel,
                  table: EndpointTable | None, other_services: int) -> Iterable[str]:
    """The redirect to kube-proxy's proxy port, which closes at once without endpoints."""
    yield "REDIRECT to kube-proxy's proxy port (the kube-proxy process)"
    if not proxy.views[sp.index].any:
        yield (f"{port_name_string(sp)} has no endpoints: kube-proxy closes the connection "
               "(refused)")


def choice_steps(sp: ServicePortModel, table: EndpointTable, choice: int, client_ip: int,
                 affinity: bool) -> Iterable[str]:
    """The round robin's pick, which the process dials itself."""
    yield f"round robin picks {table.keys[choice]}; kube-proxy opens its own connection to it"


# the pod always sees the node (KubeProxy.pod_sees_node): the masquerade step never shows
RULES = ModeRules(tables=userspace_table, arrival=arrival_steps, choice=choice_steps,
                  masquerade=KUBE_POSTROUTING_STEP,
                  closed_nodeport="kube-proxy opened no socket on {ip}:{port}")
