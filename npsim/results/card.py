"""How a Result shows itself in a REPL and in Jupyter: a one-line repr and an HTML card
with the headline figures, instead of the dataclass's 130 lines of frames."""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

from npsim.results.headline import failure_line, percent
from npsim.results.lookup import HEADLINE, headline_values
from npsim.units import format_duration

Result = Any  # npsim.results.result.Result, which imports this module (no cycle)

_LABELS = {
    "requests_measured": "requests measured",
    "throughput": "throughput (completed)",
    "error_ratio": "error_ratio (failed / ended)",
    "latency_p50": "latency_p50 (completed)",
    "latency_p99": "latency_p99 (completed)",
    "user_latency_p99": "user_latency_p99 (every request)",
}


def show(metric: str, value: float) -> str:
    """A headline value in its unit."""
    if math.isnan(value):
        return "-"
    if metric == "throughput":
        return f"{value:,.1f}/s"
    if metric == "error_ratio":
        return percent(value)
    if metric.startswith("requests"):
        return f"{int(value):,}"
    return format_duration(value, 4)


def _what(result: Result) -> str:
    spec = result.scenario.spec
    counted = result.summary.loc[result.summary["metric"] == "replications", "value"]
    reps = int(counted.iloc[0]) if len(counted) else int(spec.run.replications)
    return f"{spec.name}, seed {spec.run.seed}, {reps} replication{'s' if reps != 1 else ''}"


def short_repr(result: Result) -> str:
    """``<Result node-failure, seed 1, 1 replication: 45,097 requests measured, ...>``."""
    values = headline_values(result.summary)
    figures = [f"{show('requests_measured', values['requests_measured'])} requests measured"]
    figures += [f"{name} {show(name, values[name])}" for name in HEADLINE[1:]]
    return f"<Result {_what(result)}: {', '.join(figures)}>"


def _interval(summary: pd.DataFrame, metric: str) -> str:
    row = summary[(summary["scope"] == "all") & (summary["metric"] == metric)]
    if row.empty or math.isnan(float(row["ci_low"].iloc[0])):
        return ""
    return f"{show(metric, float(row['ci_low'].iloc[0]))} .. " \
           f"{show(metric, float(row['ci_high'].iloc[0]))}"


def html_card(result: Result) -> str:
    """Jupyter's view: what ran, the failure line, the headline figures with their 95%
    intervals, and where the rest is."""
    values = headline_values(result.summary)
    all_values = result.summary[result.summary["scope"] == "all"].set_index("metric")["value"]
    rows = "".join(
        f"<tr><td>{html.escape(_LABELS[name])}</td><td>{html.escape(show(name, values[name]))}"
        f"</td><td>{html.escape(_interval(result.summary, name))}</td></tr>"
        for name in HEADLINE)
    frames = ", ".join(f"{name} ({len(getattr(result, name)):,} rows)"
                       for name in ("requests", "pods", "nodes", "events", "timeseries"))
    return (
        '<div class="npsim-result" style="border:1px solid #ccc;padding:6px;'
        'display:inline-block">'
        f"<b>npsim Result</b>: {html.escape(_what(result))}, "
        f"{result.end_time:g} s simulated<br>"
        f"{html.escape(' '.join(failure_line(all_values).split()))}"
        "<table><tr><th>metric</th><th>value</th><th>95% CI</th></tr>"
        f"{rows}</table>"
        f"<small>Frames: {html.escape(frames)}. result.report() prints the summary; "
        "result.plot.* draws; result.metric(name) reads one value.</small></div>")
