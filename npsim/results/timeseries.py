"""The run as a time series: one row per replication and time bucket (1 s by default).

Built once at the end from the request columns and the run's transitions, never on the
hot path. Requests count in the bucket of ``t_start`` (``sent``, ``pod_load:<pod>``) or
of ``t_end`` (``completed``, ``failed``, ``failed_<reason>``, latencies); state columns
(``ready_endpoints:<node>``, ``lb_up:<node>``) hold the value at the bucket's end, i.e.
what a scrape at that instant would see. Column meanings: README.md ("Frames").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from npsim.results.frames import reached_pod
from npsim.sim.engine import RunOutput
from npsim.sim.records import REASONS

FAILURE_REASONS = [name for code, name in sorted(REASONS.items()) if code]


def bucket_edges(end_time: float, bucket: float) -> np.ndarray:
    """Bucket start times covering [0, end_time)."""
    n = max(int(math.ceil(end_time / bucket - 1e-9)), 1)
    return np.arange(n, dtype=float) * bucket


def _bucket_of(times: np.ndarray, bucket: float, n: int) -> np.ndarray:
    """Bucket index per time; -1 for NaN or times outside [0, n * bucket)."""
    idx = np.full(len(times), -1, dtype=np.int64)
    ok = ~np.isnan(times)
    b = np.floor(times[ok] / bucket).astype(np.int64)
    b[(b < 0) | (b >= n)] = -1
    idx[ok] = b
    return idx


def _count(idx: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    keep = idx >= 0
    return np.bincount(idx[keep], weights=None if weights is None else weights[keep],
                       minlength=n)[:n]


def _quantiles(idx: np.ndarray, values: np.ndarray, n: int,
               qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per bucket quantiles of ``values`` (NaN for an empty bucket): one sort overall."""
    keep = idx >= 0
    idx, values = idx[keep], values[keep]
    order = np.lexsort((values, idx))
    idx, values = idx[order], values[order]
    starts = np.searchsorted(idx, np.arange(n), side="left")
    ends = np.searchsorted(idx, np.arange(n), side="right")
    out = []
    for q in qs:
        col = np.full(n, np.nan)
        for b in np.flatnonzero(ends > starts):
            col[b] = np.quantile(values[starts[b]:ends[b]], q)
        out.append(col)
    return out


def step_at(times: list[float], values: list[float], at: np.ndarray,
            initial: float) -> np.ndarray:
    """A step function (value from each time on, ``initial`` before) sampled at ``at``."""
    if not times:
        return np.full(len(at), initial, dtype=float)
    order = np.argsort(times, kind="stable")
    t = np.asarray(times, dtype=float)[order]
    v = np.concatenate([[initial], np.asarray(values, dtype=float)[order]])
    return v[np.searchsorted(t, at, side="right")]


def request_columns(requests: pd.DataFrame, edges: np.ndarray,
                    bucket: float) -> dict[str, np.ndarray]:
    """The traffic columns of one replication's requests."""
    n = len(edges)
    t_start = requests["t_start"].to_numpy(dtype=float)
    t_end = requests["t_end"].to_numpy(dtype=float)
    outcome = requests["outcome"].to_numpy()
    reason = requests["reason"].to_numpy()
    started = _bucket_of(t_start, bucket, n)
    ended = _bucket_of(t_end, bucket, n)
    done = outcome == "completed"
    failed = outcome == "failed"
    done_idx = np.where(done, ended, -1)
    cols: dict[str, np.ndarray] = {
        "sent": _count(started, n),
        "completed": _count(done_idx, n),
        "failed": _count(np.where(failed, ended, -1), n),
    }
    cols["throughput"] = cols["completed"] / bucket
    for name in FAILURE_REASONS:
        cols[f"failed_{name}"] = _count(np.where(failed & (reason == name), ended, -1), n)
    latency = t_end - t_start
    cols["latency_p50"], cols["latency_p99"] = _quantiles(done_idx, latency, n, (0.5, 0.99))
    return cols


def ready_endpoint_columns(out: RunOutput, at: np.ndarray) -> dict[str, np.ndarray]:
    """Per node: the ready endpoints of the simulated Services its kube-proxy had
    programmed at each instant of ``at`` (after that node's own sync delay)."""
    control = out.control
    counts = [sum(len(view[0]) for view in version.values()) for version in control.versions]
    cols = {}
    for node, sync in zip(out.cluster.nodes, control.nodes, strict=True):
        times = [t for t, _ in sync.history]
        values = [counts[v] for _, v in sync.history]
        cols[f"ready_endpoints:{node.name}"] = step_at(times, values, at, values[0])
    return cols


def balancer_columns(out: RunOutput, at: np.ndarray) -> dict[str, np.ndarray]:
    """Per node: 1 while the external balancer sends it traffic, 0 once marked down
    (from the lb_mark_down / lb_mark_up transitions). With several balanced
    populations the column is ``lb_up:<population>/<node>``."""
    balanced = [p for p in out.populations if getattr(p, "balancer", None) is not None]
    events = out.events
    cols = {}
    for pop in balanced:
        for node in out.cluster.nodes:
            times, values = [], []
            for t, kind, subject, detail in zip(events.time, events.kind, events.subject,
                                                events.detail, strict=True):
                if subject == node.name and kind in ("lb_mark_down", "lb_mark_up") and (
                        detail.startswith(f"{pop.name}:")):
                    times.append(t)
                    values.append(1.0 if kind == "lb_mark_up" else 0.0)
            name = node.name if len(balanced) == 1 else f"{pop.name}/{node.name}"
            cols[f"lb_up:{name}"] = step_at(times, values, at, 1.0)
    return cols


def pod_load_columns(out: RunOutput, requests: pd.DataFrame, edges: np.ndarray,
                     bucket: float) -> dict[str, np.ndarray]:
    """Per pod: requests that reached it per second, by the time they were sent."""
    n = len(edges)
    reached = reached_pod(requests)
    idx = np.where(reached, _bucket_of(requests["t_start"].to_numpy(dtype=float), bucket, n),
                   -1)
    codes = requests["pod"].cat.codes.to_numpy()
    pods = out.cluster.pods
    keep = (idx >= 0) & (codes >= 0)
    # one count over (pod, bucket) cells: a pass per pod was O(pods x requests)
    cells = np.bincount(codes[keep].astype(np.int64) * n + idx[keep],
                        minlength=len(pods) * n).reshape(len(pods), n) / bucket
    return {f"pod_load:{pod.name}": cells[pod.index] for pod in pods}


def timeseries_frame(out: RunOutput, requests: pd.DataFrame, bucket: float = 1.0) -> pd.DataFrame:
    """One replication's time series (``requests``: its request frame)."""
    edges = bucket_edges(out.end_time, bucket)
    scrape = np.minimum(edges + bucket, out.end_time)
    cols: dict[str, np.ndarray] = {
        "replication": np.full(len(edges), out.replication, dtype=np.int32),
        "time": edges,
    }
    cols.update(request_columns(requests, edges, bucket))
    cols.update(ready_endpoint_columns(out, scrape))
    cols.update(balancer_columns(out, scrape))
    cols.update(pod_load_columns(out, requests, edges, bucket))
    return pd.DataFrame(cols)
