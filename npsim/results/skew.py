"""How unevenly load lands: share statistics, source-IP survival, client stickiness.

For shares x_1..x_n (one per pod, zeros included): max/mean; coefficient of variation
sd/mean; Jain's fairness index (sum x)^2 / (n sum x^2), 1 for perfectly even and 1/n
when one pod takes everything; Gini sum_ij |x_i - x_j| / (2 n^2 mean), 0 when even.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from npsim.results.frames import BLOCK, codes, count_codes


def share_stats(counts: np.ndarray) -> dict[str, float]:
    """max/mean, CV, Jain and Gini of per-pod (or per-node) counts."""
    x = np.asarray(counts, dtype=float)
    if len(x) == 0 or x.sum() == 0:
        return {"max_over_mean": math.nan, "cv": math.nan, "jain": math.nan, "gini": math.nan}
    mean = x.mean()
    # sum_ij |x_i - x_j| = 2 sum_i (2i - n - 1) x_(i) over the sorted values (1-based i):
    # O(n log n) time and O(n) memory instead of an n x n array
    n = len(x)
    ranks = 2.0 * np.arange(1, n + 1) - n - 1
    gini = float(max(np.dot(ranks, np.sort(x)), 0.0) / (n**2 * mean))
    return {
        "max_over_mean": float(x.max() / mean),
        "cv": float(x.std() / mean),
        "jain": float(x.sum() ** 2 / (len(x) * (x**2).sum())),
        "gini": gini,
    }


def codes_of(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(codes, values) of a column: a categorical's own codes (no copy), anything else
    factorized; -1 marks a missing value."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return codes(column), column.cat.categories
    factorized, values = pd.factorize(column)
    return factorized, pd.Index(values)


def _selected(frame: pd.DataFrame, rows: np.ndarray | None) -> np.ndarray:
    return np.ones(len(frame), dtype=bool) if rows is None else rows.copy()


def source_ip_intact(served: pd.DataFrame, rows: np.ndarray | None = None) -> float:
    """Fraction of (served) requests whose pod saw the client's own address; ``rows``
    (a boolean mask) picks the requests to count without copying the frame."""
    seen, seen_values = codes_of(served["source_ip_seen"])
    client, client_values = codes_of(served["client_ip"])
    pod = codes_of(served["pod"])[0]
    # each address the pod saw -> the code of the same client address (-2: none, and
    # for a missing one, the last slot)
    same_as = pd.Index(client_values.astype(str)).get_indexer(seen_values.astype(str))
    same_as = np.append(np.where(same_as < 0, -2, same_as), -2)
    total = intact = 0
    for lo in range(0, len(served), BLOCK):  # no temporary per request of the run
        block = slice(lo, lo + BLOCK)
        count = pod[block] >= 0
        if rows is not None:
            count &= rows[block]
        total += int(count.sum())
        intact += int((same_as[seen[block][count]] == client[block][count]).sum())
    return intact / total if total else math.nan


def _rows_in(selected: np.ndarray, who: np.ndarray, first: int, last: int) -> np.ndarray:
    """Indexes of the selected rows whose ``who`` is in [first, last), a block at a time."""
    parts = []
    for lo in range(0, len(selected), BLOCK):
        ids = who[lo:lo + BLOCK]
        parts.append(np.flatnonzero(selected[lo:lo + BLOCK] & (ids >= first) & (ids < last))
                     + lo)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)


# (client, pod) pairs counted in one array (8 bytes each) instead of sorting each group
# of clients' connections: 500 clients and 4 pods are 2,000 counters
CELLS = 1 << 18


def _stickiness_by_cells(conns: np.ndarray, who: np.ndarray, pod: np.ndarray, n_who: int,
                         n_pods: int) -> float:
    """:func:`stickiness` over a (client, pod) count array: the same ratios, client
    after client in the same order, so the same mean to the bit."""
    cells = np.zeros(n_who * n_pods, dtype=np.int64)
    for lo in range(0, len(conns), BLOCK):
        rows = conns[lo:lo + BLOCK]
        key = who[lo:lo + BLOCK][rows].astype(np.int64) * n_pods
        key += pod[lo:lo + BLOCK][rows]
        cells += np.bincount(key, minlength=len(cells))
    cells = cells.reshape(n_who, n_pods)
    total, top = cells.sum(axis=1), cells.max(axis=1)
    keep = total >= 2
    if not keep.any():
        return math.nan
    return float((top[keep] / total[keep]).mean())


def stickiness(measured: pd.DataFrame, rows: np.ndarray | None = None) -> float:
    """Mean over clients with >= 2 connections of the fraction of their connections that
    reached their most-used pod (1.0: perfectly sticky). ``rows`` (a boolean mask) picks
    the requests to count without copying the frame."""
    population, populations = codes_of(measured["population"])
    client, clients = codes_of(measured["client_ip"])
    pod, pods = codes_of(measured["pod"])
    conns = _selected(measured, rows)
    new = measured["new_connection"].to_numpy(dtype=bool)
    for lo in range(0, len(conns), BLOCK):  # in place, a block at a time: no temporaries
        part = conns[lo:lo + BLOCK]           # of a byte per row
        part &= new[lo:lo + BLOCK]
        for column in (pod, client, population):
            part &= column[lo:lo + BLOCK] >= 0
    if not conns.any():
        return math.nan
    # connections per (population, client, pod): clients are taken in groups of about
    # BLOCK connections, so no temporary holds one value per connection of the run
    n_pods, n_clients = max(len(pods), 1), max(len(clients), 1)
    who = client if len(populations) < 2 else population.astype(np.int64) * n_clients + client
    n_who = len(populations) * n_clients if len(populations) >= 2 else n_clients
    if n_who * n_pods <= CELLS:  # few (client, pod) pairs: one count, no sort
        return _stickiness_by_cells(conns, who, pod, n_who, n_pods)
    per_who = np.bincount(who[conns], minlength=len(populations) * n_clients) \
        if len(populations) >= 2 else count_codes(client, conns, n_clients)
    totals, tops = [], []
    first = 0
    while first < len(per_who):
        last = first + max(int(np.searchsorted(np.cumsum(per_who[first:]), BLOCK,
                                               side="right")), 1)
        if per_who[first:last].any():
            rows = _rows_in(conns, who, first, last)
            key = who[rows].astype(np.int64) * n_pods
            key += pod[rows]
            del rows
            key, count = np.unique(key, return_counts=True)
            key //= n_pods  # sorted: each client's pods are neighbours
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            totals.append(np.add.reduceat(count, starts))
            tops.append(np.maximum.reduceat(count, starts))
        first = last
    total, top = np.concatenate(totals), np.concatenate(tops)
    keep = total >= 2
    if not keep.any():
        return math.nan
    return float((top[keep] / total[keep]).mean())

