"""How unevenly load lands: share statistics, source-IP survival, client stickiness.

For shares x_1..x_n (one per pod, zeros included): max/mean; coefficient of variation
sd/mean; Jain's fairness index (sum x)^2 / (n sum x^2), 1 for perfectly even and 1/n
when one pod takes everything; Gini sum_ij |x_i - x_j| / (2 n^2 mean), 0 when even.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


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


def source_ip_intact(served: pd.DataFrame) -> float:
    """Fraction of (served) requests whose pod saw the client's own address."""
    served = served[served["pod"].notna()]
    if served.empty:
        return math.nan
    same = served["source_ip_seen"].astype(str).to_numpy() == served["client_ip"].astype(
        str).to_numpy()
    return float(same.mean())


def stickiness(measured: pd.DataFrame) -> float:
    """Mean over clients with >= 2 connections of the fraction of their connections that
    reached their most-used pod (1.0: perfectly sticky)."""
    conns = measured[measured["new_connection"] & measured["pod"].notna()]
    if conns.empty:
        return math.nan
    counts = conns.groupby(["population", "client_ip", "pod"], observed=True).size()
    per_client = counts.groupby(level=[0, 1], observed=True)
    total = per_client.sum()
    top = per_client.max()
    keep = total >= 2
    if not keep.any():
        return math.nan
    return float((top[keep] / total[keep]).mean())
