"""Statistics of the rows a mask selects, read in place: numpy's and pandas' figures to
the bit (the summary's latency mean, p50/p95/p99 and queue-wait mean come from here)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from npsim.results import masked
from npsim.results.masked import Masked


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _samples(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Latency-like, constant, heavily tied, signed and rounded values."""
    return [rng.lognormal(-7, 1.5, n), np.full(n, 1e-3),
            rng.integers(0, 5, n) * 1e-3, rng.normal(0, 1, n),
            np.round(rng.exponential(1, n), 2) - 0.5]


@pytest.fixture(params=["default", "tiny"])
def sizes(request, monkeypatch):  # noqa: ANN001, ANN201
    """Also with blocks, sums and gathered groups of a few values, so that small arrays
    take every path: several blocks, several levels of the pairwise sum, several radix
    passes."""
    if request.param == "tiny":
        monkeypatch.setattr(masked, "BLOCK", 64)
        monkeypatch.setattr(masked, "LEAF", 128)  # numpy's own block: the least it can be
        monkeypatch.setattr(masked, "GATHER", 8)
    return request.param


def test_quantiles_and_mean_are_numpy_s_to_the_bit(sizes) -> None:  # noqa: ANN001
    rng = np.random.default_rng(7)
    qs = [0.0, 0.5, 0.95, 0.99, 1.0]
    for n in (1, 2, 3, 9, 1000, 70_001) if sizes == "default" else (1, 5, 64, 65, 3000):
        for values in _samples(rng, n):
            for share in (0.0, 0.1, 0.97, 1.0):
                mask = rng.random(n) < share
                chosen = values[mask]
                got = Masked(values, mask)
                assert got.n == len(chosen)
                want = np.quantile(chosen, qs) if len(chosen) else [math.nan] * len(qs)
                assert all(_same(float(w), g) for w, g in zip(want, got.quantiles(qs),
                                                              strict=True)), (n, share)
                want_mean = float(chosen.mean()) if len(chosen) else math.nan
                assert _same(want_mean, got.mean()), (n, share)
                want_max = float(chosen.max()) if len(chosen) else math.nan
                assert _same(want_max, got.max()), (n, share)


def test_a_nan_makes_every_quantile_nan_as_numpy_does() -> None:
    values = np.array([1.0, np.nan, 3.0, 4.0])
    assert all(math.isnan(q) for q in Masked(values, np.ones(4, dtype=bool)).quantiles(
        [0.0, 0.5, 0.99]))
    assert Masked(values, ~np.isnan(values)).quantiles([0.5]) == [3.0]
    assert math.isnan(Masked(values, np.ones(4, dtype=bool)).max())
    assert Masked(values, ~np.isnan(values)).max() == 4.0


def test_nan_mean_is_pandas_mean_to_the_bit(sizes) -> None:  # noqa: ANN001
    """The queue-wait mean skips NaNs as pandas does (same sum, same order), with or
    without missing values."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 1000, 100_001) if sizes == "default" else (1, 7, 300):
        for missing in (0.0, 0.1, 1.0):
            values = rng.lognormal(-5, 2, n)
            values[rng.random(n) < missing] = np.nan
            mask = rng.random(n) < 0.8
            ours, theirs = Masked(values, mask).nan_mean(), pd.Series(values[mask]).mean()
            assert _same(ours, theirs), (n, missing)


def test_the_selected_values_are_not_copied_whole() -> None:
    """The point of the module: at most a block of rows is copied at a time."""
    import tracemalloc

    rng = np.random.default_rng(3)
    values = rng.lognormal(-7, 1.5, 1_000_000)
    mask = np.ones(len(values), dtype=bool)
    tracemalloc.start()
    got = Masked(values, mask)
    got.quantiles([0.5, 0.95, 0.99]), got.mean(), got.nan_mean()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < values.nbytes / 3, peak  # a copy would be the whole 8 MB
