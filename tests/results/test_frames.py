"""The request frame: what it says about requests the run's stop cut short, that it is
built over the run's own columns, and that a saved frame reads back unchanged."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pandas as pd
import pytest
from conftest import build, client, constant

import npsim
from npsim.outcomes import COMPLETED, FAILED, REQUEST_TIMEOUT
from npsim.results.frames import request_frame
from npsim.results.store import write_parquet
from npsim.sim.engine import Simulation


def _scenario() -> npsim.Scenario:
    return build(nodes=2, replicas=2, service_time=constant(2e-3), workers=1,
                 clients=[client(rate=300.0)], duration=2.0)


def test_a_request_whose_service_starts_after_the_stop_is_in_flight() -> None:
    out = Simulation(_scenario()).run()
    log = out.log
    end = out.end_time
    done = [i for i in range(len(log)) if log.outcome[i] == COMPLETED]
    queued, gave_up, served = done[-1], done[-2], done[-3]
    # what a pod server that fills the service in on arrival leaves for a request still
    # queued at the stop: a service start (and end) after it
    log.service_start[queued] = end + 0.5
    log.t_end[queued] = end + 0.5 + log.service[queued]
    # a client that gave up before the stop while its request waited in the queue
    log.service_start[gave_up] = end + 0.25
    log.outcome[gave_up] = FAILED
    log.reason[gave_up] = REQUEST_TIMEOUT
    log.t_end[gave_up] = end - 0.1
    frame = request_frame(out).set_index("request")

    row = frame.loc[queued]
    assert row["outcome"] == "in_flight" and row["reason"] == ""
    for column in ("service_start", "service", "t_end", "latency", "queue_wait"):
        assert math.isnan(row[column]), column
    row = frame.loc[gave_up]  # the client saw its failure within the run: it stays
    assert row["outcome"] == "failed" and row["reason"] == "request_timeout"
    assert row["t_end"] == end - 0.1
    assert math.isnan(row["service_start"]) and math.isnan(row["service"])
    row = frame.loc[served]  # untouched rows keep their service
    assert row["outcome"] == "completed"
    assert row["service_start"] <= end and row["service"] > 0
    # nothing the frame calls completed started or ended after the stop
    completed = frame[frame["outcome"] == "completed"]
    assert (completed["service_start"] <= end).all() and (completed["t_end"] <= end).all()


def test_an_overloaded_pod_leaves_its_queue_in_flight_at_the_stop() -> None:
    # twice what the pods can serve: the queue grows until the stop; a pod server that
    # works a service out on arrival has already given the queued requests a start
    scenario = build(nodes=1, replicas=1, service_time=constant(10e-3), workers=1,
                     clients=[client(rate=200.0)], duration=1.0)
    out = Simulation(scenario).run()
    starts = out.log.columns()["service_start"]
    assert (starts > out.end_time).any()  # what the frame has to correct
    del starts
    frame = request_frame(out)
    queued = frame[frame["outcome"] == "in_flight"]
    assert len(queued) > 50
    assert queued["service_start"].isna().sum() > 0.9 * len(queued)
    assert (queued["service"].isna() == queued["service_start"].isna()).all()
    done = frame[frame["outcome"] == "completed"]
    assert (done["service_start"] <= out.end_time).all() and (done["t_end"] <= 1.0).all()
    assert len(done) + len(queued) == len(frame)


def test_the_frame_is_built_over_the_runs_columns_and_outlives_them() -> None:
    was_enabled = gc.isenabled()
    gc.disable()  # reference counting alone must free the log
    try:
        sim = Simulation(_scenario())
        log = weakref.ref(sim.log)
        out = sim.run()
        columns = out.log.columns()
        frame = request_frame(out)
        for name, column in (("t_start", "t_start"), ("network", "network"),
                             ("service", "service"), ("t_end", "t_end"),
                             ("conn", "connection")):
            assert np.shares_memory(columns[name], frame[column].to_numpy()), column
        expected = frame.copy()
        del sim, out, columns
        assert log() is None  # the log object is gone, its shared buffers are the frame's
        pd.testing.assert_frame_equal(frame, expected)
    finally:
        if was_enabled:
            gc.enable()


@pytest.mark.parametrize("rows_per_group", [7, 1 << 18])
def test_a_frame_written_in_row_groups_reads_back_unchanged(tmp_path, rows_per_group) -> None:
    result = npsim.run(build(nodes=3, replicas=3, clients=[client(rate=200.0)],
                             duration=0.5, replications=2))
    path = tmp_path / "requests.parquet"
    write_parquet(result.requests, path, rows_per_group=rows_per_group)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, result.requests, check_exact=True)
    for column in ("pod", "source_ip_seen", "reason"):
        assert list(back[column].cat.categories) == list(
            result.requests[column].cat.categories)


def test_a_consuming_frame_frees_the_columns_it_does_not_keep_and_is_the_same() -> None:
    """``consume`` (what npsim.run does) frees the log's population, client, entry, pod
    and SNAT columns while the frame is built; the frame is the one built without it."""
    scenario = _scenario()
    kept = request_frame(Simulation(scenario).run())
    out = Simulation(scenario).run()
    consumed = request_frame(out, consume=True)
    pd.testing.assert_frame_equal(consumed, kept)
    for name in ("population", "client", "entry", "pod", "snat"):
        assert len(getattr(out.log, name)) == 0, name
    assert len(out.log.t_start) == len(consumed)  # the frame's own buffers stay


def test_busy_time_is_the_clipped_service_span() -> None:
    """A request's busy time inside [lo, hi]: its service span clipped to the window, 0
    if never served (start or service NaN); the same floats as clipping the span with
    np.nan_to_num and np.clip (no -0.0)."""
    from npsim.results.frames import _busy

    rng = np.random.default_rng(7)
    start, service = rng.uniform(0, 10, 5000), rng.exponential(0.5, 5000)
    start[rng.random(5000) < 0.1] = np.nan
    service[rng.random(5000) < 0.1] = np.nan
    start[::97], service[::89], start[::53] = 1.0, 0.0, 9.0  # ties with the window's ends
    s0 = np.nan_to_num(start, nan=np.inf)
    expected = np.clip(np.minimum(s0 + np.nan_to_num(service, nan=0.0), 9.0)
                       - np.maximum(s0, 1.0), 0, None)
    got = _busy(start, service, 1.0, 9.0)
    assert np.array_equal(got, expected) and not np.signbit(got).any()
    assert _busy(np.array([2.0, np.nan, 8.5, 8.5]), np.array([1.0, 1.0, np.nan, 1.0]),
                 1.0, 9.0).tolist() == [1.0, 0.0, 0.0, 0.5]
