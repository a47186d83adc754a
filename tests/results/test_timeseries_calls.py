"""The time series of a run whose pods call Services counts what users sent, as the
summary does: each page once, its latency end to end, its calls in columns of their own
(``calls_sent``, ``calls_completed``, ``calls_failed``)."""

from __future__ import annotations

import numpy as np
import pytest

import npsim


@pytest.fixture(scope="module")
def shop() -> npsim.Result:
    """three-tier-shop for 3 s, two replications: 300 pages/s, four rows per page."""
    return npsim.run(npsim.bundled("three-tier-shop").with_changes(
        {"run.duration": "3s", "run.warmup": "0.5s", "run.replications": 2,
         "run.timeseriesBucket": "500ms"}))


def _bucket(times: np.ndarray, width: float) -> np.ndarray:
    return np.floor(times / width).astype(int)


def test_headline_columns_count_the_clients_requests_and_the_calls_apart(shop) -> None:
    req, ts = shop.requests, shop.timeseries
    pages = (req["population"] == "shoppers").to_numpy()
    for rep, part in ts.groupby("replication"):
        mine = (req["replication"] == rep).to_numpy()
        page, call = req[mine & pages], req[mine & ~pages]
        assert part["sent"].sum() == len(page)
        assert part["calls_sent"].sum() == len(call)
        for name in ("completed", "failed"):
            assert part[name].sum() == (page["outcome"] == name).sum()
            assert part[f"calls_{name}"].sum() == (call["outcome"] == name).sum()
        # about 300 pages a second (not the ~1,200 rows a second pages and calls make)
        assert part["sent"].mean() / 0.5 == pytest.approx(300, rel=0.15)
        # two catalogue calls and a cart call per page, the cart a Redis call for each
        assert part["calls_sent"].sum() == pytest.approx(4 * part["sent"].sum(), rel=0.05)
        # p50 per bucket: that of the pages completed in it (tens of ms, not a call's 2 ms)
        done = page[page["outcome"] == "completed"]
        ends = _bucket(done["t_end"].to_numpy(), 0.5)
        for b, row in enumerate(part.itertuples()):
            latencies = done["latency"].to_numpy()[ends == b]
            if len(latencies):
                assert row.latency_p50 == pytest.approx(np.quantile(latencies, 0.5))
        assert part["latency_p50"].iloc[2:].min() > 0.01


def test_the_series_add_up_to_the_summarys_all_scope(shop) -> None:
    ts = shop.timeseries
    assert ts["completed"].sum() == shop.metric("requests_completed")
    assert ts["failed"].sum() == shop.metric("requests_failed")


def test_a_run_without_calls_has_no_call_columns() -> None:
    quick = npsim.run(npsim.bundled("quickstart").with_changes(
        {"run.duration": "1s", "run.warmup": "0s"}))
    assert not quick.timeseries.filter(like="calls_").columns.size
    assert quick.timeseries["sent"].sum() == len(quick.requests)
