"""IPVS mode: the kernel schedulers as kube-proxy configures them (every weight 1).

kubernetes-semantics.md 2.1 and research notes (issue 3, section 5): the real-server list
is in the kernel's order (``table.order``; ties go to the first in it), counters are per
node and per virtual server, lc uses ``active*256 + inactive``, sed ``active + 1``, nq
takes the first idle server, sh/dh hash into 256 buckets filled round-robin from the
list, mh is a Maglev table keyed on source IP and port.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from npsim.proxy.ipvs import SCHEDULERS, IpvsProxy, IpvsTable, MinTree, hash_32

from .helpers import client, endpoints, node, run_frame, scenario, service_port

FAR = 1e9  # a fin timeout that never expires within a test


def make_table(scheduler: str, n: int, seed: int = 5, fin_timeout: float = FAR,
               node_ip: str = "172.18.0.2") -> IpvsTable:
    proxy = IpvsProxy(node(ip=node_ip), np.random.default_rng(seed), scheduler, fin_timeout)
    sp = service_port(endpoints=endpoints(n))
    proxy.program(sp, sp.endpoints)
    table = proxy.tables[sp.index]
    assert isinstance(table, IpvsTable)
    return table


def load(table: IpvsTable, index: int, active: int = 0, inactive: int = 0,
         now: float = 0.0) -> None:
    """Give endpoint ``index`` this many open and recently closed connections."""
    key = table.keys[index]
    for _ in range(active + inactive):
        table.opened(key, now)
    for _ in range(inactive):
        table.closed(key, now)


def brute_force(table: IpvsTable, overhead) -> int:  # noqa: ANN001
    """Least overhead, ties to the first in the kernel's list order."""
    best = min(range(table.n), key=lambda pos: (overhead(table.keys[table.order[pos]]), pos))
    return table.order[best]


def lc_overhead(table: IpvsTable):  # noqa: ANN201
    return lambda key: table.active[key] * 256 + table.inactive[key]


# --- rr ---------------------------------------------------------------------------------


def test_order_is_a_permutation() -> None:
    table = make_table("rr", 7)
    assert sorted(table.order) == list(range(7))


def test_rr_exact_sequence_follows_list_order_from_the_head() -> None:
    table = make_table("rr", 5)
    picks = [table.pick(1, 1, 0.0) for _ in range(17)]
    assert picks == [table.order[k % 5] for k in range(17)]


def test_wrr_equals_rr() -> None:
    rr, wrr = make_table("rr", 6, seed=9), make_table("wrr", 6, seed=9)
    assert wrr.scheduler == "rr"
    assert rr.order == wrr.order
    assert [rr.pick(1, 1, 0.0) for _ in range(20)] == [wrr.pick(1, 1, 0.0) for _ in range(20)]


def test_resync_with_same_endpoints_keeps_order_and_position() -> None:
    proxy = IpvsProxy(node(), np.random.default_rng(2), "rr")
    sp = service_port(endpoints=endpoints(4))
    proxy.program(sp, sp.endpoints)
    table = proxy.tables[sp.index]
    first = [table.pick(1, 1, 0.0) for _ in range(3)]
    proxy.program(sp, sp.endpoints, now=1.0)
    assert proxy.tables[sp.index] is table  # updated in place
    rest = [table.pick(1, 1, 1.0) for _ in range(5)]
    assert first + rest == [table.order[k % 4] for k in range(8)]


def test_rr_is_independent_per_node_in_a_run() -> None:
    # three entry nodes, each with its own list order and rr position
    names = ["node-1", "node-2", "node-3"]
    scn = scenario(mode="ipvs", nodes=3, replicas=6, requests=900,
                   clients=[client(f"via-{n}", rate="300/s", entry={"node": n})
                            for n in names])
    out, frame = run_frame(scn)
    assert (frame["outcome"] == "completed").all()
    pod_names = [p.name for p in out.cluster.pods]
    orders = []
    for i, name in enumerate(names):
        table = out.proxies[i].tables[0]
        seq = frame.loc[frame["entry_node"] == name, "pod"].astype(str).tolist()
        assert len(seq) > 100
        expected = [pod_names[table.pods[table.order[k % table.n]]] for k in range(len(seq))]
        assert seq == expected, name
        orders.append(tuple(table.order))
        # counters are this node's own: every connection it took has closed (inactive)
        assert sum(table.active.values()) == 0
        assert sum(table.inactive.values()) == len(seq)
    assert len(set(orders)) > 1  # each node's list is its own random permutation


# --- lc / wlc / sed / nq ---------------------------------------------------------------


def test_lc_all_idle_picks_first_in_list_order() -> None:
    table = make_table("lc", 5)
    assert table.pick(1, 1, 0.0) == table.order[0]
    load(table, table.order[0], active=1)
    assert table.pick(1, 1, 0.0) == table.order[1]


def test_lc_overhead_is_active_times_256_plus_inactive() -> None:
    table = make_table("lc", 3)
    a, b, c = table.order
    load(table, a, active=1)          # 256
    load(table, b, inactive=255)      # 255
    load(table, c, active=1, inactive=3)  # 259
    assert table.pick(1, 1, 0.0) == b
    load(table, b, inactive=1)        # 256: tie with a, a is first in the list
    assert table.pick(1, 1, 0.0) == a
    load(table, a, inactive=5)        # 261 vs b 256 vs c 259
    assert table.pick(1, 1, 0.0) == b
    assert table.pick(1, 1, 0.0) == brute_force(table, lc_overhead(table))


@pytest.mark.parametrize("seed", range(5))
def test_lc_crafted_counters_against_brute_force(seed: int) -> None:
    table = make_table("lc", 8, seed=seed)
    rng = np.random.default_rng(100 + seed)
    for _ in range(6):
        index = int(rng.integers(table.n))
        load(table, index, active=int(rng.integers(0, 3)), inactive=int(rng.integers(0, 300)))
        assert table.pick(1, 1, 0.0) == brute_force(table, lc_overhead(table))


def test_wlc_equals_lc() -> None:
    lc, wlc = make_table("lc", 6, seed=4), make_table("wlc", 6, seed=4)
    assert wlc.scheduler == "lc"
    for t in (lc, wlc):
        load(t, t.order[0], active=2)
        load(t, t.order[3], inactive=40)
    picks = []
    for t in (lc, wlc):
        seq = []
        for _ in range(10):
            k = t.pick(1, 1, 0.0)
            t.opened(t.keys[k], 0.0)
            seq.append(k)
        picks.append(seq)
    assert picks[0] == picks[1]


def test_sed_ignores_inactive_connections() -> None:
    sed, lc = make_table("sed", 3, seed=1), make_table("lc", 3, seed=1)
    assert sed.order == lc.order
    first, second, _ = sed.order
    for t in (sed, lc):
        load(t, first, inactive=1000)
    assert sed.pick(1, 1, 0.0) == first   # active 0 + 1 everywhere: first in list wins
    assert lc.pick(1, 1, 0.0) == second   # lc counts the 1000 inactive
    # sed: least active + 1, first of the least
    load(sed, first, active=2)
    load(sed, second, active=1)
    assert sed.pick(1, 1, 0.0) == sed.order[2]
    load(sed, sed.order[2], active=1)
    assert sed.pick(1, 1, 0.0) == second


def test_nq_picks_an_idle_server_first() -> None:
    table = make_table("nq", 4, seed=3)
    o = table.order
    load(table, o[0], active=1)
    load(table, o[1], active=3)
    load(table, o[2], active=1)
    load(table, o[3], inactive=5000)  # idle (no active) despite many inactive
    assert table.pick(1, 1, 0.0) == o[3]
    # two idle servers: the first idle in list order
    table2 = make_table("nq", 4, seed=3)
    load(table2, table2.order[0], active=2)
    load(table2, table2.order[1], inactive=10)
    assert table2.pick(1, 1, 0.0) == table2.order[1]
    # none idle: as sed, least active (first in list on ties)
    table3 = make_table("nq", 3, seed=3)
    for pos, act in enumerate((2, 1, 1)):
        load(table3, table3.order[pos], active=act)
    assert table3.pick(1, 1, 0.0) == table3.order[1]


# --- sh / dh / mh -------------------------------------------------------------------------


def test_hash_32_is_linux_hash_32() -> None:
    # include/linux/hash.h: (val * GOLDEN_RATIO_32) >> (32 - bits), on u32
    for value in (0, 1, 0xC0A80001, 0xFFFFFFFF, 3232235777):
        assert hash_32(value, 8) == ((value * 0x61C88647) & 0xFFFFFFFF) >> 24
    assert hash_32(1, 8) == 0x61


def test_sh_same_client_ip_always_same_server() -> None:
    table = make_table("sh", 5)
    rng = np.random.default_rng(8)
    ips = [int(x) for x in rng.integers(0xC6120000, 0xC6140000, 300)]
    seen = set()
    for ip in ips:
        picks = {table.pick(ip, int(port), float(t))
                 for port, t in zip(rng.integers(32768, 61000, 6), range(6), strict=True)}
        assert len(picks) == 1  # the source port does not matter (no sh-port flag)
        choice = picks.pop()
        # 256 buckets filled round-robin from the list: bucket b -> order[b % n]
        assert choice == table.order[hash_32(ip, 8) % table.n]
        seen.add(choice)
    assert seen == set(range(5))


def test_dh_all_clients_of_a_node_go_to_one_server() -> None:
    table = make_table("dh", 6, node_ip="172.18.0.3")
    rng = np.random.default_rng(4)
    picks = {table.pick(int(ip), int(port), 0.0)
             for ip, port in zip(rng.integers(0, 2**32, 500), rng.integers(1024, 65535, 500),
                                 strict=True)}
    assert len(picks) == 1
    node_ip = table.node_ip
    assert picks == {table.order[hash_32(node_ip, 8) % table.n]}


def test_dh_in_a_run_one_pod_per_entry_node() -> None:
    scn = scenario(mode="ipvs", nodes=2, replicas=4, requests=600,
                   cluster={"ipvs": {"scheduler": "dh"}},
                   clients=[client(rate="600/s", source_ips=300)])
    _, frame = run_frame(scn)
    assert (frame["outcome"] == "completed").all()
    per_node = frame.groupby("entry_node", observed=True)["pod"].nunique()
    assert len(per_node) == 2
    assert (per_node == 1).all()


def test_mh_is_stable_for_a_fixed_address_and_port() -> None:
    table = make_table("mh", 5)
    for ip, port in [(0xC6120001, 40000), (0xC6120002, 40000), (0x0A000001, 55555)]:
        picks = {table.pick(ip, port, float(t)) for t in range(10)}
        assert len(picks) == 1


def test_mh_spreads_over_ports_of_one_client() -> None:
    n = 4
    table = make_table("mh", n)
    ip = 0xC6120007
    counts = np.bincount([table.pick(ip, port, 0.0) for port in range(32768, 36768)],
                         minlength=n)
    assert (counts > 0).all()
    shares = counts / counts.sum()
    assert np.all(np.abs(shares - 1 / n) < 0.05)  # Maglev: near-equal slot shares


def test_mh_table_shares_are_near_equal() -> None:
    table = make_table("mh", 7)
    slots = np.bincount(table.buckets, minlength=7)
    assert slots.sum() == 4093
    assert slots.max() - slots.min() <= 0.02 * 4093 + 1


# --- counters -----------------------------------------------------------------------------


def test_closed_connection_is_inactive_until_fin_timeout() -> None:
    table = make_table("lc", 3, fin_timeout=120.0)
    a, b, _ = table.order
    key = table.keys[a]
    table.opened(key, 0.0)
    assert (table.active[key], table.inactive[key]) == (1, 0)
    table.closed(key, 5.0)
    assert (table.active[key], table.inactive[key]) == (0, 1)
    # still inactive just before 5 + 120 s: lc avoids it
    assert table.pick(1, 1, 124.999) == b
    assert table.inactive[key] == 1
    # at the timeout it disappears: a is the least again (first in list order)
    assert table.pick(1, 1, 125.0) == a
    assert (table.active[key], table.inactive[key]) == (0, 0)


def test_counters_expire_on_resync() -> None:
    proxy = IpvsProxy(node(), np.random.default_rng(1), "rr", fin_timeout=10.0)
    sp = service_port(endpoints=endpoints(2))
    proxy.program(sp, sp.endpoints)
    table = proxy.tables[sp.index]
    key = table.keys[0]
    table.opened(key, 0.0)
    table.closed(key, 1.0)
    assert table.inactive[key] == 1
    proxy.program(sp, sp.endpoints, now=11.0)
    assert table.inactive[key] == 0


def test_removed_real_server_drains_outside_the_scheduler() -> None:
    """A removed real server with an open connection stays at weight 0 (graceful
    termination, tests/proxy/test_graceful.py): its counters stay, the choice ignores it."""
    proxy = IpvsProxy(node(), np.random.default_rng(1), "lc")
    eps = endpoints(3)
    sp = service_port(endpoints=eps)
    proxy.program(sp, eps)
    table = proxy.tables[sp.index]
    gone = eps[2].key
    table.opened(gone, 0.0)
    proxy.program(sp, eps[:2], now=1.0)
    assert table.active[gone] == 1 and table.weight(gone) == 0
    table.closed(gone, 2.0)  # a late close of a connection to the removed server is harmless
    assert table.inactive[gone] == 1
    assert table.n == 2
    assert table.pick(1, 1, 2.0) == brute_force(table, lc_overhead(table))


def test_unknown_scheduler_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown IPVS scheduler"):
        IpvsProxy(node(), np.random.default_rng(0), "lblc")
    assert set(SCHEDULERS) == {"rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh"}


# --- O(log n) choice: the tournament tree against brute force ----------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 1000])
def test_min_tree_property_against_brute_force(size: int) -> None:
    rng = np.random.default_rng(size)
    keys = [int(k) for k in rng.integers(0, 50, size)]
    tree = MinTree(keys)
    for _ in range(400):
        pos, key = int(rng.integers(size)), int(rng.integers(0, 50))
        keys[pos] = key
        tree.set(pos, key)
        best = min(range(size), key=lambda p: (keys[p], p))
        assert tree.first_min() == best


def test_lc_10000_endpoints_random_operations_against_brute_force() -> None:
    n, fin = 10_000, 3.0
    table = make_table("lc", n, seed=21, fin_timeout=fin)
    rng = np.random.default_rng(22)
    # an independent model of the kernel counters, indexed by list position
    pos_of = {e: p for p, e in enumerate(table.order)}
    active = np.zeros(n, dtype=np.int64)
    inactive = np.zeros(n, dtype=np.int64)
    closing: deque[tuple[float, int]] = deque()
    open_conns: list[int] = []
    now = 0.0
    # start from a loaded table: every server has some open and some closing connections
    for p, (act, inact) in enumerate(zip(rng.integers(0, 3, n), rng.integers(0, 20, n),
                                         strict=True)):
        key = table.keys[table.order[p]]
        for _ in range(int(act + inact)):
            table.opened(key, now)
        for _ in range(int(inact)):
            table.closed(key, now)
            closing.append((now + fin, p))
        active[p], inactive[p] = act, inact
        open_conns += [p] * int(act)

    def model_pick() -> int:
        while closing and closing[0][0] <= now:  # deadlines are appended in time order
            inactive[closing.popleft()[1]] -= 1
        overhead = active * 256 + inactive
        return int(table.order[int(np.argmin(overhead))])  # argmin: first of the least

    for _ in range(3000):
        now += float(rng.exponential(0.002))
        if open_conns and rng.random() < 0.45:
            p = open_conns.pop(int(rng.integers(len(open_conns))))
            table.closed(table.keys[table.order[p]], now)
            active[p] -= 1
            inactive[p] += 1
            closing.append((now + fin, p))
        else:
            choice = table.pick(1, 1, now)
            assert choice == model_pick()
            table.opened(table.keys[choice], now)
            p = pos_of[choice]
            active[p] += 1
            open_conns.append(p)
    assert now > fin  # the preloaded inactive connections expired during the test
    assert table.pick(1, 1, now) == model_pick()


@pytest.mark.parametrize("scheduler", ["rr", "sh"])
def test_inactive_expires_for_every_scheduler(scheduler: str) -> None:
    table = make_table(scheduler, 3, fin_timeout=120.0)
    key = table.keys[0]
    for t in range(50):
        table.opened(key, float(t))
        table.closed(key, float(t) + 0.5)
    for t in range(200, 260):
        table.pick(1, 1, float(t))  # traffic long after every fin timeout ran out
    assert table.inactive[key] == 0
    assert len(table.closing) == 0


def test_rr_new_real_servers_join_at_the_head_and_the_cursor_stays() -> None:
    proxy = IpvsProxy(node(), np.random.default_rng(2), "rr")
    eps = endpoints(5)
    sp = service_port(endpoints=eps)
    proxy.program(sp, eps[:3])
    table = proxy.tables[sp.index]
    before = [table.keys[i] for i in table.order]
    picked = [table.keys[table.pick(1, 1, 0.0)] for _ in range(2)]
    proxy.program(sp, eps, now=1.0)
    after = [table.keys[i] for i in table.order]
    assert after[2:] == before  # survivors keep their order behind the two new ones
    assert set(after[:2]) == {eps[3].key, eps[4].key}
    # rr continues after its last pick, wraps, then reaches the new head
    nxt = [table.keys[table.pick(1, 1, 1.0)] for _ in range(5)]
    assert picked == before[:2]
    assert nxt == [before[2], after[0], after[1], before[0], before[1]]


def test_rr_removing_the_last_picked_server_continues_with_its_successor() -> None:
    proxy = IpvsProxy(node(), np.random.default_rng(2), "rr")
    eps = endpoints(4)
    sp = service_port(endpoints=eps)
    proxy.program(sp, eps)
    table = proxy.tables[sp.index]
    listed = [table.keys[i] for i in table.order]
    assert [table.keys[table.pick(1, 1, 0.0)] for _ in range(2)] == listed[:2]
    proxy.program(sp, tuple(e for e in eps if e.key != listed[1]), now=1.0)
    assert table.keys[table.pick(1, 1, 1.0)] == listed[2]
