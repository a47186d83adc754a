"""sessionAffinity: ClientIP, kept per node as each kube-proxy mode keeps it.

* iptables: an ``-m recent`` list per endpoint chain (``KUBE-SEP-...``) on each node.
  The Service chain first checks, endpoint by endpoint, ``--rcheck --seconds T`` on the
  packet's source address *as the node sees it* (before SNAT); the endpoint chain
  ``--set``s it. Only a connection's first packet passes nat, so the timer restarts on
  each new connection. A list holds ``ip_list_tot`` = 100 addresses and drops the least
  recently seen, so past 100 clients per endpoint affinity silently breaks
  (kernel ``net/netfilter/xt_recent.c``, ``ip_list_tot``).
* nftables: a set per endpoint with ``flags dynamic,timeout``; ``update`` refreshes it;
  no size cap.
* IPVS: a persistence template per client per virtual server (node address : port),
  renewed by each new connection (LVS persistence).
* userspace: kube-proxy's in-process map, renewed on every use.

In every mode, when the pinned endpoint is gone the client is balanced afresh on its
next connection. A client reaching two nodes may be pinned to two different pods.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

RECENT_LIST_SIZE = 100  # xt_recent ip_list_tot default


class BalancedTable(Protocol):
    """What affinity reads of a mode's endpoint table: an
    :class:`~npsim.proxy.base.EndpointTable`, named by shape because base.py imports this
    module for its views' :class:`AffinityTable` (naming the class would tie the two in a
    circle)."""

    keys: list[str]
    index_of: dict[str, int]

    def pick(self, client_ip: int, src_port: int, now: float) -> int: ...


class AffinityTable:
    """The affinity state of one node for one Service port."""

    __slots__ = ("timeout", "cap", "pinned", "recent", "evictions")

    def __init__(self, timeout: float, cap: int | None) -> None:
        self.timeout = timeout
        self.cap = cap
        self.pinned: dict[int, tuple[str, float]] = {}  # source ip -> (endpoint key, seen)
        self.recent: dict[str, OrderedDict[int, None]] = {}  # per endpoint, LRU of sources
        self.evictions = 0

    def pick(self, table: BalancedTable, source_ip: int, src_port: int, now: float) -> int:
        pinned = self.pinned.get(source_ip)
        if pinned is not None:
            key, seen = pinned
            if now - seen <= self.timeout:
                index = table.index_of.get(key)
                if index is not None:
                    self.remember(key, source_ip, now)
                    return index
        index = table.pick(source_ip, src_port, now)
        self.remember(table.keys[index], source_ip, now)
        return index

    def remember(self, key: str, source_ip: int, now: float) -> None:
        self.pinned[source_ip] = (key, now)
        if self.cap is None:
            return
        lru = self.recent.get(key)
        if lru is None:
            lru = self.recent[key] = OrderedDict()
        lru[source_ip] = None
        lru.move_to_end(source_ip)
        if len(lru) > self.cap:
            evicted, _ = lru.popitem(last=False)
            self.evictions += 1
            if self.pinned.get(evicted, ("",))[0] == key:
                del self.pinned[evicted]
