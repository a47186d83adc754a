"""The request log: rows written in place into room made ahead, exactly one value per
row once the run is over (what the frames and settle read)."""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest
from conftest import build, client

from npsim.outcomes import IN_FLIGHT
from npsim.sim.engine import Simulation
from npsim.sim.records import RequestLog


def _send(log: RequestLog, t: float, pod: int) -> int:
    """A row as the engine writes one: t_start appended, the rest stored in place."""
    row = len(log)
    if row >= log.capacity:
        log.reserve()
    log.t_start.append(t)
    log.pod[row] = pod
    log.network[row] = 0.25
    return row


def test_a_row_not_yet_served_reads_as_in_flight_and_columns_hold_only_the_rows() -> None:
    log = RequestLog()
    for i in range(3):
        _send(log, float(i), pod=i)
    assert log.capacity >= RequestLog.ROOM  # room made ahead of the rows
    cols = log.columns()
    assert {len(c) for c in cols.values()} == {3}
    assert cols["pod"].tolist() == [0, 1, 2]
    assert np.isnan(cols["t_end"]).all() and np.isnan(cols["service_start"]).all()
    assert (cols["outcome"] == IN_FLIGHT).all() and (cols["reason"] == 0).all()


def test_rows_past_the_room_keep_what_was_written_before() -> None:
    log = RequestLog()
    n = RequestLog.ROOM * 2 + 5  # two more rounds of room
    for i in range(n):
        _send(log, float(i), pod=i % 7)
        log.t_end[i] = i + 0.5  # written later, as a pod does
    cols = log.columns()
    assert cols["t_start"].tolist() == list(map(float, range(n)))
    assert cols["pod"].tolist() == [i % 7 for i in range(n)]
    assert (cols["t_end"] - cols["t_start"] == 0.5).all()


def test_a_view_taken_before_the_room_ran_out_refuses_writes() -> None:
    """A column kept across :meth:`RequestLog.reserve` must fail loudly, never write into
    memory the log has moved on from."""
    log = RequestLog()
    _send(log, 0.0, 0)
    stale = log.t_end
    for _ in range(log.capacity):  # one past the room
        _send(log, 1.0, 0)
    with pytest.raises(ValueError):
        stale[0] = 1.0


def test_trim_leaves_plain_arrays_of_the_rows_and_the_log_can_grow_again() -> None:
    log = RequestLog()
    for i in range(10):
        _send(log, float(i), 1)
    log.trim()
    for name in RequestLog.COLUMNS:
        col = getattr(log, name)
        assert isinstance(col, array) and len(col) == 10, name
    assert log.nbytes() < 10 * 100  # no room kept: a few dozen bytes a row
    _send(log, 10.0, 2)  # explain --at may advance again
    assert log.columns()["pod"].tolist() == [1] * 10 + [2]


def test_a_runs_log_is_plain_arrays_with_one_value_per_request() -> None:
    log = Simulation(build(nodes=2, replicas=2, workers=2, requests=3000)).run().log
    for name in RequestLog.COLUMNS:
        col = getattr(log, name)
        assert isinstance(col, array) and len(col) == 3000, name
    assert not math.isnan(log.t_end[2999])  # served (settled) and stored in place


def test_a_column_still_viewed_elsewhere_is_copied_not_refused():
    """Something holding a numpy view of a column (a frame, a settle step) must not stop
    the log from making room or trimming: the holder keeps the old buffer."""
    from npsim.sim.records import RequestLog

    log = RequestLog()
    log.reserve()
    for i in range(3):
        log.t_start.append(float(i))
        log.pod[i] = i
    held = log.columns()["pod"]  # views the array under the column
    log.reserve()  # would resize the viewed array
    log.pod[1] = 7
    log.trim()
    assert list(log.pod) == [0, 7, 2]
    assert held.tolist() == [0, 1, 2]  # the holder still reads what it viewed


def test_room_reads_zero_where_a_row_leaves_a_column_unwritten() -> None:
    """The engine does not store a usual zero (population 0, an open connection's flag
    and kube-proxy cost): the room, made anew after a trim too, must read 0 there."""
    log = RequestLog()
    for i in range(5):
        row = _send(log, float(i), 0)
        log.population[row], log.new_conn[row], log.proxy[row] = 3, 1, 0.5
    log.trim()
    for i in range(RequestLog.ROOM + 5):  # the room made after the trim, then more
        _send(log, 10.0 + i, 0)
    cols = log.columns()
    assert cols["population"].tolist() == [3] * 5 + [0] * (RequestLog.ROOM + 5)
    assert cols["new_conn"][5:].sum() == 0 and (cols["proxy"][5:] == 0.0).all()


def test_a_run_records_populations_and_connection_reuse_by_row() -> None:
    """Rows of a second population carry its index; requests on an open connection say
    so (new_conn 0) and pay no kube-proxy cost (the engine skips writing those zeros)."""
    scenario = build(nodes=2, replicas=2, workers=2, requests=400, zero_proxy_cost=False,
                     clients=[client("a", rate=200.0),
                              client("b", rate=200.0, requests_per_connection=4)])
    cols = Simulation(scenario).run().log.columns()
    population, new_conn, proxy = cols["population"], cols["new_conn"], cols["proxy"]
    assert set(population.tolist()) == {0, 1}
    first = population == 0
    assert new_conn[first].all()  # one request per connection
    assert (proxy[first] > 0).all()  # each pays its connection's first packet
    reused = ~first & (new_conn == 0)
    assert reused.sum() >= population[~first].size // 2  # 3 of 4 reuse a connection
    assert (proxy[reused] == 0.0).all() and (proxy[~first & ~reused] > 0).all()
