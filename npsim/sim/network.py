"""The nodes as the network sees them: who answers, how long a hop takes, conntrack.

:class:`NodeNetwork` is the part of a run that knows whether a node answers on its
addresses (down while crashed or cut off), when a SYN to a silent node gets through
(from the fault plan, worked out once: the hot path never reads the scenario), the
latency of each node-to-node hop, and the established flows whose path changes under
their client (:class:`Conntrack`). Faults change it, the engine and the probes read it.
"""

from __future__ import annotations

from collections.abc import Sequence

from npsim.cluster.model import Cluster
from npsim.dists import Sampler
from npsim.scenario.faultplan import FaultPlan, answers_again
from npsim.sim.clients import Population, syn_send_times
from npsim.streams import Streams


class Conntrack:
    """Established flows whose path changes under their client (cold path only).

    ``broken`` maps a connection id to True (its entry node went down: no answer from
    now on) or False (a UDP conntrack entry was deleted: the next packet is a new flow,
    balanced afresh through the same node). TCP entries are never deleted
    (pkg/proxy/conntrack/cleanup.go CleanStaleEntries handles UDP only).
    """

    __slots__ = ("populations", "broken")

    def __init__(self, populations: Sequence[Population]) -> None:
        self.populations = populations
        self.broken: dict[int, bool] = {}

    def cut(self, node: int) -> None:
        """Established connections entering through ``node`` get no answer from now on."""
        for pop in self.populations:
            for slot, left in enumerate(pop.remaining):
                if left and pop.conn_entry[slot] == node:
                    self.broken[pop.conn_id[slot]] = True

    def flush_udp(self, node: int, service_port: int, serving: set[int]) -> None:
        """After a sync on ``node``: delete the UDP entries of flows whose endpoint is no
        longer serving (traffic policy and terminating state are ignored upstream)."""
        broken = self.broken
        for pop in self.populations:
            if pop.service_port != service_port:
                continue
            for slot, left in enumerate(pop.remaining):
                if (left and pop.conn_entry[slot] == node and pop.conn_pod[slot] not in serving
                        and pop.conn_id[slot] not in broken):
                    broken[pop.conn_id[slot]] = False


class NodeNetwork:
    """Node up/down, SYN answers, hop latencies and conntrack of one run."""

    def __init__(self, cluster: Cluster, streams: Streams, plan: FaultPlan,
                 populations: Sequence[Population]) -> None:
        self.cluster = cluster
        self.streams = streams
        n = len(cluster.nodes)
        self.down = [False] * n  # crashed or cut off: see answers
        for node in plan.down_nodes(cluster.node_index):  # down before the run starts
            self.down[node] = True
        # per node, the outages that silence it and end: when a SYN gets through again
        self._silent = plan.silent_windows(cluster.node_index, n)
        self.conntrack = Conntrack(populations)
        self._init_hops()

    def answers(self, node: int) -> bool:
        """Whether the node answers on its addresses (False while crashed or cut off:
        its NodePort accepts nothing and a client connecting there times out)."""
        return not self.down[node]

    def go_down(self, node: int) -> None:
        """The node stops answering; flows entering through it get no answer any more."""
        self.down[node] = True
        self.conntrack.cut(node)

    def come_up(self, node: int) -> None:
        self.down[node] = False

    def syn_answered(self, pop: Population, node: int, now: float) -> float | None:
        """After how long a retransmitted SYN gets through to ``node``, down at ``now``:
        the first retransmission (1 s, 3 s, 7 s, ... after the first SYN) sent once the
        crash or partition of that node ends, if that comes before the client gives up;
        None if it never does."""
        back = answers_again(self._silent[node], now)
        for offset in syn_send_times(pop.syn_retries, pop.connect_timeout, pop.syn_linear):
            if now + offset >= back:
                return offset
        return None

    # --- hops ----------------------------------------------------------------------------

    def _init_hops(self) -> None:
        """Hop latency samplers, shared per kind of hop rather than made per node pair.

        A hop's latency depends only on its kind: the same node, the same zone, a pair of
        zones, or an explicit ``network.links`` entry. One sampler (and stream) per kind:
        ``hop/same-node``, ``hop/zone/<from>/<to>``, ``link/<from>/<to>`` for explicit
        links. A per-pair stream cost a numpy Generator per pair used (about a million
        pairs at 1000 nodes). Each stream still depends only on its own name and on how
        many hops of its kind were drawn, never on which other nodes exist.
        """
        cluster = self.cluster
        zones: dict[str, int] = {}
        self._zone_of = [zones.setdefault(n.zone, len(zones)) for n in cluster.nodes]
        self._zone_names = list(zones)
        self._zone_hops: dict[int, Sampler] = {}
        self._same_node = cluster.same_node.sampler(self.streams.generator("hop/same-node"))
        self._links: dict[tuple[int, int], Sampler] | None = None
        if cluster.links:
            self._links = {}
            for (a, b), latency in cluster.links.items():  # one stream per direction
                rng = self.streams.generator(
                    f"link/{cluster.nodes[a].name}/{cluster.nodes[b].name}")
                self._links[(a, b)] = latency.sampler(rng)

    def hop(self, a: int, b: int) -> Sampler:
        """The latency sampler of the hop from node ``a`` to a pod on node ``b``."""
        links = self._links
        if links is not None:
            sampler = links.get((a, b))
            if sampler is not None:
                return sampler
        if a == b:
            return self._same_node
        za, zb = self._zone_of[a], self._zone_of[b]
        key = za * len(self._zone_names) + zb
        sampler = self._zone_hops.get(key)
        if sampler is None:
            dist = self.cluster.same_zone if za == zb else self.cluster.cross_zone
            names = self._zone_names
            sampler = self._zone_hops[key] = dist.sampler(
                self.streams.generator(f"hop/zone/{names[za]}/{names[zb]}"))
        return sampler
