"""The width of a time-series bucket: ``run.timeseriesBucket``, or derived from the run.

Without the key a run gets 1 s buckets, except that a run under a minute gets at least
24 (at most 60) and a run over an hour at most :data:`MAX_DEFAULT_BUCKETS`: the smallest
1-2-5 step that fits. The post-run work and the per-pod series grow with the bucket
count, so a day of light traffic costs no more than an hour of the same requests.
A run knows its length before it starts when it has a ``duration``; a request-count run
learns it when the last answer arrives, so each replication may derive its own.
``scenario.resolved.yaml`` writes the bucket a run used (``npsim.results.result``).
"""

from __future__ import annotations

import math

from npsim.scenario.schema import RunSpec

MIN_DEFAULT_BUCKETS = 60  # a run under a minute: the step giving at most 60 buckets
MAX_DEFAULT_BUCKETS = 3600  # a run over an hour: the step giving at most 3600 buckets


def _step_at_least(target: float) -> float:
    """The smallest 1-2-5 step (..., 0.1, 0.2, 0.5, 1, 2, 5, 10, ...) >= ``target``."""
    decade = 10.0 ** math.floor(math.log10(target))
    return next(step * decade for step in (1, 2, 5, 10) if step * decade >= target)


def bucket_is_set(run: RunSpec) -> bool:
    """Whether the scenario gives ``run.timeseriesBucket`` itself."""
    return "timeseries_bucket" in run.model_fields_set


def series_bucket(run: RunSpec, end_time: float) -> float:
    """The bucket of a replication that ended at ``end_time`` (seconds)."""
    if bucket_is_set(run) or end_time <= 0:
        return float(run.timeseries_bucket)
    if end_time < MIN_DEFAULT_BUCKETS:
        return _step_at_least(end_time / MIN_DEFAULT_BUCKETS)
    if end_time > MAX_DEFAULT_BUCKETS * float(run.timeseries_bucket):
        return _step_at_least(end_time / MAX_DEFAULT_BUCKETS)
    return float(run.timeseries_bucket)


def bucket_before_run(run: RunSpec) -> float | None:
    """The bucket every replication uses when that is known before the run (the key is
    set, or the run has a ``duration``); None for a request-count run."""
    if bucket_is_set(run):
        return float(run.timeseries_bucket)
    return None if run.duration is None else series_bucket(run, float(run.duration))
