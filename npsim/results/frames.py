"""Request, pod and node DataFrames, built once per run from the columns.

Column meanings are documented in README.md ("Frames"); keep the two in step.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from npsim.cluster.model import ip_str
from npsim.outcomes import (
    COMPLETED,
    CONNECT_TIMEOUT,
    DOWNSTREAM_FAILED,
    EXTERNAL_ERROR,
    FAILED,
    IN_FLIGHT,
    OUTCOMES,
    REASONS,
)
from npsim.sim.output import ClientRecord, RunOutput
from npsim.sim.records import trim_heap


def code_dtype(n_categories: int) -> type[np.signedinteger]:
    """The smallest signed integer type that holds codes 0..n-1 and -1 (what pandas
    itself would pick for a categorical of that size)."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_categories < np.iinfo(dtype).max:
            return dtype
    return np.int64


def _categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    """A categorical over ``codes`` (-1: missing), in the smallest code type; codes
    already of that type are used as they are (no copy)."""
    return pd.Categorical.from_codes(codes.astype(code_dtype(len(names)), copy=False),
                                     categories=names)


def request_frame(out: RunOutput, consume: bool = False) -> pd.DataFrame:
    """One row per generated request, whatever became of it.

    Built without copying the run's columns: columns that pass unchanged into the frame
    (times, durations, connection ids, flags, outcome and reason codes) are views of the
    run's :class:`~npsim.sim.records.RequestLog` buffers, and what the frame corrects
    there (an end after the run's stop is still in flight) is corrected in place, so the
    log afterwards says what the frame says. Derived columns are built in the smallest
    types (categorical codes of 1-2 bytes), one at a time, and their temporaries freed
    as soon as used: memory stays near the log's own size plus about 50 bytes a row.
    ``consume``: the log's columns that do not pass into the frame (population, client
    slot, entry node, pod, SNAT flag: 15 bytes a row) are freed as soon as the frame has
    what it needs of them, not after it is built (the caller drops the log afterwards).
    """
    cols = out.log.columns()

    def done_with(name: str) -> None:
        if consume:  # the log lets go of the column; the caller drops its view (del)
            del cols[name]
            setattr(out.log, name, array(getattr(out.log, name).typecode))

    cluster = out.cluster
    n = len(cols["t_start"])
    end = out.end_time
    t_start = cols["t_start"]
    t_end = cols["t_end"]
    outcome = cols["outcome"]
    service_start = cols["service_start"]
    service = cols["service"]
    outside = _left_the_cluster(out, cols)  # before the ends are corrected below
    # A pod server may fill a request's service in as soon as it arrives; one still
    # queued when the run stopped has not started: no service yet, and in flight.
    not_started = service_start > end
    service_start[not_started] = np.nan
    service[not_started] = np.nan
    outcome[not_started & (outcome == COMPLETED)] = IN_FLIGHT
    del not_started
    # an end the client would only see after the run stopped is still in flight (a
    # client that gave up before the stop keeps its failure)
    outcome[(outcome != IN_FLIGHT) & (t_end > end)] = IN_FLIGHT
    t_end[outcome == IN_FLIGHT] = np.nan
    reason = cols["reason"]
    reason[outcome != FAILED] = 0

    # nodes and pods: categorical codes straight from the run's indexes
    nodes = cluster.nodes
    node_codes = code_dtype(len(nodes))
    pod = cols["pod"]
    entry = cols["entry"]
    pod_node = np.array([p.node for p in cluster.pods] + [-1], dtype=node_codes)[pod]
    crossed = pod_node != entry  # index -1 (no pod) maps to the sentinel -1 above
    crossed &= pod_node >= 0

    pops = out.clients
    ip_row = _client_address_rows(cols["population"], cols["client"], pops)
    population = _categorical(cols["population"], [p.name for p in pops])
    done_with("population")
    done_with("client")
    client_universe = np.concatenate([p.client_ips for p in pops])
    wire_universe = np.concatenate([p.wire_ips for p in pops])

    # masquerade: a remote pod sees the receiving node's IP, a same-node pod the node's
    # pod-bridge address (kube-proxy MASQUERADE; Kubernetes docs "Using Source IP");
    # userspace mode proxies every connection itself, so its pods always see the node;
    # without SNAT (Local policies, pod short-circuits, ClusterIP from pods) the pod sees
    # what the node saw. Rows index one table: the wire addresses, then node addresses,
    # then bridge addresses; -1 where no pod was chosen.
    via_process = np.array(out.pod_sees_node, dtype=bool)
    via = via_process[entry]
    seen = entry.astype(np.int32)
    seen += len(wire_universe)
    seen[~(crossed | via)] += len(nodes)  # same node, kernel NAT: the bridge address
    keeps = cols["snat"] == 0
    done_with("snat")
    keeps &= ~via
    del via
    np.copyto(seen, ip_row, where=keeps)
    del keeps
    seen[pod < 0] = -1
    if outside is not None:  # what a dependency outside the cluster sees: the node
        seen[outside] = entry[outside] + len(wire_universe)
    del outside
    node_names = [nd.name for nd in nodes]
    entry_node = _categorical(entry, node_names)
    pod_column = _categorical(pod, [p.name for p in cluster.pods])
    del entry, pod
    done_with("entry")
    done_with("pod")
    seen_universe = np.concatenate([
        wire_universe, np.array([nd.ip for nd in nodes], dtype=np.int64),
        np.array([nd.bridge_ip for nd in nodes], dtype=np.int64)])
    source_ip_seen = _ips(seen, seen_universe)
    del seen
    client_ip = _ips(ip_row, client_universe)
    source_ip_at_node = _ips(ip_row, wire_universe)
    del ip_row

    # arrival at the pod: the client's half round trip plus kube-proxy's time
    queue_wait = arrive_pod = cols["network"] * 0.5
    np.add(t_start, arrive_pod, out=arrive_pod)
    arrive_pod += cols["proxy"]
    np.subtract(service_start, arrive_pod, out=queue_wait)
    # a request served at once waits service_start - (t_start + network/2 + proxy), which
    # float rounding leaves at about -1e-14 s rather than 0: no request waits less than 0
    np.maximum(queue_wait, 0.0, out=queue_wait)  # NaN (never served) stays NaN

    # retries (clients with ``retries``): which attempt a row is, and the row it repeats
    attempt = np.zeros(n, dtype=np.int8)
    retry_of = np.full(n, -1, dtype=np.int32)
    for p in pops:
        if p.retry_of:
            rows = np.fromiter(p.retry_of, dtype=np.int64, count=len(p.retry_of))
            retry_of[rows] = np.fromiter(p.retry_of.values(), dtype=np.int32, count=len(rows))
            attempt[rows] = np.fromiter((p.attempt[r] for r in p.retry_of), dtype=np.int8,
                                        count=len(rows))

    frame = pd.DataFrame(
        {
            "replication": np.full(n, out.replication, dtype=np.int32),
            "request": np.arange(n, dtype=np.int32),  # ids within a run: 32 bits
            "population": population,
            "client_ip": client_ip,
            "source_ip_at_node": source_ip_at_node,
            "connection": cols["conn"],
            "new_connection": cols["new_conn"].view(bool),  # 0 / 1 bytes
            "entry_node": entry_node,
            "pod": pod_column,
            "pod_node": _categorical(pod_node, node_names),
            "cross_node": crossed,
            "source_ip_seen": source_ip_seen,
            "t_start": t_start,
            "t_end": t_end,
            "latency": t_end - t_start,
            "network": cols["network"],
            "hop": cols["hop"],
            "proxy": cols["proxy"],
            "service_start": service_start,
            "queue_wait": queue_wait,
            "service": service,
            "outcome": _categorical(outcome, [OUTCOMES[k] for k in sorted(OUTCOMES)]),
            "reason": _categorical(reason, reason_names(out)),
            "warmup": t_start < out.warmup,
            "attempt": attempt,
            "retry_of": retry_of,
        },
        # no column is copied: the unchanged ones are the run's own buffers (the frame
        # keeps them alive after the run's other columns are freed)
        copy=False,
    )
    if consume:  # the temporaries' freed heap pages go back now, not under the next step's
        trim_heap()
    return frame


def reason_names(out: RunOutput) -> list[str]:
    """The ``reason`` categories: every code's name, ``downstream_failed`` (the last)
    only for runs whose pods make calls, so that other runs' frames stay as they were."""
    names = [REASONS[k] for k in sorted(REASONS)]
    if out.calls is None:
        return names[:DOWNSTREAM_FAILED]
    # ``external_error`` only where a pod calls outside the cluster (call_targets.py)
    return names if out.calls.externals else names[:EXTERNAL_ERROR]


def _client_address_rows(population: np.ndarray, client: np.ndarray,
                         pops: list[ClientRecord]) -> np.ndarray:
    """Per row, its client address as a position in the populations' address lists laid
    end to end (a client slot sends from address ``slot % n_ips`` of its population)."""
    sizes = np.array([len(p.client_ips) for p in pops], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rows = np.empty(len(client), dtype=np.int32)
    if len(pops) == 1:
        np.remainder(client, np.uint32(sizes[0]), out=rows, casting="unsafe")
        return rows
    np.remainder(client, sizes.astype(np.uint32)[population], out=rows, casting="unsafe")
    rows += offsets.astype(np.int32)[population]
    return rows


def _left_the_cluster(out: RunOutput, cols: dict) -> np.ndarray | None:
    """Rows of calls to a dependency outside the cluster that left the caller's node
    (all but those its cut-off node kept in: connect_timeout): they leave masqueraded
    to the node's address, as the CNI's or ip-masq-agent's MASQUERADE of traffic
    leaving the pod network does (npsim/sim/call_targets.py). None without such calls."""
    calls = out.calls
    if calls is None or not calls.externals:
        return None
    pops = [i for i, name in enumerate(calls.services) if name in calls.externals]
    rows = np.isin(cols["population"], pops)
    rows &= (cols["outcome"] != FAILED) | (cols["reason"] != CONNECT_TIMEOUT)
    return rows


def _ips(rows: np.ndarray, universe: np.ndarray) -> pd.Categorical:
    """Dotted addresses as a categorical: ``rows`` index ``universe`` (address integers,
    -1 = missing). Categories are the addresses that occur, in numeric order."""
    used = np.zeros(len(universe) + 1, dtype=bool)
    used[rows] = True  # -1 marks the extra last slot
    positions = np.flatnonzero(used[:-1])
    values, inverse = np.unique(universe[positions], return_inverse=True)
    remap = np.full(len(universe) + 1, -1, dtype=code_dtype(len(values)))
    remap[positions] = inverse
    return pd.Categorical.from_codes(remap[rows],
                                     categories=[ip_str(int(v)) for v in values])


# failures whose connection never reached the chosen pod
UNREACHED = ("connect_timeout", "reply_lost", "endpoint_gone", "dial_failed")


def codes(column: pd.Series) -> np.ndarray:
    """A categorical column's codes, a read-only view (``.cat.codes`` copies them)."""
    return column.array.codes


def category_code(column: pd.Series, name: str) -> int:
    """The code of category ``name`` in a categorical column (-2 if absent: no row)."""
    categories = column.cat.categories
    return int(categories.get_loc(name)) if name in categories else -2


BLOCK = 1 << 16  # rows per step where a temporary per row would otherwise be made


def count_codes(values: np.ndarray, rows: np.ndarray | None, n: int) -> np.ndarray:
    """How many of the rows ``rows`` selects (default all) have each code 0..n-1 (a block
    of rows at a time: no 8-byte copy of every selected code)."""
    counts = np.zeros(n, dtype=np.int64)
    for lo in range(0, len(values), BLOCK):
        part = values[lo:lo + BLOCK] if rows is None else values[lo:lo + BLOCK][rows[lo:lo + BLOCK]]
        counts += np.bincount(part[part >= 0], minlength=n)[:n]
    return counts


def unreached_lookup(requests: pd.DataFrame) -> np.ndarray:
    """Per code of the ``reason`` categories (and -1, the last slot): whether it is one
    of :data:`UNREACHED`. Indexed by a block of codes (np.isin sorted a copy of every
    code: 3 MB at 1M rows)."""
    categories = requests["reason"].cat.categories
    lookup = np.zeros(len(categories) + 1, dtype=bool)
    lookup[[i for i, name in enumerate(categories) if name in UNREACHED]] = True
    return lookup


def reached_pod(requests: pd.DataFrame) -> np.ndarray:
    """Rows whose request reached a pod (served, queued, or turned away by its queue)."""
    if not isinstance(requests["reason"].dtype, pd.CategoricalDtype):
        return (requests["pod"].notna() & ~requests["reason"].isin(UNREACHED)).to_numpy()
    pod, reason = codes(requests["pod"]), codes(requests["reason"])
    unreached = unreached_lookup(requests)
    reached = np.empty(len(pod), dtype=bool)
    for lo in range(0, len(pod), BLOCK):
        part = reached[lo:lo + BLOCK]
        np.greater_equal(pod[lo:lo + BLOCK], 0, out=part)
        part &= ~unreached[reason[lo:lo + BLOCK]]
    return reached


def pod_frame(out: RunOutput, requests: pd.DataFrame) -> pd.DataFrame:
    """Per pod: where it runs, its load share and its time-weighted utilisation."""
    cluster = out.cluster
    names = [p.name for p in cluster.pods]
    pod = requests["pod"]
    pod_codes = codes(pod)
    # busy time of each worker-slot inside [warmup, end], from each request's service
    # span, summed a block of rows at a time
    start = requests["service_start"].to_numpy()
    service = requests["service"].to_numpy()
    busy_by_pod = np.zeros(len(pod.cat.categories))
    for lo in range(0, len(pod_codes), BLOCK):
        busy = _busy(start[lo:lo + BLOCK], service[lo:lo + BLOCK], out.warmup, out.end_time)
        served = pod_codes[lo:lo + BLOCK] >= 0
        # added in row order, as one bincount over all rows would (same sums to the bit)
        np.add.at(busy_by_pod, pod_codes[lo:lo + BLOCK][served], busy[served])
    where = positions(pod.cat.categories, names)  # once for the three per-pod columns
    n_categories = len(pod.cat.categories)
    busy_by_pod = by_positions(busy_by_pod, where)
    reached = reached_pod(requests)
    reached &= ~requests["warmup"].to_numpy(dtype=bool)
    counts = by_positions(count_codes(pod_codes, reached, n_categories), where)
    reached &= requests["new_connection"].to_numpy(dtype=bool)
    conns = by_positions(count_codes(pod_codes, reached, n_categories), where)
    total = max(int(counts.sum()), 1)
    pods = cluster.pods
    if not pods:
        return pd.DataFrame([], columns=POD_COLUMNS)
    # built a column at a time (a dict per pod was about 1 KB each at 10,000 pods)
    node_names = [n.name for n in cluster.nodes]
    return pd.DataFrame({
        "replication": np.full(len(pods), out.replication, dtype=np.int64),
        "pod": names,
        "deployment": [p.deployment for p in pods],
        "node": [node_names[p.node] for p in pods],
        "pod_ip": [ip_str(p.ip) for p in pods],
        "workers": np.array([p.workers for p in pods], dtype=np.int64),
        "requests": counts.astype(np.int64),
        "connections": conns.astype(np.int64),
        "share": counts / total,
        "created_at": np.array([p.created_at for p in pods], dtype=float),
        "deleted_at": np.array([np.nan if p.deleted_at is None else p.deleted_at
                                for p in pods], dtype=float),
        "utilisation": np.array([_utilisation(busy_by_pod[p.index], p, out.warmup,
                                              out.end_time) for p in pods], dtype=float),
    }, columns=POD_COLUMNS)


def _busy(start: np.ndarray, service: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Each request's service span clipped to [lo, hi]; 0 for one never served (``start``
    or ``service`` NaN). Plain ufuncs: np.nan_to_num and np.clip cost twice as much on
    a block of rows."""
    busy = start + service  # NaN where either is
    np.minimum(busy, hi, out=busy)
    busy -= np.maximum(start, lo)
    busy[np.isnan(busy)] = 0.0
    return np.maximum(0.0, busy, out=busy)  # 0.0 first: a tie gives +0.0, as np.clip did


POD_COLUMNS = ["replication", "pod", "deployment", "node", "pod_ip", "workers", "requests",
               "connections", "share", "created_at", "deleted_at", "utilisation"]


def _counts_by(column: pd.Series, rows: np.ndarray, names: list[str]) -> np.ndarray:
    """Rows (of those ``rows`` selects) per category of ``column``, in the order of
    ``names`` (zeros included)."""
    counts = count_codes(codes(column), rows, len(column.cat.categories))
    return by_names(counts, column.cat.categories, names)


def positions(categories: pd.Index, names: list[str]) -> np.ndarray:
    """Where each of ``names`` is among ``categories`` (-1: not there). Plain lookups: a
    pandas reindex over 10,000 pod names held megabytes of string hash tables after it
    was done."""
    position = {name: i for i, name in enumerate(categories)}
    return np.array([position.get(name, -1) for name in names], dtype=np.intp)


def by_positions(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``values`` taken at ``where`` (from :func:`positions`), 0 where it is -1."""
    out = np.zeros(len(where), dtype=values.dtype)
    found = where >= 0
    out[found] = values[where[found]]
    return out


def by_names(values: np.ndarray, categories: pd.Index, names: list[str]) -> np.ndarray:
    """``values`` (one per category) in the order of ``names``, 0 for a name that is not
    a category."""
    return by_positions(values, positions(categories, names))


def first_seen_codes(names: Iterable[str]) -> tuple[np.ndarray, int]:
    """Integer codes of ``names``, numbered in order of first appearance, and how many
    distinct: groups by name without pandas' string hash tables."""
    ids: dict[str, int] = {}
    codes_ = np.array([ids.setdefault(name, len(ids)) for name in names], dtype=np.intp)
    return codes_, len(ids)


def _utilisation(busy: float, pod, start: float, end: float) -> float:  # noqa: ANN001
    """Busy worker-time over worker-time, within the part of the measured window the pod
    existed (a pod scaled in or out is judged over its own lifetime)."""
    lo = max(start, pod.created_at)
    hi = min(end, pod.deleted_at if pod.deleted_at is not None else end)
    return busy / (pod.workers * (hi - lo)) if hi > lo else np.nan


def concat_frames(frames: list[pd.DataFrame], consume: bool = False) -> pd.DataFrame:
    """Stack replications; categorical columns keep one dtype whatever each one saw.

    Stacked a column at a time; with ``consume`` each column is dropped from the inputs
    once stacked, so the replications' frames and the stacked one are never all alive
    at once (about one column more than the result, instead of twice it)."""
    if len(frames) == 1:
        return frames[0]
    columns = list(frames[0].columns)
    if any(list(f.columns) != columns for f in frames[1:]):
        return _concat_by_rows(frames)
    out = {}
    for column in columns:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype):
            out[column] = union_categoricals([f[column] for f in frames])
        else:
            out[column] = pd.concat([f[column] for f in frames], ignore_index=True)
        if consume:
            for f in frames:
                del f[column]
    return pd.DataFrame(out, copy=False)


def _concat_by_rows(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(frames, ignore_index=True)
    for column in frames[0].columns:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype):
            out[column] = union_categoricals([f[column] for f in frames])
    return out


def node_frame(out: RunOutput, requests: pd.DataFrame) -> pd.DataFrame:
    """Per node: traffic it received, traffic its pods served, and the hops it caused."""
    cluster = out.cluster
    names = [n.name for n in cluster.nodes]
    measured = ~requests["warmup"].to_numpy(dtype=bool)
    received = _counts_by(requests["entry_node"], measured, names)
    measured &= reached_pod(requests)
    served = _counts_by(requests["pod_node"], measured, names)
    measured &= requests["cross_node"].to_numpy(dtype=bool)
    crossed = _counts_by(requests["entry_node"], measured, names)
    pods_on = np.bincount(np.array([p.node for p in cluster.pods], dtype=np.int64),
                          minlength=len(names))
    total_served = max(int(served.sum()), 1)
    rows = []
    for i, n in enumerate(cluster.nodes):
        rec = int(received[i])
        rows.append({
            "replication": out.replication,
            "node": n.name,
            "zone": n.zone,
            "node_ip": ip_str(n.ip),
            "pod_cidr": str(n.pod_cidr),
            "pods": int(pods_on[i]),
            "received": rec,
            "served": int(served[i]),
            "share": int(served[i]) / total_served,
            "cross_node_fraction": int(crossed[i]) / rec if rec else np.nan,
        })
    return pd.DataFrame(rows)


__all__ = ["request_frame", "pod_frame", "node_frame", "COMPLETED", "FAILED", "IN_FLIGHT"]
