"""How kube-proxy's choice is made, and ``--connections N``: N new connections' split.

A traced connection's endpoint is one draw: iptables' statistic cascade and nftables'
numgen draw from the node's kube-proxy random stream (the run's seed), IPVS and the
userspace proxy take the next in their round robin, or hash the source, or count
connections. :func:`draw_note` says which, under the trace. :func:`split` opens N new
connections from seeded source addresses and ports, through the same route, firewalls,
choice and pod states as the trace, and counts where they go and what their clients
see, beside what the rules give each endpoint (:func:`rule_shares`).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable

from npsim.cluster.model import Cluster, ServicePortModel, ip_str
from npsim.explain.state import ClientTimeouts, StateAt, Verdict
from npsim.outcomes import DROPPED, NO_ENDPOINTS, REASONS, REPLY_LOST
from npsim.proxy.base import EndpointTable, KubeProxy
from npsim.proxy.iptables import UniformTable
from npsim.proxy.ipvs import MH_TABLE_SIZE, IpvsTable
from npsim.proxy.userspace import RoundRobinTable
from npsim.sim.guard import Decision, Guard
from npsim.streams import Streams

EPHEMERAL = (32768, 60999)  # Linux ip_local_port_range
DEFAULT_SOURCES = "198.18.0.0/16"  # RFC 2544 benchmarking addresses, without --trace
MAX_CONNECTIONS = 100_000


def rule_shares(table: EndpointTable) -> tuple[list[float] | None, str]:
    """What the rules give each endpoint of the new connections, and how: None when
    it depends on the connections open at the moment (IPVS lc/sed)."""
    n = table.n
    if isinstance(table, IpvsTable):
        sched = table.scheduler
        if sched == "rr":
            return [1 / n] * n, "IPVS rr: each real server in turn"
        if sched in ("sh", "dh", "mh"):
            counts = Counter(table.buckets)
            size = MH_TABLE_SIZE if sched == "mh" else len(table.buckets)
            hashed = {"sh": "source address", "dh": "destination (this node's) address",
                      "mh": "source address and port"}[sched]
            return ([counts.get(i, 0) / size for i in range(n)],
                    f"IPVS {sched}: its share of the hash table, by {hashed}")
        return None, f"IPVS {sched}: the real server with the fewest connections"
    if isinstance(table, RoundRobinTable):
        return [1 / n] * n, "userspace round robin: each endpoint in turn"
    if isinstance(table, UniformTable):
        return [1 / n] * n, "uniform random: 1/n each"
    return None, "the mode's own choice"


def draw_note(proxy: KubeProxy, table: EndpointTable, seed: int) -> str:
    """One line under the trace's choice: that it is one draw, from what."""
    name = proxy.node.name
    tail = "; --connections N shows the split over N new connections"
    if isinstance(table, UniformTable):
        return (f"  (one draw from the rules' probabilities, 1/{table.n} each, from "
                f"{name}'s kube-proxy random stream at seed {seed}: the same command picks "
                f"the same endpoint, another new connection may go elsewhere{tail})")
    shares, how = rule_shares(table)
    if isinstance(table, (RoundRobinTable, IpvsTable)) and shares is not None and (
            getattr(table, "scheduler", "rr") == "rr"):
        return (f"  (the next in {name}'s round robin ({how}; its order is the node's "
                f"own, drawn at seed {seed}): the next new connection goes to the next "
                f"endpoint{tail})")
    return f"  ({how}; seed {seed}{tail})"


def sources(n: int, seed: int, around: int | None) -> Iterable[tuple[int, int]]:
    """``n`` (address, port) pairs from the stream ``explain/connections`` of the seed:
    addresses in the /16 of ``around`` (or 198.18.0.0/16), ports in the ephemeral range."""
    rng = Streams(seed).generator("explain/connections")
    base = (around & 0xFFFF0000) if around is not None else int(
        ipaddress.IPv4Network(DEFAULT_SOURCES).network_address)
    hosts = rng.integers(1, 0xFFFF, size=n)
    ports = rng.integers(EPHEMERAL[0], EPHEMERAL[1] + 1, size=n)
    for h, p in zip(hosts.tolist(), ports.tolist(), strict=True):
        yield base | h, p


def connect(proxy: KubeProxy, sp: ServicePortModel, source: int, src_port: int,
            state: StateAt | None, client: ClientTimeouts | None,
            guard: Guard | None) -> tuple[int, Verdict]:
    """One new external connection to ``proxy``'s node: (the endpoint the rules chose,
    -1 if stopped before; what the client sees). The engine's order (``_connect``)."""
    node = proxy.node.index
    now = state.at if state is not None else 0.0
    if state is not None and client is not None:
        down = state.entry_down(node, client)
        if down is not None:
            return -1, down
    view = proxy.views[sp.index]
    if not view.any:
        return -1, Verdict(REASONS[NO_ENDPOINTS], 0.0, -1, "no endpoints: refused")
    table, snat, reply_lost = proxy.route(view, "external", False, False)
    if table.n == 0:
        return -1, Verdict(REASONS[DROPPED], _timeout(client), -1, "no local endpoint")
    protocol = sp.port.protocol
    if guard is not None:
        stop = guard.before_choice(node, "external", source, protocol, sp.node_port, now)
        if stop is not None:
            return -1, _stopped(stop, client)
    affinity = view.affinity
    choice = (affinity.pick(table, source, src_port, now) if affinity is not None
              else table.pick(source, src_port, now))
    if guard is not None:
        stop = guard.after_choice(node, "external", source, protocol, sp.node_port, snat,
                                  table.pods[choice], table.endpoints[choice].port, now)
        guard.pending = []  # explain opens no connection through the firewalls
        if stop is not None:
            return choice, _stopped(stop, client)
    if reply_lost:
        return choice, Verdict(REASONS[REPLY_LOST], _timeout(client), -1, "reply lost")
    if state is None or client is None:
        verdict = Verdict("served", 0.0, choice, "served")
    else:
        verdict = state.outcome(proxy, table, choice, source, src_port, affinity, client)
    if verdict.endpoint >= 0 and verdict.reason in ("served", "held", "request_timeout"):
        proxy.opened(table, verdict.endpoint, now)  # IPVS lc/sed count it: kept open
    return choice, verdict


def _timeout(client: ClientTimeouts | None) -> float:
    return client.connect_timeout if client is not None else 0.0


def _stopped(stop: Decision, client: ClientTimeouts | None) -> Verdict:
    """A firewall stopped the connection: a DROP waits for the timeout, a REJECT not."""
    return Verdict(REASONS[stop.reason], _timeout(client) if stop.times_out else 0.0, -1,
                   stop.why)


def split(proxy: KubeProxy, cluster: Cluster, sp: ServicePortModel, n: int, seed: int,
          around: int | None, state: StateAt | None, guard: Guard | None) -> Iterable[str]:
    """The table of ``n`` new connections' split, beside the rules' shares."""
    client = state.client(sp.index) if state is not None else None
    view = proxy.views[sp.index]
    table = proxy.route(view, "external", False, False)[0] if view.any else None
    net = ipaddress.IPv4Network(f"{ip_str(around)}/16", strict=False) if around is not None \
        else ipaddress.IPv4Network(DEFAULT_SOURCES)
    when = f" at {state.at:g}s" if state is not None else ""
    yield (f"# {n:,} new connections to {proxy.node.name}:{sp.node_port}{when}, from "
           f"addresses in {net} and ports {EPHEMERAL[0]}-{EPHEMERAL[1]} drawn at seed {seed}"
           " (opened one after another and kept open)")
    picked: Counter[int] = Counter()
    seen: dict[int, Counter[str]] = {}
    outcomes: Counter[str] = Counter()
    waits: dict[str, float] = {}
    for source, port in sources(n, seed, around):
        choice, verdict = connect(proxy, sp, source, port, state, client, guard)
        picked[choice] += 1
        seen.setdefault(choice, Counter())[verdict.reason] += 1
        outcomes[verdict.reason] += 1
        waits[verdict.reason] = verdict.wait
    if table is not None and table.n:
        shares, how = rule_shares(table)
        yield f"# rules: {how}"
        rows = [("endpoint", "pod", "node", "rules", "chosen", "client sees")]
        for i in range(table.n):
            pod = cluster.pods[table.pods[i]]
            rule = f"{shares[i]:.1%}" if shares is not None else "-"
            rows.append((table.keys[i], pod.name, cluster.nodes[pod.node].name, rule,
                         f"{picked[i]:,} ({picked[i] / n:.1%})",
                         _sees(seen.get(i, Counter()), waits)))
        if picked[-1]:
            rows.append(("(before the choice)", "", "", "",
                         f"{picked[-1]:,} ({picked[-1] / n:.1%})",
                         _sees(seen[-1], waits)))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        for r in rows:
            yield "  ".join(x.ljust(w) for x, w in zip(r[:5], widths, strict=True)) + \
                "  " + r[5]
    yield "# " + ", ".join(f"{c:,} {_reason(r, waits)} ({c / n:.1%})"
                           for r, c in outcomes.most_common())


def _reason(reason: str, waits: dict[str, float]) -> str:
    wait = waits.get(reason, 0.0)
    return f"{reason} after {wait:g} s" if wait and reason != "late" else (
        "answered late (node back)" if reason == "late" else reason)


def _sees(counts: Counter[str], waits: dict[str, float]) -> str:
    total = sum(counts.values())
    if not total:
        return ""
    if len(counts) == 1:
        return _reason(next(iter(counts)), waits)
    return ", ".join(f"{_reason(r, waits)} {c / total:.0%}" for r, c in counts.most_common())
