"""What a summary metric is called in a table a person reads, and how its value is
shown: a label with its unit (``throughput`` -> "throughput (req/s)"), seconds as
milliseconds, shares as percentages, counts as whole numbers, never ``-0``.

The frames keep the metric ids (``pod_share_jain``): scripts select by them. Tables
for people (the report, ``npsim compare``) show the label and keep the id beside it
only where a reader would look it up (``result.metric(id)``).
"""

from __future__ import annotations

import math

LABELS = {
    "requests_generated": "requests generated",
    "requests_completed": "requests completed",
    "requests_failed": "requests failed",
    "requests_in_flight": "requests in flight at the end",
    "requests_unanswered": "requests unanswered at the end (counted as failed)",
    "requests_measured": "requests measured (after warm-up)",
    "replications": "replications",
    "throughput": "throughput",
    "error_ratio": "failed share",
    "latency_mean": "latency mean",
    "latency_p50": "latency p50",
    "latency_p95": "latency p95",
    "latency_p99": "latency p99",
    "user_latency_p50": "user-seen latency p50",
    "user_latency_p95": "user-seen latency p95",
    "user_latency_p99": "user-seen latency p99",
    "queue_wait_mean": "queue wait mean",
    "cross_node_fraction": "cross-node share",
    "source_ip_intact_fraction": "client IP kept",
    "client_stickiness": "client stickiness",
    "pod_share_max_over_mean": "busiest pod / mean pod",
    "pod_share_jain": "Jain fairness (1 = even)",
    "pod_share_gini": "Gini of pod shares (0 = even)",
    "pod_share_cv": "CV of pod shares",
}


def metric_unit(metric: str) -> str:
    """The unit a metric is shown in: "ms", "%", "req/s" or "" (a count or a ratio)."""
    if metric.startswith(("latency_", "user_latency_", "queue_wait")):
        return "ms"
    if metric.endswith(("_fraction", "stickiness", "error_ratio")) or \
            metric.startswith("failed_share_"):
        return "%"
    if metric == "throughput":
        return "req/s"
    return ""


def metric_label(metric: str) -> str:
    """``throughput`` -> "throughput (req/s)"; ``failed_timeout`` -> "failed: timeout"."""
    if metric in LABELS:
        text = LABELS[metric]
    elif metric.startswith("failed_share_"):
        text = f"failed share: {metric.removeprefix('failed_share_').replace('_', ' ')}"
    elif metric.startswith("failed_"):
        text = f"failed: {metric.removeprefix('failed_').replace('_', ' ')}"
    else:
        text = metric.replace("_", " ")
    unit = metric_unit(metric)
    return f"{text} ({unit})" if unit else text


def format_value(metric: str, value: float | None) -> str:
    """A value in its metric's unit (the unit is in the label, not the cell): seconds as
    ms with three decimals, shares as %, counts with thousands separators; "-" for
    none. A value that rounds to zero is shown as 0, never -0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    unit = metric_unit(metric)
    if unit == "ms":
        text = f"{value * 1e3:.3f}"
    elif unit == "%":
        text = f"{value * 100:.1f}"
    elif metric.startswith(("requests_", "failed_", "replications")):
        text = f"{int(round(value)):,}"
    elif unit == "req/s":
        text = f"{value:,.1f}"
    else:
        text = f"{value:.4g}"
    return no_negative_zero(text)


def no_negative_zero(text: str) -> str:
    """"-0.000" -> "0.000": a rounding artefact, not a sign a reader should see."""
    if text.startswith("-") and not any(c in "123456789" for c in text):
        return text[1:]
    return text
