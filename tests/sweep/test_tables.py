"""Confidence intervals keep to a metric's range; paired differences are computed per
replication."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from npsim.results.summary import confidence_interval, metric_bounds
from npsim.sweep.tables import paired_differences, variant_summary


def test_a_fairness_index_near_one_keeps_its_interval_below_one() -> None:
    """Issue 9: pod_share_jain over 5 replications had ci_high 1.0000069."""
    jain = np.array([0.99998, 0.999991, 0.999999, 0.99997, 0.999995])
    mean, low, high = confidence_interval(jain, "pod_share_jain")
    assert low < mean < high == 1.0
    _, low, _ = confidence_interval(np.array([1e-6, 0.0, 3e-6]), "cross_node_fraction")
    assert low == 0.0
    assert metric_bounds("latency_p99") == (0.0, np.inf)
    assert metric_bounds("pod_share_max_over_mean")[0] == 1.0


def test_paired_differences_cancel_shared_noise() -> None:
    """Two variants whose replications share a large common part: the paired interval
    is as narrow as the difference's own spread, the unpaired one is not."""
    shared = np.array([10.0, 30.0, 20.0, 50.0, 40.0])
    runs = pd.DataFrame({
        "variant": ["base"] * 5 + ["more"] * 5, "replication": list(range(5)) * 2,
        "metric": "latency_p99", "value": np.concatenate([shared, shared + [1, 1.2, 0.8, 1, 1]])})
    row = paired_differences(runs, ["base", "more"], "base").iloc[0]
    assert row["difference"] == pytest.approx(1.0)
    paired, unpaired = row["ci_high"] - row["ci_low"], (
        row["unpaired_ci_high"] - row["unpaired_ci_low"])
    assert paired < 1 < 20 < unpaired
    summary = variant_summary(runs, ["base", "more"])
    assert list(summary["runs"]) == [5, 5] and summary["ci_low"].min() >= 0


def test_a_chosen_latency_column_brings_the_failed_share() -> None:
    """``variants.report: [latency_p99, throughput]`` made tables in which a variant that
    fails requests looked fastest; the failed share is added beside them, as a latency
    target brings its implied error_ratio."""
    from npsim.sweep.tables import report_columns

    assert report_columns(["latency_p99", "throughput"]) == [
        "latency_p99", "throughput", "error_ratio"]
    assert report_columns(["latency_p99", "failed_queue_full"]) == [
        "latency_p99", "failed_queue_full"]
    assert report_columns(["throughput", "pod_share_jain"]) == ["throughput", "pod_share_jain"]


def test_a_difference_without_replications_says_why_it_has_no_interval() -> None:
    """One replication has no spread: the cell said ``+0 +-- (+--)``."""
    from npsim.sweep.tables import difference_cell

    nan = float("nan")
    row = pd.Series({"difference": 0.002, "ci_low": nan, "ci_high": nan,
                     "unpaired_ci_low": nan, "unpaired_ci_high": nan})
    assert difference_cell("latency_p99", row) == "+2 (no CI: 1 replication)"
    row[["ci_low", "ci_high", "unpaired_ci_low", "unpaired_ci_high"]] = [0.001, 0.003,
                                                                          0.0, 0.004]
    assert difference_cell("latency_p99", row) == "+2 +-1 (+-2)"
