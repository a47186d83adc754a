"""The summary's statistics: the figures users read, computed without copies of the
request frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from npsim.results.summary import _nan_mean


def test_queue_wait_mean_is_pandas_mean_to_the_bit() -> None:
    """The summary's NaN-skipping mean avoids pandas' copy of the values but must give
    pandas' figure exactly (same sum, same order), with or without missing values."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 1000, 100_001):
        for missing in (0.0, 0.1, 1.0):
            values = rng.lognormal(-5, 2, n)
            values[rng.random(n) < missing] = np.nan
            ours, theirs = _nan_mean(values), pd.Series(values).mean()
            assert ours == theirs or (math.isnan(ours) and math.isnan(theirs)), (n, missing)
