"""latency_breakdown reads every calling request of every replication (the lab and a
user's notebook call it on whole runs): each row is the request it names, and a run
whose calls all failed gives an empty table rather than an error."""

from __future__ import annotations

import numpy as np

import npsim
from npsim.results.callframe import latency_breakdown


def _shop(**changes: object) -> npsim.Scenario:
    return npsim.bundled("three-tier-shop").with_changes(
        {"run.duration": "2s", "run.warmup": "0s", **changes})


def test_each_row_is_the_request_it_names_in_every_replication() -> None:
    result = npsim.run(_shop(**{"run.replications": 2}))
    parts = latency_breakdown(result.requests, result.calls)
    assert set(parts["replication"]) == {0, 1}
    keyed = result.requests.set_index(["replication", "request"])
    rows = keyed.loc[list(zip(parts["replication"], parts["request"], strict=True))]
    assert np.array_equal(parts["latency"].to_numpy(), rows["latency"].to_numpy())
    assert np.array_equal(parts["own_work"].to_numpy(), rows["service"].to_numpy())
    # the frontend's pages call the catalogue and the cart; the cart calls its Redis
    pages = rows["population"].to_numpy() == "shoppers"
    assert (parts.loc[pages, "via_cart"] > 0).all()
    assert (parts.loc[~pages, "via_redis-cart"] > 0).all()
    total = parts[["network", "queue_wait", "own_work", "via_cart", "via_catalog",
                   "via_redis-cart", "other"]].sum(axis=1)
    assert np.allclose(total, parts["latency"])
    assert list(parts.sort_values(["replication", "request"]).index) == list(parts.index)


def test_no_completed_call_gives_an_empty_table() -> None:
    result = npsim.run(_shop(**{"deployments.catalog.replicas": 0,
                                "workloads.frontend.calls[0].timeout": "10ms"}))
    parts = latency_breakdown(result.requests, result.calls)
    assert parts.empty and "via_catalog" in parts.columns


def test_a_failed_call_the_page_carried_on_after_counts_for_its_service() -> None:
    """A cart call cut off by its 2 ms deadline (``onFailure: continue``) held the page
    for those 2 ms: the breakdown puts them under ``via_cart``, as a trace view shows the
    timed-out span on the critical path, not under ``other`` (the waits between calls),
    where a reader would never look for a slow Service."""
    result = npsim.run(_shop(**{"workloads.frontend.calls[1].timeout": "2ms",
                                "workloads.frontend.calls[1].onFailure": "continue"}))
    req, calls = result.requests, result.calls
    cart = req[req["population"] == "frontend>cart:grpc"].merge(
        calls[["replication", "request", "parent"]], on=["replication", "request"])
    timed_out = cart[cart["reason"] == "request_timeout"]
    assert len(timed_out) > 50  # the cart (5.5 ms a call) misses most 2 ms deadlines
    parts = latency_breakdown(req, calls).set_index(["replication", "request"])
    pages = parts.loc[list(zip(timed_out["replication"], timed_out["parent"], strict=True))]
    assert np.allclose(pages["via_cart"], timed_out["t_end"] - timed_out["t_start"])
    assert np.allclose(pages["via_cart"], 2e-3)
    assert (pages["other"].abs() < 1e-9).all()
