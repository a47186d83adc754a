"""Several runs side by side: a table of key metrics with their confidence intervals,
overlaid latency CDFs and percentiles, and the breakdown by component."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from npsim.plots import latency_breakdown, latency_cdf, latency_percentiles
from npsim.report.html import esc, figure, page, table, write_figures
from npsim.report.run_report import KEY_METRICS, with_ci
from npsim.results.labels import metric_label
from npsim.results.result import Result

CAPTIONS = {
    "latency_cdf": "Latency CDF of completed requests after the warm-up, one curve per run; "
                   "a run with failures stops at 1 - its failed share (dashed line)",
    "latency_percentiles": "Latency percentiles p50, p90, p99 and p99.9 per run, pooled over "
                           "replications",
    "latency_breakdown": "Where each run's time goes: mean client network, node-to-pod hop, "
                         "kube-proxy, queue wait and service time per completed request",
}

# the failed share and the users' p99 beside the completed requests' latency: a run
# that fails requests looks fast by the latter alone
COMPARED = ["throughput", "error_ratio", "latency_p50", "latency_p99", "user_latency_p99",
            "latency_mean",
            "queue_wait_mean",
            "cross_node_fraction", "source_ip_intact_fraction", "client_stickiness",
            "pod_share_max_over_mean", "pod_share_gini", "requests_measured",
            "requests_failed", "requests_unanswered", "replications"]


# per Service, when pods call Services: what a what-if did to each tier
PER_SERVICE = ["throughput", "latency_p99", "error_ratio"]


def compare_table(results: Mapping[str, Result | pd.DataFrame]) -> pd.DataFrame:
    """Rows: key metrics (scope ``all``), labelled with their unit, then, for runs whose
    pods call Services, each Service's throughput, p99 and failed share (its
    ``service:NAME`` scope: everything it received); columns: one per labelled result
    (or summary frame, e.g. a sweep's variant); cells: value with its 95% CI when the
    run had replications."""
    columns = {}
    services: dict[str, None] = {}
    for label, result in results.items():
        s = result if isinstance(result, pd.DataFrame) else result.summary
        mine = s["scope"].astype(str)
        rows = s[(mine == "all") & s["metric"].isin(COMPARED)
                 | mine.str.startswith("service:") & s["metric"].isin(PER_SERVICE)].copy()
        rows["text"] = rows.apply(with_ci, axis=1)  # by the metric's own unit
        rows["metric"] = rows["metric"].where(rows["scope"].astype(str) == "all",
                                              rows["scope"].astype(str) + "|" + rows["metric"])
        columns[label] = rows.set_index("metric")["text"]
        services.update(dict.fromkeys(mine[mine.str.startswith("service:")]))
    frame = pd.DataFrame(columns)
    order = [m for m in COMPARED if m in frame.index] + [
        f"{scope}|{m}" for scope in services for m in PER_SERVICE
        if f"{scope}|{m}" in frame.index]
    frame = frame.reindex(order).fillna("-")
    frame.index = [metric_label(m) if "|" not in m else
                   f"{m.split('|')[0].removeprefix('service:')}: "
                   f"{metric_label(m.split('|')[1])}" for m in order]
    return frame.rename_axis("metric")


def write_compare_report(results: Mapping[str, Result], folder: Path,
                         sources: Mapping[str, str] | None = None,
                         columns: Mapping[str, Result | pd.DataFrame] | None = None) -> Path:
    """``compare.html`` and ``figures/*.png`` comparing the labelled results; the table
    has ``columns`` when given (a sweep's variants as summaries), the figures draw
    ``results``."""
    figures, skipped = {}, {}
    for plot in (latency_cdf, latency_percentiles, latency_breakdown):
        try:
            figures[plot.__name__] = plot(dict(results))
        except ValueError as exc:  # no completed request in any run
            skipped[plot.__name__] = str(exc)
    pngs = write_figures(figures, folder)
    columns = results if columns is None else columns
    listing = "".join(f"<li><b>{esc(label)}</b>: {esc((sources or {}).get(label, ''))}"
                      + (f" (scenario {esc(results[label].scenario.spec.name)}, seed "
                         f"{results[label].scenario.spec.run.seed})" if label in results else "")
                      + "</li>" for label in columns)
    body = [f"<h1>npsim comparison of {len(columns)} runs</h1>", f"<ul>{listing}</ul>",
            "<h2>Key metrics</h2>", table(compare_table(columns)),
            "<p>Intervals are 95% confidence intervals over replications.</p>",
            "<h2>Figures</h2>"]
    body += [figure(name, png, CAPTIONS[name]) for name, png in pngs.items()]
    body += [f"<p>Not drawn: {esc(CAPTIONS[name])} ({esc(why)}).</p>"
             for name, why in skipped.items()]
    out = folder / "compare.html"
    out.write_text(page("npsim comparison", body), encoding="utf-8")
    return out


__all__ = ["compare_table", "write_compare_report", "KEY_METRICS"]
