"""Legacy userspace mode (deprecated 1.23, removed in Kubernetes 1.26): for teaching.

kube-proxy itself accepted each connection on a per-Service proxy port and opened a
second connection to the endpoint (``proxysocket.go``), so every request passes through
the node's kube-proxy *process*: a relay with its own capacity and latency, and the pod
always sees the node as the source. Balancing is round robin over the endpoint list,
which ``roundrobin.go`` shuffles (``ShuffleStrings``) and restarts at index 0 whenever
the set changes. A failed dial is retried on the next endpoint with timeouts 250 ms,
500 ms, 1 s and 2 s (``tryConnect`` in the removed ``pkg/proxy/userspace``) -- unlike iptables, IPVS
and nftables, where "the connection fails".
"""

from __future__ import annotations

from npsim.proxy.base import EndpointTable, KubeProxy
from npsim.proxy.rules import userspace as text

DIAL_TIMEOUTS = (0.25, 0.5, 1.0, 2.0)


class RoundRobinTable(EndpointTable):
    __slots__ = ("order", "index")

    def pick(self, client_ip: int, src_port: int, now: float) -> int:
        choice = self.order[self.index]
        self.index = (self.index + 1) % self.n
        return choice


class UserspaceProxy(KubeProxy):
    mode = "userspace"
    rules = text.RULES
    firewall_chains = ("PREROUTING", "INPUT")
    input_sees_node_port = False
    pod_sees_node = True
    relays_connections = True

    def first_packet_cost(self, spec, services, generator):  # noqa: ANN001, ANN201
        """Nothing in the kernel: the cost is the relay's (its queue and latency)."""
        return None

    def redial(self, table, choice, source, src_port, now, servers, affinity):  # noqa: ANN001, ANN201
        """One dial per timeout, each to the next endpoint in the round robin; a refusal
        comes at once, a silent address costs the whole timeout. A retry resets the
        client's affinity (``roundrobin.go`` sessionAffinityReset)."""
        waited = 0.0
        for attempt, timeout in enumerate(DIAL_TIMEOUTS):
            if attempt:
                choice = table.pick(source, src_port, now)
            dialled = servers[table.pods[choice]]
            if dialled.alive or dialled.hung:  # a hung process still accepts
                break
            waited += timeout if dialled.silent else 0.0
        else:
            return -1, waited
        if affinity is not None:
            affinity.remember(table.keys[choice], source, now)
        return choice, waited

    def make_table(self, service_port, endpoints, previous, now):  # noqa: ANN001, ANN201
        table = RoundRobinTable(service_port, endpoints, self.columns(endpoints))
        if previous is not None and sorted(previous.keys) == sorted(table.keys):
            table.order, table.index = previous.order, previous.index  # unchanged set
        else:
            table.order = [int(i) for i in self.rng.permutation(table.n)]
            table.index = 0
        return table
