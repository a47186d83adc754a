"""Quantiles of many groups at once equal a ``np.quantile`` call per group, to the bit
(the time series' p50/p99 per bucket; frames must not change with the speed-up)."""

from __future__ import annotations

import numpy as np
import pytest

from npsim.results.quantiles import SORT_EACH_FROM, segment_quantiles
from npsim.results.timeseries import _quantiles

QS = (0.5, 0.99, 0.0, 1.0, 0.25, 0.999, 1 / 3)


def _loop(values: np.ndarray, counts: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """What the time series did before: one np.quantile per non-empty group."""
    out = np.full((len(qs), len(counts)), np.nan)
    start = 0
    for i, n in enumerate(counts):
        if n:
            out[:, i] = np.quantile(values[start:start + n].copy(), qs)
        start += n
    return out


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("seed", range(12))
def test_equal_to_a_quantile_per_group_on_random_data(seed):
    rng = np.random.default_rng(seed)
    groups = int(rng.integers(1, 400))
    # many empty groups, many of one or two values, some large ones
    counts = rng.choice([0, 0, 0, 1, 2, 3, 7, 50, 300], size=groups)
    values = rng.lognormal(-5, 1.5, size=int(counts.sum()))
    if seed % 3 == 0:  # ties: latencies of constant service times
        values = np.round(values, 4)
    expected = _loop(values, counts, QS)
    found = np.array(segment_quantiles(values.copy(), counts, QS))
    assert _same_bits(found, expected)


@pytest.mark.parametrize("seed", range(4))
def test_large_groups_sorted_one_by_one_give_the_same_bits(seed):
    # SORT_EACH_FROM values a group on average or more: the groups are sorted in place,
    # one by one (empty groups, ties and a NaN among them), not by one lexsort
    rng = np.random.default_rng(100 + seed)
    counts = rng.choice([0, 1, 500, 3000], size=int(rng.integers(1, 40)))
    counts[0] = 3000
    assert counts.sum() >= SORT_EACH_FROM * len(counts)
    values = np.round(rng.lognormal(-5, 1.5, size=int(counts.sum())), 3 + seed)
    values[int(rng.integers(len(values)))] = np.nan
    expected = _loop(values, counts, QS)
    found = np.array(segment_quantiles(values.copy(), counts, QS))
    assert _same_bits(found, expected)


def test_empty_groups_and_no_values_at_all_are_nan():
    found = segment_quantiles(np.empty(0), np.zeros(5, dtype=np.int64), (0.5, 0.99))
    assert all(np.isnan(col).all() and len(col) == 5 for col in found)
    values = np.array([3.0, 1.0, 2.0])
    p50, p99 = segment_quantiles(values, np.array([0, 3, 0]), (0.5, 0.99))
    assert np.isnan(p50[[0, 2]]).all() and p50[1] == 2.0
    assert p99[1] == np.quantile([1.0, 2.0, 3.0], 0.99)


def test_a_group_holding_nan_is_nan_like_np_quantile():
    values = np.array([1.0, np.nan, 2.0, 5.0, 4.0])
    counts = np.array([3, 2])
    found = np.array(segment_quantiles(values.copy(), counts, (0.5, 0.99)))
    assert _same_bits(found, _loop(values, counts, (0.5, 0.99)))
    assert np.isnan(found[:, 0]).all() and found[0, 1] == 4.5


def test_time_series_buckets_match_the_loop_over_rows_in_any_order():
    """The bucketed path of the time series (rows in send order, some in no bucket,
    several groups of buckets) against a quantile per bucket of the same rows."""
    rng = np.random.default_rng(7)
    rows, n = 20_000, 900
    t_start = rng.uniform(0, 100, rows)
    t_end = t_start + rng.exponential(0.01, rows)
    idx = rng.integers(-1, n, rows)
    idx[(idx >= 100) & (idx < 200)] = -1  # a run of empty buckets
    p50, p99 = _quantiles(idx, t_start, t_end, n, (0.5, 0.99))
    for b in rng.choice(n, 60, replace=False):
        latency = t_end[idx == b] - t_start[idx == b]
        if len(latency) == 0:
            assert np.isnan(p50[b]) and np.isnan(p99[b])
        else:
            assert (p50[b], p99[b]) == tuple(np.quantile(latency, (0.5, 0.99)))
