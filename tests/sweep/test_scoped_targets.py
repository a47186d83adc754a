"""Targets and checks on one Service's figures (``latency_p99{service=cart} < 200ms``):
the question of issue 21, "how many cart replicas keep checkout's p99 under 200 ms",
where the Service is called by pods rather than by the clients."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

import npsim
from npsim.cli import main
from npsim.results.text import WIDTH, fit_rows, text_rows
from npsim.scenario.bundled import bundled_path
from npsim.sweep.store import tidy_metrics
from npsim.sweep.targets import (
    PlanError,
    as_rows,
    check_metric,
    metric_value,
    parse_target,
    scoped_key,
    split_key,
    with_guard,
)

SHOP = bundled_path("three-tier-shop")


def test_a_scoped_target_reads_its_label_with_or_without_quotes() -> None:
    plain = parse_target("latency_p99{service=cart} < 200ms")
    quoted = parse_target('latency_p99{ service = "cart" } < 200ms')
    for target in (plain, quoted):
        assert (target.metric, target.scope, target.key) == (
            "latency_p99", "service:cart", "latency_p99{service=cart}")
        assert target.threshold == pytest.approx(0.2)
    assert parse_target("latency_p99 < 1s").key == "latency_p99"
    assert parse_target("failed_connect_timeout{population=shoppers} < 3").scope == \
        "population:shoppers"


@pytest.mark.parametrize(("text", "words"), [
    ("latency_p99{zone=a} < 2ms", "{service=NAME} or {population=NAME}"),
    ("latency_p99{service=} < 2ms", "{service=NAME} or {population=NAME}"),
    ("replications{service=cart} < 2", "a figure of the whole run"),
    ("latency_p98{service=cart} < 2ms", "did you mean 'latency_p99'"),
])
def test_malformed_scoped_targets_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(PlanError, match=None) as info:
        parse_target(text)
    assert words in str(info.value) and text in str(info.value)


def test_the_scope_must_exist_in_the_scenario() -> None:
    shop = npsim.load_scenario(SHOP)
    check_metric(parse_target("latency_p99{service=cart} < 1s"), shop)
    check_metric(parse_target("latency_p99{population=shoppers} < 1s"), shop)
    with pytest.raises(PlanError, match="no Service 'carts'.*cart, catalog"):
        check_metric(parse_target("latency_p99{service=carts} < 1s"), shop)
    with pytest.raises(PlanError, match="no client population 'buyers'.*shoppers"):
        check_metric(parse_target("latency_p99{population=buyers} < 1s"), shop)
    one_tier = npsim.load_scenario(bundled_path("quickstart"))
    with pytest.raises(PlanError, match="written when pods call Services"):
        check_metric(parse_target("latency_p99{service=nginx} < 1s"), one_tier)


def test_a_services_latency_target_brings_that_services_error_ratio() -> None:
    """A Service that sheds calls looks fast; with onFailure: continue its failures do not
    fail the clients' requests, so the clients' error ratio would not catch it."""
    targets = with_guard([parse_target("latency_p99{service=cart} < 60ms"),
                          parse_target("latency_p99 < 1s")])
    implied = [(t.key, t.threshold) for t in targets if t.implied]
    assert implied == [("error_ratio{service=cart}", 0.01), ("error_ratio", 0.01)]
    given = with_guard([parse_target("latency_p99{service=cart} < 60ms"),
                        parse_target("error_ratio{service=cart} < 5%")])
    assert not any(t.implied for t in given)


def test_a_missing_count_is_zero_only_where_the_run_has_the_scope() -> None:
    rows = {"latency_p99{service=cart}": 0.1, "failed_dropped": 2.0}
    assert metric_value(rows, "failed_connect_timeout{service=cart}") == 0.0
    assert math.isnan(metric_value(rows, "failed_connect_timeout{service=redis}"))
    assert math.isnan(metric_value(rows, "latency_p50{service=cart}"))


@pytest.fixture(scope="module")
def shop_result() -> npsim.Result:
    scenario = npsim.load_scenario(SHOP).with_changes({"run.duration": "4s", "run.warmup": "1s",
                                                       "run.replications": 1})
    return npsim.run(scenario)


def test_runs_record_every_scope_under_its_key(shop_result: npsim.Result) -> None:
    rows = as_rows(tidy_metrics("", 0, shop_result))
    summary = shop_result.summary.set_index(["scope", "metric"])["value"]
    for service in ("frontend", "catalog", "cart", "redis-cart"):
        assert rows[f"latency_p99{{service={service}}}"] == \
            summary[(f"service:{service}", "latency_p99")]
    assert rows["latency_p99"] == summary[("all", "latency_p99")]
    assert rows["latency_p99{population=shoppers}"] == \
        summary[("population:shoppers", "latency_p99")]


def test_run_check_judges_one_services_figure(tmp_path, shop_result: npsim.Result) -> None:
    cart_p99 = float(shop_result.summary.set_index(["scope", "metric"])["value"][
        ("service:cart", "latency_p99")])
    args = ["run", str(SHOP), "--no-save", "--json", "--set", "run.duration=4s",
            "--set", "run.warmup=1s", "--set", "run.replications=1"]
    above = CliRunner().invoke(main, [*args, "--check",
                                      f"latency_p99{{service=cart}} < {cart_p99 * 2e3}ms"])
    below = CliRunner().invoke(main, [*args, "--check",
                                      f"latency_p99{{service=cart}} < {cart_p99 * 5e2}ms"])
    assert above.exit_code == 0, above.output
    assert below.exit_code == 1, below.output
    doc = json.loads(above.stdout)
    checks = {c["check"]: c for c in doc["checks"]}
    cart = checks[f"latency_p99{{service=cart}} < {cart_p99 * 2e3}ms"]
    assert cart["scope"] == "service:cart"
    assert cart["value"] == pytest.approx(cart_p99)
    assert checks["error_ratio{service=cart} < 1%"]["implied"]


def test_a_long_target_gives_way_so_the_table_fits() -> None:
    rows = [["variant", "target", "mean"],
            ["catalog-local", "latency_p99{service=productcatalogservice} < 20ms",
             "6.092ms [5.037ms, 7.148ms]" * 2]]
    lines = text_rows(fit_rows(rows, 1), "lll")
    assert all(len(line) <= WIDTH for line in lines)
    assert "20ms" in lines[1] and "latency_p99" in lines[1]


def test_scoped_keys_read_back_into_their_scopes() -> None:
    for scope, metric in (("service:cart", "latency_p99"), ("population:shop>cart:grpc",
                                                            "throughput")):
        assert split_key(scoped_key(metric, scope)) == (scope, metric)
    assert split_key("latency_p99") == ("all", "latency_p99")


def test_compare_of_a_sweep_shows_each_service(tmp_path) -> None:
    """A sweep's summary.csv holds the Services' figures under their keys: compare reads
    them back into ``service:`` scopes, so a sweep compares tier by tier as runs do."""
    import pandas as pd

    from npsim.report.compare import compare_table
    from npsim.sweep.folder import read_sweep

    rows = [("two-carts", "latency_p99", 0.05), ("two-carts", "latency_p99{service=cart}",
                                                 0.147), ("two-carts", "replications", 3.0)]
    pd.DataFrame([{"variant": v, "metric": m, "mean": x, "ci_low": x, "ci_high": x,
                   "runs": 3} for v, m, x in rows]).to_csv(tmp_path / "summary.csv",
                                                            index=False)
    summary, _ = read_sweep(tmp_path)["two-carts"]
    assert ("service:cart", "latency_p99") in set(zip(summary["scope"], summary["metric"],
                                                      strict=True))
    table = compare_table({"two-carts": summary})
    assert table.loc["cart: latency p99 (ms)", "two-carts"].startswith("147.0")
