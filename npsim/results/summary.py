"""Summary statistics of a run, with 95% confidence intervals across replications.

Latency statistics use completed requests that started after the warm-up. With R >= 2
replications each statistic is computed per replication and the interval is
mean +- t(0.975, R-1) * sd / sqrt(R): replications are independent, requests within one
run are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats

from npsim.results.frames import reached_pod
from npsim.results.skew import share_stats, source_ip_intact, stickiness
from npsim.units import format_duration

Candidates = list[tuple[str, str]]  # (pod, node) a scope's traffic could reach


def _per_replication(requests: pd.DataFrame, windows: dict[int, float],
                     candidates: Candidates | None = None) -> pd.DataFrame:
    rows = []
    for rep, frame in requests.groupby("replication", sort=True, observed=True):
        window = windows[int(rep)]
        measured = frame[~frame["warmup"].to_numpy()]
        done = measured[measured["outcome"] == "completed"]
        lat = done["latency"].to_numpy()
        crossed = done["cross_node"].to_numpy()
        rows.append({
            "replication": rep,
            "throughput": len(done) / window,
            "latency_mean": float(lat.mean()) if len(lat) else math.nan,
            "latency_p50": float(np.quantile(lat, 0.50)) if len(lat) else math.nan,
            "latency_p95": float(np.quantile(lat, 0.95)) if len(lat) else math.nan,
            "latency_p99": float(np.quantile(lat, 0.99)) if len(lat) else math.nan,
            "queue_wait_mean": float(done["queue_wait"].mean()) if len(done) else math.nan,
            "cross_node_fraction": float(crossed.mean()) if len(crossed) else math.nan,
            "source_ip_intact_fraction": source_ip_intact(done),
            "client_stickiness": stickiness(measured),
        })
        per_pod = measured[reached_pod(measured)]["pod"].value_counts(sort=False)
        if candidates is not None:  # only the pods this traffic could reach, zeros included
            per_pod = per_pod.reindex([pod for pod, _ in candidates], fill_value=0)
            node_of = pd.Series([node for _, node in candidates], index=per_pod.index)
            node_counts = per_pod.groupby(node_of, sort=False).sum().to_numpy()
        else:
            node_counts = measured[reached_pod(measured)]["pod_node"].value_counts(
                sort=False).to_numpy()
        pod_counts = per_pod.to_numpy()
        for prefix, counts in (("pod_share", pod_counts), ("node_share", node_counts)):
            for name, value in share_stats(counts).items():
                rows[-1][f"{prefix}_{name}"] = value
    return pd.DataFrame(rows)


# The range a metric can take. A t-interval knows nothing of it (Jain's index of nearly
# even shares gave ci_high 1.0000069), so interval ends are clipped to it: the true mean
# lies inside the range, and the clipped interval covers it whenever the raw one does.
_FRACTIONS = ("cross_node_fraction", "source_ip_intact_fraction", "client_stickiness",
              "pod_share_jain", "node_share_jain", "pod_share_gini", "node_share_gini",
              "pod_utilisation_mean", "pod_utilisation_max")


def metric_bounds(metric: str) -> tuple[float, float]:
    """(lowest, highest) value ``metric`` can take; (-inf, inf) for differences."""
    if metric in _FRACTIONS:
        return 0.0, 1.0
    if metric.endswith("_max_over_mean"):
        return 1.0, math.inf
    if metric.startswith(("latency_", "throughput", "queue_wait", "requests_", "failed_")) \
            or metric.endswith("_cv"):
        return 0.0, math.inf
    return -math.inf, math.inf


def confidence_interval(values: np.ndarray, metric: str = "") -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval over replications, kept inside the
    metric's range (:func:`metric_bounds`); NaN ends with fewer than two values."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    low, high = metric_bounds(metric)
    return mean, max(mean - half, low), min(mean + half, high)


PerReplication = dict[str, pd.DataFrame]  # scope -> its statistics, one row a replication


def replication_statistics(requests: pd.DataFrame, windows: dict[int, float],
                           candidates: dict[str, Candidates] | None = None) -> PerReplication:
    """Each scope's per-replication statistics, the values the confidence intervals are
    made of. Computed for one replication where it ran (a pool worker), they are
    stacked and passed to :func:`summarise` instead of being recomputed there."""
    candidates = candidates or {}
    out = {"all": _per_replication(requests, windows, candidates.get("all"))}
    populations = requests["population"].cat.categories
    if len(populations) > 1:
        for population in populations:
            part = requests[(requests["population"] == population).to_numpy()]
            scope = f"population:{population}"
            out[scope] = _per_replication(part, windows, candidates.get(scope))
    return out


def summarise(
    requests: pd.DataFrame, pods: pd.DataFrame, windows: dict[int, float],
    candidates: dict[str, Candidates] | None = None,
    per_replication: PerReplication | None = None,
) -> pd.DataFrame:
    """Tidy table: scope, metric, value, ci_low, ci_high (CIs need replications >= 2).

    ``scope`` is ``all``, or ``population:<name>`` for per-population rows (when there is
    more than one population).

    ``windows`` maps each replication to its measured time span (end - warm-up);
    ``candidates`` maps a scope to the pods its traffic could reach (share statistics
    count those, with zeros, and no others). ``per_replication``, when given, holds
    :func:`replication_statistics` already computed (``windows`` and ``candidates`` are
    then not used again).
    """
    if per_replication is None:
        per_replication = replication_statistics(requests, windows, candidates)
    rows: list[dict[str, object]] = []

    def add(scope: str, metric: str, value: float, lo: float = math.nan,
            hi: float = math.nan) -> None:
        rows.append({"scope": scope, "metric": metric, "value": value, "ci_low": lo,
                     "ci_high": hi})

    outcome = requests["outcome"].value_counts()
    add("all", "requests_generated", float(len(requests)))
    for name in ("completed", "failed", "in_flight"):
        add("all", f"requests_{name}", float(outcome.get(name, 0)))
    _measured_rows("all", requests, add, per_replication["all"])
    util = pods.groupby("pod", observed=True)["utilisation"].mean().dropna()
    add("all", "pod_utilisation_mean", float(util.mean()) if len(util) else math.nan)
    add("all", "pod_utilisation_max", float(util.max()) if len(util) else math.nan)
    add("all", "replications", float(requests["replication"].nunique()))
    populations = requests["population"].cat.categories
    if len(populations) > 1:
        for population in populations:
            part = requests[(requests["population"] == population).to_numpy()]
            scope = f"population:{population}"
            _measured_rows(scope, part, add, per_replication[scope])
    return pd.DataFrame(rows)


def _measured_rows(scope: str, requests: pd.DataFrame, add: Callable[..., None],
                   per_rep: pd.DataFrame) -> None:
    """Rows about the requests sent after the warm-up: counts, failures, statistics."""
    measured = requests[~requests["warmup"].to_numpy()]
    add(scope, "requests_measured", float(len(measured)))
    failed = measured[measured["outcome"] == "failed"]
    for reason, count in failed["reason"].value_counts().items():
        if count:
            add(scope, f"failed_{reason}", float(count))
    for column in per_rep.columns.drop("replication"):
        add(scope, column, *confidence_interval(per_rep[column].to_numpy(dtype=float), column))


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def format_summary(summary: pd.DataFrame, pods: pd.DataFrame, nodes: pd.DataFrame) -> str:
    """The readable block ``npsim run`` prints."""
    s = summary[summary["scope"] == "all"].set_index("metric")

    def val(metric: str) -> float:
        return float(s["value"].get(metric, math.nan))

    def dur(metric: str) -> str:
        v, lo, hi = (float(s.loc[metric, c]) for c in ("value", "ci_low", "ci_high"))
        text = format_duration(v, 4)
        if not math.isnan(lo):
            text += f" (95% CI {format_duration(lo, 4)}..{format_duration(hi, 4)})"
        return text

    gen = int(val("requests_generated"))
    reps = int(val("replications"))
    over = f" (all {reps} replications)" if reps > 1 else ""
    lines = [
        f"requests   {gen} generated = {int(val('requests_completed'))} completed"
        f" + {int(val('requests_failed'))} failed + {int(val('requests_in_flight'))} in flight"
        f" at the end{over}",
        f"measured   {int(val('requests_measured'))} after warm-up{over}; "
        f"throughput {val('throughput'):.1f}/s" + (" (mean of replications)" if reps > 1 else ""),
        f"latency    mean {dur('latency_mean')}  p50 {dur('latency_p50')}",
        f"           p95 {dur('latency_p95')}  p99 {dur('latency_p99')}",
        f"cross-node {_pct(val('cross_node_fraction'))} of served requests took a node-to-node "
        "hop",
    ]
    fails = [(m[len("failed_"):], int(v)) for m, v in s["value"].items()
             if str(m).startswith("failed_")]
    lines.append("failures   " + (", ".join(f"{r}: {n}" for r, n in fails) if fails else "none")
                 + (" (after warm-up)" if fails else ""))
    lines.append(
        f"spread     pod share max/mean {val('pod_share_max_over_mean'):.2f}, "
        f"CV {val('pod_share_cv'):.3f}, Jain {val('pod_share_jain'):.3f}, "
        f"Gini {val('pod_share_gini'):.3f}")
    lines.append(
        f"source IP  {_pct(val('source_ip_intact_fraction'))} of served requests reached the "
        f"pod with the client's address; client stickiness {_pct(val('client_stickiness'))}")
    scoped = summary[summary["scope"] != "all"]
    for scope, part in scoped.groupby("scope", sort=False):
        v = part.set_index("metric")["value"]
        lines.append(
            f"  {scope[len('population:'):]:<22} {v.get('throughput', math.nan):8.1f}/s  "
            f"p50 {format_duration(v.get('latency_p50', math.nan), 4)}  "
            f"p99 {format_duration(v.get('latency_p99', math.nan), 4)}  "
            f"cross-node {v.get('cross_node_fraction', math.nan):.1%}  "
            f"IP kept {v.get('source_ip_intact_fraction', math.nan):.1%}"
            + "".join(f"  {m[len('failed_'):]}: {int(x)}" for m, x in v.items()
                      if str(m).startswith("failed_")))
    by_pod = pods.groupby(["pod", "node"], sort=False, observed=True)[
        ["share", "utilisation"]].mean()
    lines.append("pods       share   utilisation")
    for (pod, node), row in by_pod.iterrows():
        lines.append(f"  {pod:<22} {_pct(row['share']):>6}  {_pct(row['utilisation']):>6}   "
                     f"on {node}")
    by_node = nodes.groupby("node", sort=False, observed=True)[
        ["share", "cross_node_fraction"]].mean()
    lines.append("nodes      served  cross-node share of received")
    for node, row in by_node.iterrows():
        lines.append(f"  {node:<22} {_pct(row['share']):>6}  "
                     f"{_pct(row['cross_node_fraction']):>6}")
    return "\n".join(lines)
