"""A sweep's tables: per-variant means with 95% CIs, and paired differences.

Replication ``r`` of every variant shares its random numbers (common random numbers),
so the difference of two variants is computed replication by replication (a paired
t-interval): noise the variants share cancels. The unpaired (Welch) interval is given
beside it to show how much pairing buys.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from npsim.results.student import t975
from npsim.results.summary import confidence_interval
from npsim.units import format_duration

# the failed share and the users' p99 beside the completed requests' latency: a variant
# that fails requests looks fast by the latter alone
REPORT_METRICS = ("throughput", "error_ratio", "latency_p50", "latency_p99",
                  "user_latency_p99", "queue_wait_mean", "cross_node_fraction",
                  "pod_share_max_over_mean", "pod_share_jain", "source_ip_intact_fraction")


def report_columns(chosen: list[str] | tuple[str, ...]) -> list[str]:
    """The columns a scenario's ``variants.report`` asks for, with ``error_ratio`` added
    when one is a latency and none counts failures: a variant that fails requests
    lowers its completed requests' latency (as a latency target implies ``error_ratio``,
    npsim/sweep/targets.py ``with_guard``)."""
    from npsim.sweep.targets import ERROR_RATIO, is_failure, is_latency

    out = list(chosen)
    if any(is_latency(m) for m in out) and not any(is_failure(m) for m in out):
        out.append(ERROR_RATIO)
    return out


def variant_summary(runs: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """variant, metric, runs, mean, ci_low, ci_high (bounded metrics stay in range)."""
    rows = []
    for variant in order:
        part = runs[runs["variant"] == variant]
        for metric, values in part.groupby("metric", sort=False)["value"]:
            mean, low, high = confidence_interval(values.to_numpy(), str(metric))
            rows.append({"variant": variant, "metric": metric, "runs": int(values.notna().sum()),
                         "mean": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["variant", "metric", "runs", "mean", "ci_low",
                                       "ci_high"])


def _welch(a: np.ndarray, b: np.ndarray) -> float:
    """Half-width of the 95% Welch interval of mean(a) - mean(b)."""
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(t975(df) * se)  # scipy's t quantile; imported only for a fractional df


def paired_differences(runs: pd.DataFrame, order: list[str], baseline: str) -> pd.DataFrame:
    """Per variant and metric: mean of (variant - baseline) over shared replications,
    the paired 95% CI, and the unpaired one for comparison."""
    wide = runs.pivot_table(index=["metric", "replication"], columns="variant", values="value",
                            aggfunc="first", dropna=False)
    rows = []
    for variant in order:
        if variant == baseline or variant not in wide or baseline not in wide:
            continue
        for metric, part in wide[[variant, baseline]].groupby(level="metric", sort=False):
            both = part.dropna()
            a, b = both[variant].to_numpy(), both[baseline].to_numpy()
            diff, low, high = confidence_interval(a - b)
            half = _welch(a, b) if len(a) >= 2 else math.nan
            rows.append({"variant": variant, "baseline": baseline, "metric": metric,
                         "runs": len(both), "difference": diff, "ci_low": low, "ci_high": high,
                         "unpaired_ci_low": diff - half, "unpaired_ci_high": diff + half})
    return pd.DataFrame(rows, columns=["variant", "baseline", "metric", "runs", "difference",
                                       "ci_low", "ci_high", "unpaired_ci_low",
                                       "unpaired_ci_high"])


def _fmt(metric: str, value: float) -> str:
    if value != value:
        return "-"
    if metric.startswith(("latency", "queue_wait", "first_packet", "user_latency")):
        return format_duration(value, 4)
    if metric.endswith("jain"):
        return f"{value:.4f}"
    if metric.endswith(("fraction", "error_ratio")):
        return f"{value:.1%}"
    return f"{value:.4g}"


def comparison_table(summary: pd.DataFrame, paired: pd.DataFrame, baseline: str,
                     metrics: tuple[str, ...] | list[str] = REPORT_METRICS) -> str:
    """Markdown: each variant's mean [95% CI] per metric, then the paired differences
    against the baseline with the unpaired CI half-width for comparison."""
    metrics = tuple(m for m in metrics if m in set(summary["metric"]))
    lines = ["| variant | " + " | ".join(metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    by = summary.set_index(["variant", "metric"])
    for variant in dict.fromkeys(summary["variant"]):
        cells = []
        for m in metrics:
            row = by.loc[(variant, m)]
            cell = _fmt(m, row["mean"])
            if not math.isnan(row["ci_low"]):
                cell += f" [{_fmt(m, row['ci_low'])}, {_fmt(m, row['ci_high'])}]"
            cells.append(cell)
        name = f"**{variant}** (baseline)" if variant == baseline else variant
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if paired.empty:
        return "\n".join(lines)
    lines += ["", f"Differences against `{baseline}`: mean over replications +- the paired 95% "
              "CI half-width (unpaired half-width in parentheses: what the comparison would "
              "cost without common random numbers).", "",
              "| variant | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    diffs = paired.set_index(["variant", "metric"])
    for variant in dict.fromkeys(paired["variant"]):
        cells = []
        for m in metrics:
            if (variant, m) not in diffs.index:
                cells.append("-")
                continue
            r = diffs.loc[(variant, m)]
            paired_half = (r["ci_high"] - r["ci_low"]) / 2
            unpaired_half = (r["unpaired_ci_high"] - r["unpaired_ci_low"]) / 2
            cells.append(f"{_fmt(m, r['difference'])} +- {_fmt(m, paired_half)} "
                         f"({_fmt(m, unpaired_half)})")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- tables to read: units in the headers, a fixed scale per column ------------------

def metric_unit(metric: str) -> tuple[float, str]:
    """The factor and unit a metric is shown in: every cell of a column alike."""
    if metric.startswith(("latency", "queue_wait", "user_latency")):
        return 1e3, "ms"
    if metric.startswith("first_packet"):
        return 1e6, "us"
    if metric.startswith(("time_to_", "fault_start")):
        return 1.0, "s"
    if metric.endswith(("fraction", "stickiness", "error_ratio")) or metric.startswith(
            "error_budget_consumed"):
        return 100.0, "%"
    if metric == "throughput":
        return 1.0, "req/s"
    return 1.0, ""


def unit_label(metric: str) -> str:
    unit = metric_unit(metric)[1]
    return f"{metric} ({unit})" if unit else metric


def _num(value: float, signed: bool = False, digits: int = 4) -> str:
    if value != value:
        return "-"
    sign = "+" if signed else ""
    if abs(value) >= 1000:
        return f"{value:{sign},.0f}"
    return f"{value:{sign}.{digits}g}"


def mean_cell(metric: str, mean: float, low: float, high: float) -> str:
    """``12.35 [11.94, 12.77]``: the mean and its 95% CI in the column's unit."""
    factor = metric_unit(metric)[0]
    text = _num(mean * factor)
    if low == low and high == high:
        text += f" [{_num(low * factor, digits=3)}, {_num(high * factor, digits=3)}]"
    return text


def difference_cell(metric: str, row: pd.Series) -> str:
    """``+1.23 +-0.41 (+-2.1)``: the mean paired difference, the paired CI's half-width
    and, in parentheses, the unpaired one."""
    factor = metric_unit(metric)[0]
    paired = (row["ci_high"] - row["ci_low"]) / 2 * factor
    unpaired = (row["unpaired_ci_high"] - row["unpaired_ci_low"]) / 2 * factor
    difference = _num(row["difference"] * factor, signed=True)
    if paired != paired and unpaired != unpaired:  # one replication: no interval
        return f"{difference} (no CI: 1 replication)"
    return f"{difference} +-{_num(paired, digits=3)} (+-{_num(unpaired, digits=3)})"


def mean_table(summary: pd.DataFrame, baseline: str, metrics: list[str] | tuple[str, ...]
               ) -> pd.DataFrame:
    """Variants (rows, the baseline marked ``*``) by metrics (columns with their unit)."""
    metrics = [m for m in metrics if m in set(summary["metric"])]
    by = summary.set_index(["variant", "metric"])
    rows = {}
    for variant in dict.fromkeys(summary["variant"]):
        rows[variant + (" *" if variant == baseline else "")] = [
            mean_cell(m, *by.loc[(variant, m), ["mean", "ci_low", "ci_high"]])
            if (variant, m) in by.index else "-" for m in metrics]
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=[unit_label(m) for m in metrics]).rename_axis("variant")


def difference_table(paired: pd.DataFrame, metrics: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """Each variant's difference from the baseline per metric (see :func:`difference_cell`)."""
    metrics = [m for m in metrics if m in set(paired["metric"])]
    by = paired.set_index(["variant", "metric"])
    rows = {variant: [difference_cell(m, by.loc[(variant, m)]) if (variant, m) in by.index
                      else "-" for m in metrics]
            for variant in dict.fromkeys(paired["variant"])}
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=[unit_label(m) for m in metrics]).rename_axis("variant")
