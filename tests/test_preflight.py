"""The run's size estimate (npsim.preflight), as the memory guard uses it."""

from __future__ import annotations

from conftest import client, scenario_dict

import npsim
from npsim.preflight import BYTES_PER_NODE_BUCKET, BYTES_PER_POD_BUCKET, estimate


def test_the_memory_estimate_counts_a_row_per_pod_and_node_per_time_bucket():
    """pod_timeseries and node_timeseries hold every pod and node in every bucket,
    whatever the traffic: an hour of 1 s buckets costs 3,599 rows more per pod and
    node than one bucket of an hour, in each replication."""
    d = scenario_dict(nodes=3, replicas=10, clients=[client(rate=1.0)], duration=3600.0,
                      replications=2)
    d["run"]["timeseriesBucket"] = "1s"
    fine = estimate(npsim.scenario_from_dict(d))
    d["run"]["timeseriesBucket"] = "1h"
    coarse = estimate(npsim.scenario_from_dict(d))
    assert fine.requests == coarse.requests
    assert fine.memory - coarse.memory == 3599 * 2 * (10 * BYTES_PER_POD_BUCKET
                                                     + 3 * BYTES_PER_NODE_BUCKET)
    # a run under a minute without the key: at most 60 buckets (the 1-2-5 step)
    del d["run"]["timeseriesBucket"]
    d["run"]["duration"] = "30s"
    short = estimate(npsim.scenario_from_dict(d))
    d["run"]["timeseriesBucket"] = "1s"
    assert estimate(npsim.scenario_from_dict(d)).memory == short.memory - 30 * 2 * (
        10 * BYTES_PER_POD_BUCKET + 3 * BYTES_PER_NODE_BUCKET)
