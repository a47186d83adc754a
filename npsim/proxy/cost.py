"""What a new connection's first packet costs in each kube-proxy mode.

Published first-packet latencies (read off the charts of the
Kubernetes blog "NFTables mode for kube-proxy", 2025-02-28, and KEP-3866's
``iptables-vs-nftables.svg``; +-4 us for iptables, +-0.3 us for IPVS/nftables), in
microseconds, at 5k / 10k / 30k Services, as quantiles p01 / p50 / p90 / p99:

=========  =====================  =====================  =====================
mode       5,000 Services         10,000 Services        30,000 Services
=========  =====================  =====================  =====================
iptables   16 / 47 / 118 / 154    8 / 59 / 185 / 260     39 / 272 / 489 / 713
nftables   8.0 / 13.9 / 21.0 / 38.4   8.0 / 14.2 / 21.0 / 36.9   8.0 / 14.2 / 21.3 / 38.4
IPVS       12.4 / 22.5 / 30.4 / 48.2  12.7 / 23.4 / 31.9 / 49.1  14.5 / 27.5 / 36.9 / 56.5
=========  =====================  =====================  =====================

Between points each quantile is interpolated linearly in the number of Services; beyond
30k it is extrapolated with the 10k->30k slope (iptables' KUBE-SERVICES scan is linear,
about 9.5 ns/Service at p50). Below 5k the charts give no points, so a straight line is not to be
trusted: npsim interpolates towards the nftables figures at 0 Services (an empty
KUBE-SERVICES chain costs what a constant-time lookup costs) -- an assumption.

A draw inverts the piecewise-linear quantile function through
(0, p01/2), (0.01, p01), (0.5, p50), (0.9, p90), (0.99, p99), (1, p99 + (p99 - p90)),
so the distribution has the published quantiles, not just the mean. Packets of
established connections pay nothing (conntrack; Tigera, "Comparing kube-proxy modes:
iptables or IPVS?", 2019).
The userspace proxy's cost is its own process hop, modelled in ``userspace.py``.

Every figure can be overridden per mode in the scenario (``cluster.costModel``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from npsim.dists import batched

Quantiles = tuple[float, float, float, float]  # p01, p50, p90, p99 in seconds
US = 1e-6

PUBLISHED: dict[str, dict[int, Quantiles]] = {
    "iptables": {
        5_000: (16 * US, 47 * US, 118 * US, 154 * US),
        10_000: (8 * US, 59 * US, 185 * US, 260 * US),
        30_000: (39 * US, 272 * US, 489 * US, 713 * US),
    },
    "nftables": {
        5_000: (8.0 * US, 13.9 * US, 21.0 * US, 38.4 * US),
        10_000: (8.0 * US, 14.2 * US, 21.0 * US, 36.9 * US),
        30_000: (8.0 * US, 14.2 * US, 21.3 * US, 38.4 * US),
    },
    "ipvs": {
        5_000: (12.4 * US, 22.5 * US, 30.4 * US, 48.2 * US),
        10_000: (12.7 * US, 23.4 * US, 31.9 * US, 49.1 * US),
        30_000: (14.5 * US, 27.5 * US, 36.9 * US, 56.5 * US),
    },
}
# the constant-time floor used at 0 Services (nftables at 5k)
FLOOR: Quantiles = PUBLISHED["nftables"][5_000]
LEVELS = (0.01, 0.5, 0.9, 0.99)


def quantiles_at(table: dict[int, Quantiles], services: int, floor: bool = True) -> Quantiles:
    """Each quantile interpolated (or extrapolated past the last point) in Services.

    ``floor`` adds the constant-time floor at 0 Services below the first point (the
    published tables); a user's own table is taken as given, flat below its first point.
    """
    points = sorted(table.items())
    if floor and points[0][0] > 0:
        points = [(0, FLOOR), *points]
    if len(points) == 1:
        return tuple(max(v, 0.0) for v in points[0][1])  # type: ignore[return-value]
    xs = [x for x, _ in points]
    out = []
    for q in range(4):
        ys = [y[q] for _, y in points]
        if services <= xs[-1]:
            out.append(float(np.interp(services, xs, ys)))
        else:
            slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
            out.append(ys[-1] + slope * (services - xs[-1]))
    return tuple(max(v, 0.0) for v in out)  # type: ignore[return-value]


def knots(q: Quantiles) -> tuple[list[float], list[float]]:
    p01, p50, p90, p99 = q
    return [0.0, 0.01, 0.5, 0.9, 0.99, 1.0], [p01 / 2, p01, p50, p90, p99, p99 + (p99 - p90)]


def mean_cost(q: Quantiles) -> float:
    """Mean of the piecewise-linear quantile function (trapezoids)."""
    us, vs = knots(q)
    return float(sum((u1 - u0) * (v0 + v1) / 2 for u0, u1, v0, v1 in
                     zip(us, us[1:], vs, vs[1:], strict=False)))


def cost_sampler(q: Quantiles, rng: np.random.Generator) -> Callable[[], float]:
    us, vs = knots(q)
    return batched(lambda n: np.interp(rng.random(n), us, vs))


def table_for(
    mode: str, overrides: dict[int, Sequence[float]] | None = None
) -> dict[int, Quantiles]:
    if overrides:
        return {int(k): tuple(v) for k, v in overrides.items()}  # type: ignore[misc]
    return PUBLISHED[mode]
