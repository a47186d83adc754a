"""``report.html`` and ``figures/*.png`` of one run: summary, per-population, per-pod and
per-node tables, every figure, the scenario's warnings and the resolved scenario."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from npsim.report.drawing import Drawn, start_drawing
from npsim.report.html import esc, figure, page, table
from npsim.results import labels
from npsim.results.headline import failure_line, percent
from npsim.results.result import Result
from npsim.results.shares import pod_shares
from npsim.results.summary import TABLE_ROWS, extremes

CAPTIONS = {
    "latency_cdf": "Latency CDF of completed requests after the warm-up (failed share marked)",
    "latency_percentiles": "Latency percentiles (pooled over replications)",
    "latency_breakdown": "Where the time goes: client network, hop, kube-proxy, queue, service",
    "pod_load": "Per-pod share of requests, with the fair share",
    "lorenz": "Lorenz curve of per-pod load (Gini in the legend)",
    "traffic_matrix": "Requests from each entry node to each pod",
    "cluster": "The cluster: nodes by zone, pods on their nodes, traffic as arrow widths",
    "timeseries": "Throughput, failures and latency over time, with events",
    "call_graph": "Call graph: who calls which Service, calls per second and p99 on each edge",
}
# a run whose pods call Services splits the clients' requests as a trace does
CALLS_CAPTIONS = {
    "latency_breakdown": "Where the clients' time goes: client network, hop, kube-proxy, "
                         "queue, the frontend's own work, each Service called (critical "
                         "path) and the rest",
}

KEY_METRICS = ["requests_generated", "requests_completed", "requests_failed",
               "requests_in_flight", "requests_unanswered", "requests_measured",
               "throughput", "latency_mean",
               "error_ratio", "latency_p50", "latency_p95", "latency_p99",
               "user_latency_p50", "user_latency_p95", "user_latency_p99", "queue_wait_mean",
               "cross_node_fraction", "source_ip_intact_fraction", "client_stickiness",
               "pod_share_max_over_mean", "pod_share_jain", "pod_share_gini"]


def format_value(metric: str, value: float) -> str:
    """The value in its metric's unit (the unit is in the row's label)."""
    return labels.format_value(metric, value)


def with_ci(row: Any) -> str:
    text = format_value(row["metric"], row["value"])
    if not math.isnan(row["ci_low"]):
        text += (f" ({format_value(row['metric'], row['ci_low'])} .. "
                 f"{format_value(row['metric'], row['ci_high'])})")
    return text


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Metrics (rows, labelled with their unit) by scope (columns: all, then each
    population), values with CIs."""
    order = KEY_METRICS + sorted(m for m in summary["metric"].unique()
                                 if m.startswith("failed_"))
    part = summary[summary["metric"].isin(order)].copy()
    part["text"] = part.apply(with_ci, axis=1)
    wide = part.pivot(index="metric", columns="scope", values="text")
    scopes = list(dict.fromkeys(summary["scope"]))  # all, then populations in order
    wide = wide.reindex(index=[m for m in order if m in wide.index], columns=scopes)
    wide.columns = [s.removeprefix("population:") for s in wide.columns]
    wide.index = [labels.metric_label(m) for m in wide.index]
    return wide.fillna("-")


def pod_table(result: Result) -> tuple[pd.DataFrame, str]:
    """The pods table (its extremes for a long one) and the note under it."""
    # pods calling Services: the held share and the own work's (results/callframe.py)
    shown = ["requests", "share", "utilisation"] + (
        ["cpu_utilisation"] if "cpu_utilisation" in result.pods.columns else [])
    pods = result.pods.groupby(["pod", "deployment", "node", "pod_ip"], sort=False,
                               observed=True)[shown].mean()
    pods = pods.reset_index()
    shares = pod_shares(result.requests, result.pods)
    if shares.shape[1] > 1:
        for population in shares.columns:
            pods[f"share {population}"] = pods["pod"].map(shares[population])
    total = len(pods)
    pods, left_out = extremes(pods, "share")
    for column in [c for c in pods.columns if c.startswith("share")
                   or c.endswith("utilisation")]:
        pods[column] = pods[column].map(percent)
    pods = pods.rename(columns={"pod_ip": "pod IP"})
    return pods, _table_note(left_out, total, "pods", "pods.parquet")


def node_table(result: Result) -> tuple[pd.DataFrame, str]:
    """The nodes table (its extremes for a long one) and the note under it."""
    nodes = result.nodes.groupby(["node", "zone", "node_ip"], sort=False, observed=True)[
        ["pods", "received", "served", "share", "cross_node_fraction"]].mean().reset_index()
    total = len(nodes)
    nodes, left_out = extremes(nodes, "share")
    for column in ("share", "cross_node_fraction"):
        nodes[column] = nodes[column].map(percent)
    nodes = nodes.rename(columns={"node_ip": "node IP", "received": "requests received",
                                  "served": "requests served",
                                  "cross_node_fraction": "cross-node share"})
    return nodes, _table_note(left_out, total, "nodes", "nodes.parquet")


def _with_note(frame: pd.DataFrame, note: str) -> str:
    return table(frame, index=False) + note


def _table_note(left_out: int, total: int, what: str, file: str) -> str:
    """Under a table cut to its extremes: what is shown, and where every row is."""
    if not left_out:
        return ""
    return (f"<p>The {TABLE_ROWS // 2} highest and {TABLE_ROWS // 2} lowest by share of "
            f"{total:,} {what}; every one is in {file}.</p>")


def _events_section(result: Result, limit: int = 60) -> list[str]:
    """The run's timeline (first replication): faults, control-plane reactions, alerts."""
    events = getattr(result, "events", None)
    if events is None or events.empty:
        return []
    first = events[events["replication"] == events["replication"].min()]
    shown = first.head(limit).assign(time=lambda f: f["time"].map(lambda t: f"{t:.3f} s"))
    more = (f"<p>{len(first) - limit} more in events.parquet.</p>"
            if len(first) > limit else "")
    return ["<h2>Events</h2>",
            table(shown[["time", "kind", "subject", "detail"]], index=False) + more]


def _headline(summary: pd.DataFrame) -> list[str]:
    """The failures first (what users saw), then what each latency covers."""
    values = summary[summary["scope"] == "all"].set_index("metric")["value"]
    text = " ".join(failure_line(values).split())  # the CLI line, its column padding gone
    return [f'<p class="headline"><b>{esc(text[0].upper() + text[1:])}.</b> '
            "Latencies (latency_*) count completed requests only; user_latency_* count "
            "every measured request that ended, a failed one until its client got the error "
            "or gave up.</p>"]


def write_run_report(result: Result, folder: Path,
                     drawn: Callable[[], Drawn] | None = None) -> Path:
    """Write ``figures/*.png`` and ``report.html`` into ``folder``; returns the page.
    ``drawn()`` gives the figures when they were started elsewhere (e.g. on other
    processes while the frames were written: :func:`npsim.report.drawing.start_drawing`);
    by default they are drawn here."""

    spec = result.scenario.spec
    body = _page_head(result) + _tables(result)  # while the figures are drawn elsewhere
    pngs, skipped = (drawn or start_drawing(result))()
    figures = folder / "figures"
    figures.mkdir(exist_ok=True)
    for name, png in pngs.items():
        (figures / f"{name}.png").write_bytes(png)
    captions = CAPTIONS | (CALLS_CAPTIONS if result.calls is not None else {})
    body += [figure(name, png, captions.get(name, name)) for name, png in pngs.items()]
    body += [f"<p>Not drawn: {esc(captions.get(name, name))} ({esc(why)}).</p>"
             for name, why in skipped.items()]
    body += ["<h2>Resolved scenario</h2>",
             "<p>Repeat this run with <code>npsim run scenario.resolved.yaml</code>.</p>",
             f"<pre>{esc(result.resolved_yaml())}</pre>"]
    out = folder / "report.html"
    out.write_text(page(f"npsim: {spec.name}", body), encoding="utf-8")
    return out


def _page_head(result: Result) -> list[str]:
    """The title, what was run, the headline and the scenario's warnings."""
    spec = result.scenario.spec
    reps = int(spec.run.replications)
    body = [
        f"<h1>npsim run: {esc(spec.name)}</h1>",
        f"<p>{esc(spec.description or '')}</p>",
        f"<p>npsim {esc(result.meta.get('npsim_version', ''))}, seed {spec.run.seed}, "
        f"{reps} replication{'s' if reps > 1 else ''}, {result.end_time:g} s simulated "
        f"(warm-up {spec.run.warmup:g} s). Intervals are 95% confidence intervals over "
        "replications.</p>",
        *_headline(result.summary),
    ]
    if result.scenario.warnings:
        body.append("<h2>Warnings</h2>")
        body += [f'<p class="warning">{esc(w)}</p>' for w in result.scenario.warnings]
    return body


def _tables(result: Result) -> list[str]:
    """The summary, pods, nodes and events tables, up to the figures' heading."""
    return ["<h2>Summary</h2>", table(summary_table(result.summary)),
            "<h2>Pods</h2>", _with_note(*pod_table(result)),
            "<h2>Nodes</h2>", _with_note(*node_table(result)),
            *_events_section(result),
            "<h2>Figures</h2>"]
