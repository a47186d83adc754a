"""Tables that read well (issue 24): metric labels with units, text left-aligned and
numbers right-aligned, no negative zero, and no negative queue wait."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import run_bundled

from npsim.report.html import table
from npsim.report.run_report import node_table, pod_table, summary_table
from npsim.results.labels import format_value, metric_label


@pytest.fixture(scope="module")
def quickstart():
    return run_bundled("quickstart", 4.0, 1.0)


def test_metric_labels_carry_their_units() -> None:
    assert metric_label("throughput") == "throughput (req/s)"
    assert metric_label("latency_p99") == "latency p99 (ms)"
    assert metric_label("error_ratio") == "failed share (%)"
    assert metric_label("pod_share_jain") == "Jain fairness (1 = even)"
    assert metric_label("failed_connect_timeout") == "failed: connect timeout"
    assert metric_label("failed_share_connect_timeout") == "failed share: connect timeout (%)"


@pytest.mark.parametrize("metric, value, text", [
    ("queue_wait_mean", -1e-14, "0.000"), ("latency_p50", 0.0012345, "1.234"),
    ("error_ratio", -0.0, "0.0"), ("throughput", 1234.56, "1,234.6"),
    ("requests_failed", 13790.0, "13,790"), ("pod_share_gini", float("nan"), "-")])
def test_values_are_shown_in_the_label_s_unit_never_minus_zero(metric, value, text) -> None:
    assert format_value(metric, value) == text


def test_the_report_s_summary_rows_are_labels_not_ids(quickstart) -> None:
    rows = list(summary_table(quickstart.summary).index)
    assert "throughput (req/s)" in rows and "queue wait mean (ms)" in rows
    assert not [r for r in rows if re.fullmatch(r"[a-z0-9_]+", r) and "_" in r]


def test_queue_wait_is_never_negative(quickstart) -> None:
    wait = quickstart.requests["queue_wait"].dropna()
    assert (wait >= 0).all() and (wait == 0).any()  # served at once: exactly 0
    assert quickstart.metric("queue_wait_mean") >= 0


def test_text_columns_are_left_aligned_numbers_right(quickstart) -> None:
    pods, _ = pod_table(quickstart)
    html = table(pods, index=False)
    head = re.findall(r"<th( class=\"text\")?>([^<]*)</th>", html)
    kinds = {name: bool(cls) for cls, name in head}
    assert kinds["pod"] and kinds["deployment"] and kinds["node"] and kinds["pod IP"]
    assert not kinds["requests"] and not kinds["share"] and not kinds["utilisation"]
    nodes, _ = node_table(quickstart)
    assert '<td class="text">172.18.0.2</td>' in table(nodes, index=False)
    assert "<td>-0" not in table(pd.DataFrame({"x": [-0.0, -1e-15]}), index=False)


def test_compare_and_sweep_tables_show_what_users_saw() -> None:
    """A run that fails requests looks fast by the completed requests' latency: every
    table that compares runs shows the failed share and the users' p99 beside it
    (``npsim compare`` had no users' row; a sweep's tables neither column)."""
    import pandas as pd

    from npsim.report.compare import compare_table
    from npsim.sweep.tables import REPORT_METRICS, comparison_table, mean_table

    summary = pd.DataFrame([
        {"scope": "all", "metric": m, "value": v, "ci_low": float("nan"),
         "ci_high": float("nan")}
        for m, v in (("latency_p99", 0.024), ("user_latency_p99", 3.0),
                     ("error_ratio", 0.306), ("throughput", 69.4))])
    table = compare_table({"run": summary})
    assert table.loc["user-seen latency p99 (ms)", "run"] == "3000.000"
    assert table.loc["failed share (%)", "run"] == "30.6"
    assert {"error_ratio", "user_latency_p99"} <= set(REPORT_METRICS)
    variants = pd.DataFrame([
        {"variant": "base", "metric": m, "runs": 1, "mean": v, "ci_low": float("nan"),
         "ci_high": float("nan")}
        for m, v in (("latency_p99", 0.024), ("user_latency_p99", 3.0),
                     ("error_ratio", 0.306))])
    means = mean_table(variants, "base", REPORT_METRICS)
    assert means.loc["base *", "error_ratio (%)"] == "30.6"
    assert means.loc["base *", "user_latency_p99 (ms)"] == "3,000"
    markdown = comparison_table(variants, pd.DataFrame(), "base")
    assert "| error_ratio |" in markdown.splitlines()[0].replace("user_latency_p99 |", "")
    assert "30.6%" in markdown and "3s" in markdown


def test_requests_held_unanswered_have_a_row_where_a_run_has_them() -> None:
    import pandas as pd

    from npsim.report.compare import compare_table
    from npsim.report.run_report import summary_table

    def rows(extra: tuple) -> pd.DataFrame:
        return pd.DataFrame([
            {"scope": "all", "metric": m, "value": v, "ci_low": float("nan"),
             "ci_high": float("nan")}
            for m, v in (("error_ratio", 0.185), ("requests_in_flight", 2216.0), *extra)])

    held = rows((("requests_unanswered", 2212.0),))
    label = "requests unanswered at the end (counted as failed)"
    assert compare_table({"hung": held, "fine": rows(())}).loc[label].tolist() == [
        "2,212", "-"]
    assert label in summary_table(held).index
    assert label not in compare_table({"fine": rows(())}).index
