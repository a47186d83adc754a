"""Request, pod and node DataFrames, built once per run from the columns.

Column meanings are documented in README.md ("Frames"); keep the two in step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from npsim.cluster.model import ip_str
from npsim.sim.engine import RunOutput
from npsim.sim.records import COMPLETED, FAILED, IN_FLIGHT, OUTCOMES, REASONS


def _categorical(codes: np.ndarray, names: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int32), categories=names)


def request_frame(out: RunOutput) -> pd.DataFrame:
    """One row per generated request, whatever became of it."""
    cols = out.log.columns()
    cluster = out.cluster
    n = len(cols["t_start"])
    pod = cols["pod"].astype(np.int64)
    has_pod = pod >= 0
    pod_node_of = np.array([p.node for p in cluster.pods] + [-1], dtype=np.int64)
    pod_node = pod_node_of[pod]  # index -1 maps to the sentinel
    entry = cols["entry"].astype(np.int64)
    crossed = has_pod & (pod_node != entry)

    # an end the client would only see after the run stopped is still in flight
    outcome = cols["outcome"].astype(np.int8).copy()
    t_end = cols["t_end"].copy()
    late = (outcome != IN_FLIGHT) & (t_end > out.end_time)
    outcome[late] = IN_FLIGHT
    reason = np.where(outcome == FAILED, cols["reason"], 0).astype(np.int8)
    t_end[outcome == IN_FLIGHT] = np.nan

    t_start = cols["t_start"]
    network = cols["network"]
    proxy = cols["proxy"]
    service_start = cols["service_start"]
    arrive_pod = t_start + network * 0.5 + proxy
    queue_wait = service_start - arrive_pod

    node_ips = np.array([nd.ip for nd in cluster.nodes], dtype=np.int64)
    bridge_ips = np.array([nd.bridge_ip for nd in cluster.nodes], dtype=np.int64)
    pops = out.populations
    pop_idx = cols["population"].astype(np.int64)
    ip_index = cols["client"].astype(np.int64) % np.array(
        [p.n_ips for p in pops], dtype=np.int64)[pop_idx]
    client_ip = np.zeros(n, dtype=np.int64)
    at_node = np.zeros(n, dtype=np.int64)
    for i, p in enumerate(pops):
        rows = pop_idx == i
        client_ip[rows] = np.asarray(p.client_ips, dtype=np.int64)[ip_index[rows]]
        at_node[rows] = np.asarray(p.wire_ips, dtype=np.int64)[ip_index[rows]]

    # masquerade: a remote pod sees the receiving node's IP, a same-node pod the node's
    # pod-bridge address (kube-proxy MASQUERADE; Kubernetes docs "Using Source IP");
    # userspace mode proxies every
    # connection itself, so its pods always see the node; without SNAT (Local policies,
    # pod short-circuits, ClusterIP from pods) the pod sees what the node saw
    via_process = np.array([p.pod_sees_node for p in out.proxies], dtype=bool)
    natted = np.where(crossed | via_process[entry], node_ips[entry], bridge_ips[entry])
    keeps = (cols["snat"] == 0) & ~via_process[entry]
    seen = np.where(keeps, at_node, natted)

    # retries (clients with ``retries``): which attempt a row is, and the row it repeats
    attempt = np.zeros(n, dtype=np.int8)
    retry_of = np.full(n, -1, dtype=np.int64)
    for p in pops:
        if p.retry_of:
            rows = np.fromiter(p.retry_of, dtype=np.int64, count=len(p.retry_of))
            retry_of[rows] = np.fromiter(p.retry_of.values(), dtype=np.int64, count=len(rows))
            attempt[rows] = np.fromiter((p.attempt[r] for r in p.retry_of), dtype=np.int8,
                                        count=len(rows))

    node_names = [nd.name for nd in cluster.nodes]
    pod_names = [p.name for p in cluster.pods]
    frame = pd.DataFrame(
        {
            "replication": np.full(n, out.replication, dtype=np.int32),
            "request": np.arange(n, dtype=np.int64),
            "population": _categorical(pop_idx, [p.name for p in pops]),
            "client_ip": _ips(client_ip),
            "source_ip_at_node": _ips(at_node),
            "connection": cols["conn"].copy(),
            "new_connection": cols["new_conn"].astype(bool),
            "entry_node": _categorical(entry, node_names),
            "pod": pd.Categorical.from_codes(np.where(has_pod, pod, -1), categories=pod_names),
            "pod_node": pd.Categorical.from_codes(np.where(has_pod, pod_node, -1),
                                                  categories=node_names),
            "cross_node": crossed,
            "source_ip_seen": _ips(np.where(has_pod, seen, -1)),
            "t_start": t_start.copy(),
            "t_end": t_end,
            "latency": t_end - t_start,
            "network": network.copy(),
            "hop": cols["hop"].copy(),
            "proxy": proxy.copy(),
            "service_start": service_start.copy(),
            "queue_wait": queue_wait,
            "service": cols["service"].copy(),
            "outcome": _categorical(outcome, [OUTCOMES[k] for k in sorted(OUTCOMES)]),
            "reason": _categorical(reason, [REASONS[k] for k in sorted(REASONS)]),
            "warmup": t_start < out.warmup,
            "attempt": attempt,
            "retry_of": retry_of,
        },
        # the arrays above are this frame's own (views of the run's columns are copied):
        # no second copy of every column while the run's columns are still alive
        copy=False,
    )
    return frame


def _ips(values: np.ndarray) -> pd.Categorical:
    """Dotted addresses as a categorical (few distinct values, many rows); -1 = missing."""
    uniq, inverse = np.unique(values, return_inverse=True)
    codes = inverse.astype(np.int32)
    if len(uniq) and uniq[0] < 0:
        codes -= 1
        uniq = uniq[1:]
    return pd.Categorical.from_codes(codes, categories=[ip_str(int(v)) for v in uniq])


# failures whose connection never reached the chosen pod
UNREACHED = ("connect_timeout", "reply_lost", "endpoint_gone", "dial_failed")


def reached_pod(requests: pd.DataFrame) -> np.ndarray:
    """Rows whose request reached a pod (served, queued, or turned away by its queue)."""
    return (requests["pod"].notna() & ~requests["reason"].isin(UNREACHED)).to_numpy()


def pod_frame(out: RunOutput, requests: pd.DataFrame) -> pd.DataFrame:
    """Per pod: where it runs, its load share and its time-weighted utilisation."""
    cluster = out.cluster
    # only the columns used: a copy of every column costs ~130 bytes per request
    measured = requests.loc[~requests["warmup"].to_numpy(), ["pod", "reason", "new_connection"]]
    # busy time of each worker-slot inside [warmup, end], from each request's service span
    s0 = np.nan_to_num(requests["service_start"].to_numpy(), nan=np.inf)
    s1 = s0 + np.nan_to_num(requests["service"].to_numpy(), nan=0.0)
    busy = np.clip(np.minimum(s1, out.end_time) - np.maximum(s0, out.warmup), 0, None)
    pod_codes = requests["pod"].cat.codes.to_numpy()
    busy_by_pod = np.bincount(pod_codes[pod_codes >= 0], weights=busy[pod_codes >= 0],
                              minlength=len(cluster.pods))
    measured = measured[reached_pod(measured)]
    counts = measured["pod"].value_counts(sort=False).reindex(
        [p.name for p in cluster.pods], fill_value=0).to_numpy()
    conns = measured[measured["new_connection"]]["pod"].value_counts(sort=False).reindex(
        [p.name for p in cluster.pods], fill_value=0).to_numpy()
    total = max(int(counts.sum()), 1)
    rows = []
    for p in cluster.pods:
        rows.append({
            "replication": out.replication,
            "pod": p.name,
            "deployment": p.deployment,
            "node": cluster.nodes[p.node].name,
            "pod_ip": ip_str(p.ip),
            "workers": p.workers,
            "requests": int(counts[p.index]),
            "connections": int(conns[p.index]),
            "share": counts[p.index] / total,
            "created_at": p.created_at,
            "deleted_at": np.nan if p.deleted_at is None else p.deleted_at,
            "utilisation": _utilisation(busy_by_pod[p.index], p, out.warmup, out.end_time),
        })
    return pd.DataFrame(rows, columns=POD_COLUMNS)


POD_COLUMNS = ["replication", "pod", "deployment", "node", "pod_ip", "workers", "requests",
               "connections", "share", "created_at", "deleted_at", "utilisation"]


def _utilisation(busy: float, pod, start: float, end: float) -> float:  # noqa: ANN001
    """Busy worker-time over worker-time, within the part of the measured window the pod
    existed (a pod scaled in or out is judged over its own lifetime)."""
    lo = max(start, pod.created_at)
    hi = min(end, pod.deleted_at if pod.deleted_at is not None else end)
    return busy / (pod.workers * (hi - lo)) if hi > lo else np.nan


def concat_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack replications; categorical columns keep one dtype whatever each one saw."""
    if len(frames) == 1:
        return frames[0]
    out = pd.concat(frames, ignore_index=True)
    for column in frames[0].columns:
        if isinstance(frames[0][column].dtype, pd.CategoricalDtype):
            out[column] = union_categoricals([f[column] for f in frames])
    return out


def node_frame(out: RunOutput, requests: pd.DataFrame) -> pd.DataFrame:
    """Per node: traffic it received, traffic its pods served, and the hops it caused."""
    cluster = out.cluster
    measured = requests.loc[~requests["warmup"].to_numpy(),
                            ["pod", "reason", "entry_node", "pod_node", "cross_node"]]
    names = [n.name for n in cluster.nodes]
    reached = measured[reached_pod(measured)]
    received = measured["entry_node"].value_counts(sort=False).reindex(names, fill_value=0)
    served = reached["pod_node"].value_counts(sort=False).reindex(names, fill_value=0)
    crossed = reached[reached["cross_node"]]["entry_node"].value_counts(sort=False).reindex(
        names, fill_value=0)
    total_served = max(int(served.sum()), 1)
    rows = []
    for n in cluster.nodes:
        rec = int(received[n.name])
        rows.append({
            "replication": out.replication,
            "node": n.name,
            "zone": n.zone,
            "node_ip": ip_str(n.ip),
            "pod_cidr": str(n.pod_cidr),
            "pods": sum(1 for p in cluster.pods if p.node == n.index),
            "received": rec,
            "served": int(served[n.name]),
            "share": int(served[n.name]) / total_served,
            "cross_node_fraction": int(crossed[n.name]) / rec if rec else np.nan,
        })
    return pd.DataFrame(rows)


__all__ = ["request_frame", "pod_frame", "node_frame", "COMPLETED", "FAILED", "IN_FLIGHT"]
