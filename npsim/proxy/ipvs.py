"""IPVS mode: one virtual server per node address and NodePort, kernel schedulers.

What kube-proxy and the kernel do (``pkg/proxy/ipvs/proxier.go``; kernel
``net/netfilter/ipvs/ip_vs_*.c``; research notes in docs/kube-proxy-modes.md):

* every real server gets weight 1 (proxier.go ``syncEndpoint``), so ``wrr`` behaves as
  ``rr``, ``wlc`` as ``lc``, and ``nq`` as ``sed`` (with weight 1, nq's "first idle
  server" is also sed's first server with the fewest active connections);
* the kernel keeps real servers in a list with the newest added first
  (``list_add_rcu`` at the head) and kube-proxy adds them in Go map order, so each
  node's list order is its own random permutation; ties go to the first in list order;
* ``rr`` starts at the head and continues after its last pick, per virtual server, so
  every node runs its own independent sequence;
* ``lc``: least ``active*256 + inactive`` (``ip_vs_dest_conn_overhead``);
  ``sed``: least ``(active + 1) / weight``;
* ``sh``: ``hash_32(src_ip, 8)`` into 256 buckets filled round-robin from the list
  (kube-proxy does not set ``sh-port``); ``dh`` the same on the destination address,
  which for a NodePort is the node itself: one real server per node takes everything;
* ``mh``: Maglev table of M = 4093 slots, source IP *and port* hashed (kube-proxy sets
  ``mh-port``). The kernel uses hsiphash with fixed keys; npsim uses BLAKE2b for the
  offsets, skips and lookups, so the table has Maglev's properties but not the
  kernel's exact slot contents.

Counters are per node and per virtual server: a connection is *active* while open and
*inactive* for ``tcpFinTimeout`` (kernel default 120 s for FIN_WAIT/TIME_WAIT,
not checked against a kernel source) after it closes. Choice is O(log n) for lc/sed (a
tournament tree over list positions), O(1) for the others.

Graceful termination (pkg/proxy/ipvs ``graceful_termination.go``): a real server
removed by a sync is deleted at once when it has no connection (or the Service is
UDP/SCTP); otherwise it stays with weight 0 (no new connection goes to it, open ones
keep working) and is rechecked by the manager's one ticker, every
``rsCheckDeleteInterval`` = 60 s for every such server of the node (``wait.Until(
m.tryDeleteRs, rsCheckDeleteInterval)``: the first recheck comes 0-60 s after the removal,
at the ticker's phase, drawn per node), deleted once ActiveConn + InActConn is 0. A real
server that comes back meanwhile leaves that list and keeps its counters.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque

from npsim.cluster.model import ip_str
from npsim.proxy.base import Connection, EndpointTable, KubeProxy
from npsim.proxy.rules import ipvs as text

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh")
GOLDEN_RATIO_32 = 0x61C88647
SH_TAB_BITS = 8
MH_TABLE_SIZE = 4093  # primes[IP_VS_MH_TAB_INDEX] with the default CONFIG_IP_VS_MH_TAB_INDEX 12
_POS_BITS = 24  # list positions below 16M
RS_CHECK_DELETE_INTERVAL = 60.0  # graceful_termination.go rsCheckDeleteInterval


def hash_32(value: int, bits: int) -> int:
    """Linux ``hash_32`` (include/linux/hash.h)."""
    return ((value * GOLDEN_RATIO_32) & 0xFFFFFFFF) >> (32 - bits)


def _h64(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "little")


class MinTree:
    """Tournament tree: the first position holding the least key, O(log n) per update."""

    __slots__ = ("size", "tree")

    def __init__(self, keys: list[int]) -> None:
        size = 1
        while size < max(len(keys), 1):
            size *= 2
        self.size = size
        empty = (1 << 62) - 1
        tree = [empty] * (2 * size)
        for pos, key in enumerate(keys):
            tree[size + pos] = (key << _POS_BITS) | pos
        for i in range(size - 1, 0, -1):
            a, b = tree[2 * i], tree[2 * i + 1]
            tree[i] = a if a < b else b
        self.tree = tree

    def set(self, pos: int, key: int) -> None:
        tree = self.tree
        i = self.size + pos
        tree[i] = (key << _POS_BITS) | pos
        i >>= 1
        while i:
            a, b = tree[2 * i], tree[2 * i + 1]
            tree[i] = a if a < b else b
            i >>= 1

    def first_min(self) -> int:
        return self.tree[1] & ((1 << _POS_BITS) - 1)


class IpvsTable(EndpointTable):
    """One virtual server (this node's address : NodePort) and its real servers.

    ``order`` holds endpoint indices in the kernel's list order. The table is updated in
    place on every sync so that counters and the rr position survive endpoint changes.
    """

    __slots__ = ("scheduler", "order", "position", "active", "inactive", "closing",
                 "fin_timeout", "cursor", "tree", "buckets", "node_ip", "rng", "graceful",
                 "next_check", "deleted", "recheck_origin")

    def __init__(self, service_port, endpoints, columns, scheduler: str, node_ip: int,  # noqa: ANN001
                 rng, fin_timeout: float, recheck_origin: float = 0.0) -> None:  # noqa: ANN001
        super().__init__(service_port, endpoints, columns)
        self.recheck_origin = recheck_origin  # the node's recheck ticker: origin + k x 60 s
        self.scheduler = "rr" if scheduler == "wrr" else "lc" if scheduler == "wlc" else (
            "sed" if scheduler == "nq" else scheduler)
        self.node_ip = node_ip
        self.rng = rng
        self.fin_timeout = fin_timeout
        self.active: dict[str, int] = {}
        self.inactive: dict[str, int] = {}
        self.closing: deque[tuple[float, str]] = deque()
        self.cursor = -1
        self.order: list[int] = []
        # weight-0 real servers: key -> next recheck time; and (time, key) once deleted
        self.graceful: dict[str, float] = {}
        self.next_check = float("inf")
        self.deleted: list[tuple[float, str]] = []
        self.reprogram(endpoints, columns, initial=True)

    # --- syncs ----------------------------------------------------------------------

    def reprogram(self, endpoints, columns, initial: bool = False, now: float = 0.0) -> None:  # noqa: ANN001
        """New endpoint set (with its columns): survivors keep their list order, new ones
        go to the head; removed real servers with connections stay with weight 0
        (graceful termination)."""
        if self.graceful:
            self._recheck(now)
        old_keys = [self.keys[i] for i in self.order] if not initial else []
        EndpointTable.__init__(self, self.service_port, endpoints, columns)
        index_of = self.index_of  # key -> position, from the shared columns (read only)
        survivors = [index_of[k] for k in old_keys if k in index_of]
        known = set(old_keys)
        fresh = [i for i in range(self.n) if self.keys[i] not in known]
        fresh = [fresh[j] for j in self.rng.permutation(len(fresh))]  # Go map order
        fresh.reverse()  # each add goes to the head of the kernel list
        # the rr cursor stays on its server; if that server is removed it steps back to
        # the previous survivor, so rr continues with the successor (ip_vs_rr_del_dest)
        cursor_key = None
        if 0 <= self.cursor < len(old_keys):
            for key in reversed(old_keys[: self.cursor + 1]):
                if key in index_of:
                    cursor_key = key
                    break
        self.order = fresh + survivors
        self.position = {e: p for p, e in enumerate(self.order)}
        self.cursor = self.position[index_of[cursor_key]] if cursor_key is not None else -1
        tcp = self.service_port.port.protocol == "TCP"
        for key in list(self.active):
            if key in index_of:
                self.graceful.pop(key, None)  # back before it was deleted
            elif key not in self.graceful:
                if tcp and self.active[key] + self.inactive.get(key, 0) > 0:
                    self.graceful[key] = self._next_recheck(now)  # weight 0
                else:  # deleted at once: its counters go with it
                    self._delete(key, now)
        self.next_check = min(self.graceful.values(), default=float("inf"))
        for key in self.keys:
            self.active.setdefault(key, 0)
            self.inactive.setdefault(key, 0)
        self._rebuild()

    def _next_recheck(self, now: float) -> float:
        """The recheck ticker's first tick after ``now``."""
        k = math.floor((now - self.recheck_origin) / RS_CHECK_DELETE_INTERVAL) + 1
        return self.recheck_origin + k * RS_CHECK_DELETE_INTERVAL

    def _delete(self, key: str, now: float) -> None:
        del self.active[key]
        self.inactive.pop(key, None)
        self.graceful.pop(key, None)
        self.deleted.append((now, key))

    def _recheck(self, now: float) -> None:
        """Run the 60 s rechecks of weight-0 real servers due by ``now``, in time order,
        each seeing the counters as they were at its own time."""
        while self.graceful and self.next_check <= now:
            key = min(self.graceful, key=self.graceful.__getitem__)
            check = self.graceful[key]
            self._expire(check)
            if self.active[key] + self.inactive.get(key, 0) == 0:
                self._delete(key, check)
            else:
                self.graceful[key] = check + RS_CHECK_DELETE_INTERVAL
            self.next_check = min(self.graceful.values(), default=float("inf"))

    def weight(self, key: str) -> int:
        """1 for a real server in service, 0 for one draining (graceful termination)."""
        return 0 if key in self.graceful else 1

    def _rebuild(self) -> None:
        sched = self.scheduler
        if sched in ("lc", "sed"):
            self.tree = MinTree([self._key(self.order[p]) for p in range(self.n)])
        elif sched in ("sh", "dh") and self.n:
            self.buckets = [self.order[b % self.n] for b in range(1 << SH_TAB_BITS)]
        elif sched == "mh" and self.n:
            self.buckets = self._maglev()

    def _key(self, index: int) -> int:
        key = self.keys[index]
        if self.scheduler == "lc":
            return self.active[key] * 256 + self.inactive[key]
        return self.active[key]  # sed / nq: (active + 1) / weight, weight 1

    def _maglev(self) -> list[int]:
        m = MH_TABLE_SIZE
        prefs = []
        for e in self.order:
            key = self.keys[e]
            prefs.append([_h64("offset/" + key) % m, _h64("skip/" + key) % (m - 1) + 1])
        table = [-1] * m
        filled = 0
        while True:
            for slot, e in enumerate(self.order):
                offset, skip = prefs[slot]
                while table[offset] != -1:
                    offset = (offset + skip) % m
                table[offset] = e
                prefs[slot][0] = (offset + skip) % m
                filled += 1
                if filled == m:
                    return table

    # --- scheduling ---------------------------------------------------------------

    def retire(self) -> None:
        self.rng = None

    def pick(self, client_ip: int, src_port: int, now: float) -> int:
        sched = self.scheduler
        if self.next_check <= now:
            self._recheck(now)
        if self.closing and self.closing[0][0] <= now:
            self._expire(now)
        if sched == "rr":
            self.cursor = (self.cursor + 1) % self.n
            return self.order[self.cursor]
        if sched in ("lc", "sed"):
            return self.order[self.tree.first_min()]
        if sched == "sh":
            return self.buckets[hash_32(client_ip, SH_TAB_BITS)]
        if sched == "dh":
            return self.buckets[hash_32(self.node_ip, SH_TAB_BITS)]
        # mh with the mh-port flag kube-proxy sets
        return self.buckets[_h64(f"{ip_str(client_ip)}:{src_port}") % MH_TABLE_SIZE]

    def opened(self, key: str, now: float) -> None:
        if key in self.active:
            self.active[key] += 1
            self._update(key)

    def closed(self, key: str, now: float) -> None:
        if self.next_check <= now:
            self._recheck(now)
        if self.active.get(key, 0) > 0:
            self.active[key] -= 1
            self.inactive[key] += 1
            self.closing.append((now + self.fin_timeout, key))
            self._update(key)

    def _expire(self, now: float) -> None:
        closing = self.closing
        while closing and closing[0][0] <= now:
            _, key = closing.popleft()
            if self.inactive.get(key, 0) > 0:
                self.inactive[key] -= 1
                self._update(key)

    def _update(self, key: str) -> None:
        if self.scheduler in ("lc", "sed"):
            index = self.index_of.get(key)
            if index is not None:  # a weight-0 real server is not in the tree
                self.tree.set(self.position[index], self._key(index))


class IpvsProxy(KubeProxy):
    mode = "ipvs"
    rules = text.RULES
    firewall_chains = ("PREROUTING", "INPUT")
    counts_connections = True
    short_circuits_pods = False  # one virtual server per node address, whoever sends
    separate_virtual_servers = True
    local_misses_go_remote = True

    def opened(self, table, choice, now):  # noqa: ANN001, ANN201
        """IPVS counts each real server's active connections (the lc/wlc/sed/nq
        schedulers read them); the engine closes the count when the connection ends."""
        key = table.keys[choice]
        table.opened(key, now)
        conn = Connection()  # Connection.of(table, key), inline: once per connection
        conn.in_flight = 0
        conn.all_sent = False
        conn.closer = table
        conn.key = key
        return conn

    @classmethod
    def make(cls, node, rng, spec):  # noqa: ANN001, ANN206
        return cls(node, rng, spec.ipvs.scheduler, spec.ipvs.tcp_fin_timeout)

    def __init__(self, node, rng, scheduler: str = "rr", fin_timeout: float = 120.0) -> None:  # noqa: ANN001
        super().__init__(node, rng)
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown IPVS scheduler {scheduler!r}; known: {SCHEDULERS}")
        self.scheduler = scheduler
        self.fin_timeout = fin_timeout
        # the graceful-termination manager's ticker phase (npsim/sim/build.py draws it)
        self.recheck_origin = 0.0

    def make_table(self, service_port, endpoints, previous, now):  # noqa: ANN001, ANN201
        if isinstance(previous, IpvsTable):
            previous._recheck(now)  # rechecks due before now see the counters of their time
            previous._expire(now)
            previous.reprogram(endpoints, self.columns(endpoints), now=now)
            return previous
        return IpvsTable(service_port, endpoints, self.columns(endpoints), self.scheduler,
                         self.node.ip, self.rng, self.fin_timeout, self.recheck_origin)

    def loopback_node_ports(self) -> bool:
        # IPVS binds NodePorts to node addresses except loopback (pkg/proxy/ipvs/proxier.go)
        return False
