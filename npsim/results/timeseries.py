"""The run as time series: one row per replication and time bucket (1 s by default).

Built once at the end from the request columns and the run's transitions, never on the
hot path. Requests count in the bucket of ``t_start`` (``sent``, a pod's ``load``) or
of ``t_end`` (``completed``, ``failed``, ``failed_<reason>``, latencies); node states
(``ready_endpoints``, ``lb_up``) hold the value at the bucket's end, i.e. what a scrape
at that instant would see. What is per pod or per node is a long frame of its own, one
row per pod (node) and bucket (:func:`pod_timeseries_frame`,
:func:`node_timeseries_frame`): as a column per pod or node, 10,000 pods made a frame of
10,000 columns, for which the Parquet writer holds state column by column (70 to 90 MB
to save it; 1000 nodes behind a balancer, 2000 columns, about 10 MB). Column meanings:
README.md ("Frames").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from npsim.outcomes import CALL_REASONS, REASONS
from npsim.results.frames import (
    BLOCK,
    category_code,
    code_dtype,
    codes,
    count_codes,
    unreached_lookup,
)
from npsim.results.quantiles import segment_quantiles
from npsim.sim.output import RunOutput

FAILURE_REASONS = [name for code, name in sorted(REASONS.items()) if code]


def bucket_edges(end_time: float, bucket: float) -> np.ndarray:
    """Bucket start times covering [0, end_time)."""
    n = max(int(math.ceil(end_time / bucket - 1e-9)), 1)
    return np.arange(n, dtype=float) * bucket


def _bucket_of(times: np.ndarray, bucket: float, n: int) -> np.ndarray:
    """Bucket index per time; -1 for NaN or times outside [0, n * bucket)."""
    at = np.floor(times / bucket)  # NaN stays NaN: neither >= 0 nor < n below
    outside = at >= n
    outside |= ~(at >= 0)
    at[outside] = -1
    return at.astype(np.int64)


def _count(idx: np.ndarray, n: int) -> np.ndarray:
    """Rows per bucket (``idx`` -1: in none)."""
    return count_codes(idx, None, n)


# the latencies whose quantiles are taken are gathered about this share of the counted
# rows at a time (a group of consecutive buckets; a larger bucket is a group of its own)
QUANTILE_GROUP_SHARE = 4


def _quantiles(idx: np.ndarray, t_start: np.ndarray, t_end: np.ndarray, n: int,
               qs: tuple[float, ...], per_bucket: np.ndarray | None = None
               ) -> list[np.ndarray]:
    """Per bucket quantiles of the latency ``t_end - t_start`` of the rows whose bucket
    ``idx`` is >= 0 (NaN for an empty bucket). The buckets are taken in a few groups of
    consecutive buckets; a group's latencies are placed bucket after bucket (a counting
    sort, a block of rows at a time) and each bucket's quantiles found in place. One
    float per counted row of the group at a time, not of the run (8 bytes per request
    at the time series' peak), and no sort of every row. A quantile depends only on
    the values, so the groups give the same figures to the bit. ``per_bucket``: the
    counted rows per bucket when the caller has them (not counted again)."""
    if per_bucket is None:
        per_bucket = _count(idx, n)
    bounds = np.concatenate([[0], np.cumsum(per_bucket)])
    out = [np.full(n, np.nan) for _ in qs]
    limit = max(-(-int(bounds[-1]) // QUANTILE_GROUP_SHARE), 1)
    group = bounds[:-1] // limit  # consecutive buckets starting in one window of rows
    firsts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if n else []
    spans = _block_spans(idx)
    for first, last in zip(firsts, [*firsts[1:], n], strict=True):
        if bounds[last] > bounds[first]:
            _group_quantiles(idx, t_start, t_end, int(first), int(last), bounds, qs, out,
                             spans)
    return out


def _block_spans(idx: np.ndarray) -> list[tuple[int, int]]:
    """Per block of rows, the lowest and highest bucket in it ((n, -1): none). Rows come
    in the order they were sent and end near where they started, so a group of
    consecutive buckets lies in a few blocks: the others are not read again."""
    spans = []
    for lo in range(0, len(idx), BLOCK):
        counted = idx[lo:lo + BLOCK]
        counted = counted[counted >= 0]
        spans.append((int(counted.min()), int(counted.max())) if len(counted)
                     else (np.iinfo(np.int64).max, -1))
    return spans


def _group_quantiles(idx: np.ndarray, t_start: np.ndarray, t_end: np.ndarray, first: int,
                     last: int, bounds: np.ndarray, qs: tuple[float, ...],
                     out: list[np.ndarray], spans: list[tuple[int, int]]) -> None:
    """The quantiles of buckets ``first`` to ``last - 1`` into ``out`` (``spans``: the
    buckets of each block of rows, :func:`_block_spans`)."""
    base = bounds[first]
    fill = bounds[first:last] - base  # where the next value of each bucket goes
    values = np.empty(int(bounds[last] - base))
    for lo, (low, high) in zip(range(0, len(idx), BLOCK), spans, strict=True):
        if high < first or low >= last:
            continue  # no row of this block is in the group
        bucket = idx[lo:lo + BLOCK]
        keep = bucket >= first
        keep &= bucket < last
        bucket = bucket[keep] - first
        if len(bucket) == 0:
            continue
        latency = t_end[lo:lo + BLOCK][keep] - t_start[lo:lo + BLOCK][keep]
        order = np.argsort(bucket, kind="stable")
        bucket, latency = bucket[order], latency[order]
        runs = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        lengths = np.diff(np.r_[runs, len(bucket)])
        within = np.arange(len(bucket)) - np.repeat(runs, lengths)
        values[fill[bucket] + within] = latency
        fill[bucket[runs]] += lengths
    found = segment_quantiles(values, np.diff(bounds[first:last + 1]), qs)
    for col, value in zip(out, found, strict=True):
        col[first:last] = value


def step_at(times: list[float], values: list[float], at: np.ndarray,
            initial: float) -> np.ndarray:
    """A step function (value from each time on, ``initial`` before) sampled at ``at``."""
    if not times:
        return np.full(len(at), initial, dtype=float)
    order = np.argsort(times, kind="stable")
    t = np.asarray(times, dtype=float)[order]
    v = np.concatenate([[initial], np.asarray(values, dtype=float)[order]])
    return v[np.searchsorted(t, at, side="right")]


def request_columns(requests: pd.DataFrame, edges: np.ndarray, bucket: float,
                    keep: np.ndarray | None = None,
                    latencies: bool = True) -> dict[str, np.ndarray]:
    """The traffic columns of one replication's requests; ``keep``: the rows counted (a
    boolean mask, default all), ``latencies``: with the latency quantiles."""
    n = len(edges)
    t_start = requests["t_start"].to_numpy(dtype=float)
    t_end = requests["t_end"].to_numpy(dtype=float)
    outcome = codes(requests["outcome"])
    reason = codes(requests["reason"])
    completed = category_code(requests["outcome"], "completed")
    failed = category_code(requests["outcome"], "failed")
    reasons = len(requests["reason"].cat.categories)
    sent = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=np.int64)
    by_reason = np.zeros(reasons * n, dtype=np.int64)  # failures, per reason code x bucket
    # bucket of a completed row's end, in the smallest type that holds the buckets
    done_idx = np.empty(len(t_start), dtype=np.int16 if n < np.iinfo(np.int16).max
                        else np.int32)
    for lo in range(0, len(t_start), BLOCK):
        rows = slice(lo, lo + BLOCK)
        started = _bucket_of(t_start[rows], bucket, n)
        ended = _bucket_of(t_end[rows], bucket, n)
        if keep is not None:  # a row left out is in no bucket
            started[~keep[rows]] = -1
            ended[~keep[rows]] = -1
        sent += _count(started, n)
        kind = outcome[rows]
        done_idx[rows] = np.where(kind == completed, ended, -1)
        done += _count(done_idx[rows], n)
        lost = (kind == failed) & (ended >= 0)
        by_reason += np.bincount(reason[rows][lost].astype(np.int64) * n + ended[lost],
                                 minlength=reasons * n)
    by_reason = by_reason.reshape(reasons, n)
    cols: dict[str, np.ndarray] = {"sent": sent, "completed": done,
                                   "failed": by_reason.sum(axis=0)}
    cols["throughput"] = cols["completed"] / bucket
    for name in FAILURE_REASONS:
        code = category_code(requests["reason"], name)
        if code < 0 and name in CALL_REASONS:
            continue  # a run without calls (npsim/sim/rpc.py): its columns as before
        cols[f"failed_{name}"] = by_reason[code] if code >= 0 else np.zeros(n, dtype=np.int64)
    if latencies:
        cols["latency_p50"], cols["latency_p99"] = _quantiles(done_idx, t_start, t_end, n,
                                                              (0.5, 0.99), done)
    return cols


def ready_endpoints(out: RunOutput, at: np.ndarray) -> np.ndarray:
    """Per node (rows) and instant of ``at``: the ready endpoints of the simulated
    Services its kube-proxy had programmed (after that node's own sync delay)."""
    ready = np.empty((len(out.ready_history), len(at)))
    for row, history in zip(ready, out.ready_history, strict=True):
        values = [count for _, count in history]
        row[:] = step_at([t for t, _ in history], values, at, values[0])
    return ready


def balancer_views(out: RunOutput, at: np.ndarray) -> dict[str, np.ndarray]:
    """Per balanced population, per node (rows) and instant of ``at``: 1 while its
    external balancer sends the node traffic, 0 once marked down (from the lb_mark_down
    / lb_mark_up transitions). Named ``lb_up``, or ``lb_up:<population>`` with several
    balanced populations."""
    balanced = [p for p in out.clients if p.balanced]
    nodes = {node.name: i for i, node in enumerate(out.cluster.nodes)}
    marks: dict[tuple[int, int], tuple[list[float], list[float]]] = {}
    events = out.events
    for t, kind, subject, detail in zip(events.time, events.kind, events.subject,
                                        events.detail, strict=True):
        if kind not in ("lb_mark_down", "lb_mark_up") or subject not in nodes:
            continue
        for k, pop in enumerate(balanced):
            if detail.startswith(f"{pop.name}:"):
                times, values = marks.setdefault((k, nodes[subject]), ([], []))
                times.append(t)
                values.append(1.0 if kind == "lb_mark_up" else 0.0)
    views = {}
    for k, pop in enumerate(balanced):
        up = np.ones((len(nodes), len(at)))
        for (view, node), (times, values) in marks.items():
            if view == k:
                up[node] = step_at(times, values, at, 1.0)
        views["lb_up" if len(balanced) == 1 else f"lb_up:{pop.name}"] = up
    return views


def pod_load_rates(out: RunOutput, requests: pd.DataFrame, edges: np.ndarray,
                   bucket: float) -> np.ndarray:
    """Per pod and bucket: requests that reached the pod per second, by the time they
    were sent; a flat array, pod after pod (``edges`` buckets each), in the order of
    ``out.cluster.pods`` (the request frame's ``pod`` categories)."""
    n = len(edges)
    pods = len(out.cluster.pods)
    t_start = requests["t_start"].to_numpy(dtype=float)
    pod_codes = codes(requests["pod"])
    unreached = unreached_lookup(requests)
    reason = codes(requests["reason"])
    # one count over (pod, bucket) cells, a block of rows at a time; in floats (exact
    # below 2**53) so that the rates are made in place, as count / bucket
    counts = np.zeros(pods * n)
    for lo in range(0, len(t_start), BLOCK):
        rows = slice(lo, lo + BLOCK)
        idx = _bucket_of(t_start[rows], bucket, n)
        pod = pod_codes[rows]
        keep = (idx >= 0) & (pod >= 0) & ~unreached[reason[rows]]
        counts += np.bincount(pod[keep].astype(np.int64) * n + idx[keep], minlength=pods * n)
    counts /= bucket
    return counts


def _long_frame(replication: int, edges: np.ndarray, entity: str, names: list[str],
               values: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per ``entity`` (the categorical column, ``names`` in order) and bucket,
    entity after entity; ``values``: flat arrays in that order (or 2-D, entity x
    bucket), used as they are."""
    rows = len(names) * len(edges)
    entity_codes = np.repeat(np.arange(len(names), dtype=code_dtype(len(names))), len(edges))
    return pd.DataFrame({"replication": np.full(rows, replication, dtype=np.int32),
                         "time": np.tile(edges, len(names)),
                         entity: pd.Categorical.from_codes(entity_codes, categories=names),
                         **{name: array.reshape(rows) for name, array in values.items()}},
                        copy=False)


def pod_timeseries_frame(out: RunOutput, requests: pd.DataFrame,
                         bucket: float = 1.0) -> pd.DataFrame:
    """One replication's per-pod load (``requests``: its request frame): one row per pod
    and bucket of :func:`timeseries_frame` (the same ``time`` values), pod after pod in
    the pod frame's order, buckets where the pod got nothing included (0), so that every
    pod has every bucket: a mean over time or a pivot to one column per pod needs no
    filling in. ``load`` is the count array itself and ``pod`` codes an ``arange``
    repeated; only ``time`` and ``replication`` are new arrays."""
    edges = bucket_edges(out.end_time, bucket)
    load = pod_load_rates(out, requests, edges, bucket)
    return _long_frame(out.replication, edges, "pod", [p.name for p in out.cluster.pods],
                       {"load": load})


def node_timeseries_frame(out: RunOutput, bucket: float = 1.0) -> pd.DataFrame:
    """One replication's per-node views: one row per node and bucket of
    :func:`timeseries_frame`, node after node in the node frame's order, with
    ``ready_endpoints`` and, where a population goes through an external balancer,
    ``lb_up`` (``lb_up:<population>`` with several)."""
    edges = bucket_edges(out.end_time, bucket)
    scrape = np.minimum(edges + bucket, out.end_time)
    return _long_frame(out.replication, edges, "node", [n.name for n in out.cluster.nodes],
                       {"ready_endpoints": ready_endpoints(out, scrape),
                        **balancer_views(out, scrape)})


def empty_long_frame(entity: str, values: tuple[str, ...]) -> pd.DataFrame:
    """A per-pod or per-node frame with no rows (a result saved before it existed)."""
    return pd.DataFrame({"replication": np.array([], dtype=np.int32),
                         "time": np.array([], dtype=float), entity: pd.Categorical([]),
                         **{name: np.array([], dtype=float) for name in values}})


def empty_pod_timeseries() -> pd.DataFrame:
    return empty_long_frame("pod", ("load",))


def empty_node_timeseries() -> pd.DataFrame:
    return empty_long_frame("node", ("ready_endpoints",))


# the calls' own series in a run whose pods call Services (``calls_<name>``)
CALL_COLUMNS = ("sent", "completed", "failed")


def timeseries_frame(out: RunOutput, requests: pd.DataFrame, bucket: float = 1.0,
                     entry: np.ndarray | None = None) -> pd.DataFrame:
    """One replication's time series (``requests``: its request frame).

    ``entry``: in a run whose pods call Services, the clients' own requests
    (:func:`npsim.results.callframe.entry_rows`, the rows the summary's ``all`` scope
    covers). The headline columns then count those only, end to end as the summary does
    (each page once, its latency with every call in it, not its calls as requests of
    their own), and ``calls_sent``, ``calls_completed``, ``calls_failed`` count the
    calls (at any depth). None: every row, as in a run without calls."""
    edges = bucket_edges(out.end_time, bucket)
    cols: dict[str, np.ndarray] = {
        "replication": np.full(len(edges), out.replication, dtype=np.int32),
        "time": edges,
    }
    cols.update(request_columns(requests, edges, bucket, entry))
    if entry is not None:
        calls = request_columns(requests, edges, bucket, ~entry, latencies=False)
        cols.update({f"calls_{name}": calls[name] for name in CALL_COLUMNS})
    return pd.DataFrame(cols)
