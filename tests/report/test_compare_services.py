"""``npsim compare`` of runs whose pods call Services: what a what-if did to each
Service (a third cart pod: the cart's p99), not only to the clients' pages."""

from __future__ import annotations

import npsim
from npsim.report import compare_table


def _shop(carts: int) -> npsim.Result:
    return npsim.run(npsim.bundled("three-tier-shop").with_changes({
        "run.duration": "3s", "run.warmup": "0.5s", "deployments.cart.replicas": carts}))


def test_each_service_has_its_rows_with_the_summarys_values():
    two, three = _shop(2), _shop(3)
    table = compare_table({"two": two, "three": three})
    for service in ("catalog", "cart", "redis-cart"):
        for label in ("throughput (req/s)", "latency p99 (ms)", "failed share (%)"):
            assert f"{service}: {label}" in table.index
    p99 = two.metric("latency_p99", service="cart")
    assert table.loc["cart: latency p99 (ms)", "two"] == f"{p99 * 1e3:.3f}"
    # the what-if shows where it acted: the cart's p99 falls with a third pod
    assert three.metric("latency_p99", service="cart") < p99
    # the clients' rows come first, as before
    assert list(table.index[:2]) == ["throughput (req/s)", "failed share (%)"]


def test_a_one_tier_run_has_no_service_rows():
    quick = npsim.run(npsim.bundled("quickstart").with_changes({"run.duration": "1s",
                                                                "run.warmup": "0.2s"}))
    table = compare_table({"a": quick})
    assert not any(":" in str(label) for label in table.index)
