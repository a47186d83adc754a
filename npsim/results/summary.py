"""Summary statistics of a run, with 95% confidence intervals across replications.

``latency_*`` statistics use completed requests that started after the warm-up: what a
served request cost, blind to the ones that failed. ``error_ratio`` (failed / (completed +
failed)) and ``user_latency_*`` (every measured request that ended, a failed one counting
the time until its client got the error or gave up; one held with no answer at the end
at its age, npsim/results/unanswered.py) say what users saw. With R >= 2
replications each statistic is computed per replication and the interval is
mean +- t(0.975, R-1) * sd / sqrt(R): replications are independent, requests within one
run are not.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from npsim.results.callframe import service_scopes
from npsim.results.frames import (
    BLOCK,
    by_names,
    category_code,
    codes,
    count_codes,
    first_seen_codes,
    reached_pod,
)
from npsim.results.headline import SHARE as _SHARE
from npsim.results.masked import Masked
from npsim.results.printout import TABLE_ROWS as TABLE_ROWS  # re-exported: the report's
from npsim.results.printout import extremes as extremes  # tables and older callers use
from npsim.results.printout import format_summary as format_summary  # these names here
from npsim.results.skew import share_stats, source_ip_intact, stickiness
from npsim.results.student import mean_and_interval
from npsim.results.text import wrap
from npsim.results.unanswered import unanswered, with_unanswered
from npsim.scenario.schema import SloSpec
from npsim.units import format_duration

Candidates = list[tuple[str, str]]  # (pod, node) a scope's traffic could reach


def replication_rows(requests: pd.DataFrame, windows: dict[int, float]
                     ) -> dict[int, pd.DataFrame]:
    """Each replication's rows. Replications are stacked one after another, so each is
    a slice of the frame (a view, no copy); an unordered frame is split by mask."""
    reps = requests["replication"].to_numpy()
    if len(windows) == 1:  # one replication: the frame itself (a slice still copied 8 MB)
        (rep,) = windows
        if bool((reps == rep).all()):
            return {rep: requests}
    if len(reps) < 2 or bool((reps[1:] >= reps[:-1]).all()):
        bounds = {rep: (np.searchsorted(reps, rep, side="left"),
                        np.searchsorted(reps, rep, side="right")) for rep in windows}
        return {rep: requests.iloc[lo:hi] for rep, (lo, hi) in bounds.items()}
    return {rep: requests[reps == rep] for rep in windows}


def _per_replication(requests: pd.DataFrame, windows: dict[int, float],
                     candidates: Candidates | None = None,
                     scope: np.ndarray | None = None) -> pd.DataFrame:
    """One row of statistics per replication, over the rows ``scope`` selects (a boolean
    mask, default all): masks and the few columns each statistic needs, never a copy
    of the frame."""
    rows = []
    parts = replication_rows(requests, windows)
    offsets = {rep: 0 for rep in windows}
    if scope is not None:  # the scope's mask, cut like the frame
        start = 0
        for rep, frame in parts.items():
            offsets[rep] = start
            start += len(frame)
    for rep in sorted(windows):  # every replication gets a row, even one with no requests
        frame = parts[rep]
        window = windows[int(rep)]
        measured = ~frame["warmup"].to_numpy(dtype=bool)
        if scope is not None:
            measured &= _cut(scope, requests, frame, offsets[rep])
        outcome = codes(frame["outcome"])
        done = measured & (outcome == category_code(frame["outcome"], "completed"))
        failed = measured & (outcome == category_code(frame["outcome"], "failed"))
        in_flight = measured & (outcome == category_code(frame["outcome"], "in_flight"))
        # the completed rows' figures, read in place (a copy was 8 bytes a row)
        lat = Masked(frame["latency"].to_numpy(), done)
        n_done = lat.n
        row = {
            "replication": rep,
            "throughput": n_done / window if window > 0 else math.nan,
            "latency_mean": lat.mean(),
        }
        row.update({name: q for name, q in zip(
            ("latency_p50", "latency_p95", "latency_p99"), lat.quantiles([0.50, 0.95, 0.99]),
            strict=True)})
        row["queue_wait_mean"] = lat.over(frame["queue_wait"].to_numpy()).nan_mean()
        _user_view(row, frame, done, failed, in_flight)
        crossed = np.count_nonzero(frame["cross_node"].to_numpy(dtype=bool) & done)
        row["cross_node_fraction"] = crossed / n_done if n_done else math.nan
        row["source_ip_intact_fraction"] = source_ip_intact(frame, done)
        row["client_stickiness"] = stickiness(frame, measured)
        rows.append(row)
        reached = measured & reached_pod(frame)
        pod = frame["pod"]
        pod_counts = count_codes(codes(pod), reached, len(pod.cat.categories))
        if candidates is not None:  # only the pods this traffic could reach, zeros included
            pod_counts, node_counts = _candidate_counts(pod_counts, pod.cat.categories,
                                                        candidates)
        else:
            node = frame["pod_node"]
            node_counts = count_codes(codes(node), reached,
                                      len(node.cat.categories))
        for prefix, counts in (("pod_share", pod_counts), ("node_share", node_counts)):
            for name, value in share_stats(counts).items():
                rows[-1][f"{prefix}_{name}"] = value
    return pd.DataFrame(rows)


def _user_view(row: dict[str, float], frame: pd.DataFrame, done: np.ndarray,
               failed: np.ndarray, in_flight: np.ndarray) -> None:
    """What users saw: the failed share of the measured requests that ended, and the
    latency of every one of them (a failed request's row ends when its client got the
    error or gave up: a connect timeout counts as its timeout). Requests still in flight
    at the end count only when they waited longer than any that ended (a hung pod held
    them, npsim/results/unanswered.py): as failed, and at their age so far."""
    n_failed = int(np.count_nonzero(failed))
    n_ended = n_failed + int(np.count_nonzero(done))
    failed |= done  # the caller's mask is spent: reused as "ended" (no second array)
    latency = frame["latency"].to_numpy()
    stuck, ages = unanswered(frame, in_flight, latency, failed)
    row["requests_unanswered"] = float(len(stuck))
    n_failed += len(stuck)
    n_ended += len(stuck)
    row["error_ratio"] = n_failed / n_ended if n_ended else math.nan
    if n_failed == 0:  # the same rows as the completed ones: no second pass
        for q in ("p50", "p95", "p99"):
            row[f"user_latency_{q}"] = row[f"latency_{q}"]
        return
    user = (with_unanswered(latency, failed, stuck, ages) if len(stuck)
            else Masked(latency, failed))
    row.update({name: q for name, q in zip(
        ("user_latency_p50", "user_latency_p95", "user_latency_p99"),
        user.quantiles([0.50, 0.95, 0.99]), strict=True)})


def _candidate_counts(counts: np.ndarray, pods: pd.Index, candidates: Candidates
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Requests per candidate pod (in the candidates' order, zeros included) and per
    node (nodes in order of first appearance). Plain lookups: a pandas groupby over
    10,000 node names held 4 MB of string hash tables after it was done."""
    per_pod = by_names(counts, pods, [name for name, _ in candidates])
    node_of, n_nodes = first_seen_codes(node for _, node in candidates)
    per_node = np.zeros(n_nodes, dtype=np.int64)
    np.add.at(per_node, node_of, per_pod)
    return per_pod, per_node


def _cut(scope: np.ndarray, requests: pd.DataFrame, part: pd.DataFrame,
         offset: int) -> np.ndarray:
    """The part of a mask over ``requests`` that covers ``part`` (one replication)."""
    if len(part) == 0 or requests.index.equals(pd.RangeIndex(len(requests))) and \
            part.index.equals(pd.RangeIndex(offset, offset + len(part))):
        return scope[offset:offset + len(part)]
    return scope[requests.index.get_indexer(part.index)]


def population_scopes(requests: pd.DataFrame) -> dict[str, np.ndarray]:
    """With several populations, each one's rows as a boolean mask (no copies)."""
    population = requests["population"]
    names = population.cat.categories
    if len(names) < 2:
        return {}
    population_codes = codes(population)
    return {f"population:{name}": population_codes == i for i, name in enumerate(names)}


# The range a metric can take. A t-interval knows nothing of it (Jain's index of nearly
# even shares gave ci_high 1.0000069), so interval ends are clipped to it: the true mean
# lies inside the range, and the clipped interval covers it whenever the raw one does.
_FRACTIONS = ("cross_node_fraction", "source_ip_intact_fraction", "client_stickiness",
              "pod_share_jain", "node_share_jain", "pod_share_gini", "node_share_gini",
              "pod_utilisation_mean", "pod_utilisation_max", "error_ratio")


def metric_bounds(metric: str) -> tuple[float, float]:
    """(lowest, highest) value ``metric`` can take; (-inf, inf) for differences."""
    if metric in _FRACTIONS or metric.startswith(_SHARE):
        return 0.0, 1.0
    if metric.endswith("_max_over_mean"):
        return 1.0, math.inf
    if metric.startswith(("latency_", "user_latency_", "throughput", "queue_wait",
                          "requests_", "failed_", "retries", "time_to_", "alerts_",
                          "error_budget", "fault_start")) \
            or metric.endswith("_cv"):
        return 0.0, math.inf
    return -math.inf, math.inf


def confidence_interval(values: np.ndarray, metric: str = "") -> tuple[float, float, float]:
    """(mean, low, high): the 95% Student-t interval over replications, kept inside the
    metric's range (:func:`metric_bounds`); NaN ends with fewer than two values."""
    values = np.asarray(values, dtype=float)
    mean, low, high = mean_and_interval(values[~np.isnan(values)])
    floor, ceiling = metric_bounds(metric)
    return mean, max(low, floor), min(high, ceiling)


PerReplication = dict[str, pd.DataFrame]  # scope -> its statistics, one row a replication


def replication_statistics(requests: pd.DataFrame, windows: dict[int, float],
                           candidates: dict[str, Candidates] | None = None,
                           entry: np.ndarray | None = None,
                           services: dict[str, str] | None = None) -> PerReplication:
    """Each scope's per-replication statistics, the values the confidence intervals are
    made of. Computed for one replication where it ran (a pool worker), they are
    stacked and passed to :func:`summarise` instead of being recomputed there.
    ``services``: see :func:`service_scopes` (None: no ``service:`` scopes)."""
    candidates = candidates or {}
    out = {"all": _per_replication(requests, windows, candidates.get("all"), entry)}
    for scope, rows in {**population_scopes(requests),
                        **service_scopes(requests, services)}.items():
        out[scope] = _per_replication(requests, windows, candidates.get(scope), rows)
    return out


def summarise(
    requests: pd.DataFrame, pods: pd.DataFrame, windows: dict[int, float],
    candidates: dict[str, Candidates] | None = None,
    per_replication: PerReplication | None = None,
    entry: np.ndarray | None = None,
    services: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Tidy table: scope, metric, value, ci_low, ci_high (CIs need replications >= 2).

    ``scope`` is ``all``, or ``population:<name>`` for per-population rows (when there is
    more than one population).

    ``windows`` maps each replication to its measured time span (end - warm-up);
    ``candidates`` maps a scope to the pods its traffic could reach (share statistics
    count those, with zeros, and no others). ``per_replication``, when given, holds
    :func:`replication_statistics` already computed (``windows`` and ``candidates`` are
    then not used again). ``entry``: the rows the ``all`` scope covers when pods call
    Services (the clients' own requests; each call is a row of its own population,
    npsim/results/callframe.py ``entry_rows``); None: every row. ``services``
    (population -> Service, when pods call Services) adds a ``service:<name>`` scope per
    Service: every request it received, from clients and callers alike.
    """
    if per_replication is None:
        per_replication = replication_statistics(requests, windows, candidates, entry,
                                                 services)
    rows: list[dict[str, object]] = []

    def add(scope: str, metric: str, value: float, lo: float = math.nan,
            hi: float = math.nan) -> None:
        rows.append({"scope": scope, "metric": metric, "value": value, "ci_low": lo,
                     "ci_high": hi})

    outcome = requests["outcome"]
    counted = count_codes(codes(outcome), entry, len(outcome.cat.categories))
    add("all", "requests_generated", float(len(requests) if entry is None else entry.sum()))
    for name in ("completed", "failed", "in_flight"):
        code = category_code(outcome, name)
        add("all", f"requests_{name}", float(counted[code] if code >= 0 else 0))
    if "attempt" in requests and (requests["attempt"] > 0).any():
        _retry_rows(requests, add)
    _measured_rows("all", requests, entry, add, per_replication["all"])
    # per pod name across replications, grouped by integer ids: a groupby over 10,000
    # string labels held megabytes of hash tables (the same means: the same group sums)
    pod_ids, _ = first_seen_codes(pods["pod"])
    util = pods["utilisation"].groupby(pod_ids).mean().dropna()
    add("all", "pod_utilisation_mean", float(util.mean()) if len(util) else math.nan)
    add("all", "pod_utilisation_max", float(util.max()) if len(util) else math.nan)
    add("all", "replications", float(len(replications_in(requests))))
    for scope, scope_rows in {**population_scopes(requests),
                              **service_scopes(requests, services)}.items():
        _measured_rows(scope, requests, scope_rows, add, per_replication[scope])
    return pd.DataFrame(rows)


def _retry_rows(requests: pd.DataFrame, add: Callable[..., None]) -> None:
    """With client retries a request is one or more attempts (rows): how many were
    retries, and how many requests the user finally saw fail (failed, not retried)."""
    add("all", "retries", float((requests["attempt"].to_numpy() > 0).sum()))
    final = 0
    failed = category_code(requests["outcome"], "failed")
    reps = replications_in(requests)
    for part in replication_rows(requests, dict.fromkeys(reps.tolist(), 0.0)).values():
        repeated = part["retry_of"].to_numpy()[part["attempt"].to_numpy() > 0]
        seen_failing = codes(part["outcome"]) == failed
        if len(repeated):
            seen_failing &= ~np.isin(part["request"].to_numpy(), repeated, kind="table")
        final += int(seen_failing.sum())
    add("all", "requests_failed_after_retries", float(final))


def replications_in(requests: pd.DataFrame) -> np.ndarray:
    """The replication numbers present, sorted (found a block of rows at a time)."""
    column = requests["replication"].to_numpy()
    parts = [np.unique(column[lo:lo + BLOCK]) for lo in range(0, len(column), BLOCK)]
    return np.unique(np.concatenate(parts)) if parts else column[:0]


def _measured_rows(scope: str, requests: pd.DataFrame, rows: np.ndarray | None,
                   add: Callable[..., None], per_rep: pd.DataFrame) -> None:
    """Rows about the requests sent after the warm-up (of the rows ``rows`` selects):
    counts, failures, statistics."""
    measured = ~requests["warmup"].to_numpy(dtype=bool)
    if rows is not None:
        measured &= rows
    add(scope, "requests_measured", float(measured.sum()))
    outcome, reason = requests["outcome"], requests["reason"]
    unfinished = int(np.count_nonzero(measured & (codes(outcome)
                                                  == category_code(outcome, "in_flight"))))
    # no answer by the end: neither served nor failed (error_ratio skips them); written
    # always, so that replications and sweep variants all carry the row
    add(scope, "requests_measured_in_flight", float(unfinished))
    measured &= codes(outcome) == category_code(outcome, "failed")
    failed = pd.Series(pd.Categorical.from_codes(codes(reason)[measured],
                                                 dtype=reason.dtype))
    counts = failed.value_counts()
    counts = counts[counts > 0]
    for reason_name, count in counts.items():
        add(scope, f"failed_{reason_name}", float(count))
    for reason_name, count in counts.items():  # pooled over replications, no interval
        add(scope, f"{_SHARE}{reason_name}", float(count) / float(counts.sum()))
    # written only when some were (a pooled count, like failed_<reason>)
    stuck = float(per_rep["requests_unanswered"].sum()) \
        if "requests_unanswered" in per_rep else 0.0
    if stuck:
        add(scope, "requests_unanswered", stuck)
    for column in per_rep.columns.drop(["replication", "requests_unanswered"],
                                       errors="ignore"):
        add(scope, column, *confidence_interval(per_rep[column].to_numpy(dtype=float), column))


# --- incidents: detection, recovery, error budget ---------------------------------------

# pod_pending follows a fault or the cluster's size (pods placed nowhere at the start)
FOLLOW_UPS = ("lb_mark_down", "lb_mark_up", "alert_firing", "alert_resolved", "pod_pending")
# Records written at the end of a run (totals), not transitions: never a fault.
END_OF_RUN_RECORDS = ("tls_handshakes",)
RECOVERED_BELOW = 0.001  # failure ratio under which the service counts as recovered


def incident_metrics(times: list[float], kinds: list[str], series: pd.DataFrame,
                     slo: SloSpec | None, end_time: float, warmup: float,
                     error_ratio: float = math.nan, unanswered: float = 0.0
                     ) -> dict[str, float]:
    """One replication's incident figures from its events and time series.

    ``fault_start``: the first event that is not a balancer or alert reaction (the
    injected fault); ``time_to_detect``: from it to the first alert firing;
    ``time_to_recover``: from it to the end of the last time bucket whose failure ratio
    (failed / ended) was at least 0.1%, or in which nothing ended while requests were
    outstanding (NaN if the run ended still failing or stalled, or if nothing ended
    after the fault: no recovery is claimed that was not seen; NaN too when requests were
    held with no answer to the end, ``unanswered``: their time buckets show neither a
    failure nor a stall while other pods answer). With an SLO and the
    run's ``error_ratio`` (the summary's, over measured requests):
    ``error_budget_burn_rate`` (error ratio / (1 - availability)) and
    ``error_budget_consumed`` (the share of the SLO window's budget this run's
    failures ate, were the run's traffic spread over the window).
    """
    out: dict[str, float] = {}
    faults = [t for t, k in zip(times, kinds, strict=True)
              if k not in FOLLOW_UPS and k not in END_OF_RUN_RECORDS and t <= end_time]
    if faults:
        start = min(faults)
        out["fault_start"] = start
        fired = [t for t, k in zip(times, kinds, strict=True)
                 if k == "alert_firing" and t >= start]
        out["time_to_detect"] = min(fired) - start if fired else math.nan
        out["alerts_fired"] = float(len(fired))
        out["time_to_recover"] = (math.nan if unanswered > 0
                                  else _time_to_recover(series, start, end_time))
    if slo is not None:
        ratio = error_ratio
        out["error_budget_burn_rate"] = ratio / (1 - slo.availability)
        out["error_budget_consumed"] = (out["error_budget_burn_rate"] * (end_time - warmup)
                                        / slo.window)
    return out


def _time_to_recover(series: pd.DataFrame, start: float, end_time: float) -> float:
    """From ``start`` to the end of the last bad bucket: one whose failure ratio was at
    least ``RECOVERED_BELOW``, or in which nothing ended though requests were outstanding
    (every pod hung: no failure is counted, yet nobody is served). NaN when the last
    bucket is bad or nothing ended after ``start`` at all."""
    failed = series["failed"].to_numpy(dtype=float)
    ended = series["completed"].to_numpy(dtype=float) + failed
    ratio = np.divide(failed, ended, out=np.zeros(len(series)), where=ended > 0)
    # requests sent before a bucket and not ended before it (in flight at its start)
    outstanding = np.cumsum(series["sent"].to_numpy(dtype=float) - ended) + ended
    outstanding -= series["sent"].to_numpy(dtype=float)
    stalled = (ended == 0) & (outstanding > 0)
    bucket_end = series["time"].to_numpy() + (
        series["time"].iloc[1] - series["time"].iloc[0] if len(series) > 1 else end_time)
    after = bucket_end > start
    if not (ended[after] > 0).any():
        return math.nan  # nothing ended after the fault: no recovery was seen
    bad = np.flatnonzero(((ratio >= RECOVERED_BELOW) | stalled) & after)
    if len(bad) == 0:
        return 0.0  # the fault never showed in the traffic
    if bad[-1] == len(series) - 1:
        return math.nan  # still failing (or stalled) when the run ended
    return float(min(bucket_end[bad[-1]], end_time)) - start


def add_incident_rows(summary: pd.DataFrame, per_replication: list[dict[str, float]]
                      ) -> pd.DataFrame:
    """Append the incident metrics (scope ``all``, CI over replications)."""
    names = [m for m in INCIDENT_METRICS if any(m in rep for rep in per_replication)]
    rows = []
    for name in names:
        values = np.array([rep.get(name, math.nan) for rep in per_replication], dtype=float)
        value, lo, hi = confidence_interval(values, name)
        rows.append({"scope": "all", "metric": name, "value": value, "ci_low": lo,
                     "ci_high": hi})
    return pd.concat([summary, pd.DataFrame(rows)], ignore_index=True) if rows else summary


INCIDENT_METRICS = ("fault_start", "time_to_detect", "alerts_fired", "time_to_recover",
                    "error_budget_burn_rate", "error_budget_consumed")


def format_incidents(events: pd.DataFrame, summary: pd.DataFrame, limit: int = 25,
                     alerting: bool = True) -> str:
    """The CLI's "incidents" block: the first replication's timeline and the figures.
    ``alerting``: the scenario has alert rules; without any nothing can detect a fault,
    and the block says so rather than "detected never"."""
    first = events[events["replication"] == events["replication"].min()]
    lines = [f"incidents  {len(first)} transitions"
             + (" (first replication)" if events["replication"].nunique() > 1 else "")]
    for row in first.head(limit).itertuples(index=False):  # a long detail: continued
        lines += wrap(f"  {float(row.time):9.2f}s  {row.kind:<18} {row.subject:<24} ",
                      str(row.detail).split(" "), sep=" ")
    if len(first) > limit:
        lines.append(f"  ... {len(first) - limit} more in events.parquet")
    s = summary[summary["scope"] == "all"].set_index("metric")["value"]
    figures = []
    for metric, label in (("time_to_detect", "detected after"),
                          ("time_to_recover", "recovered after")):
        if metric == "time_to_detect" and metric in s.index and not alerting:
            figures.append("no alert rule (monitoring.alerts) to detect it")
        elif metric in s.index:
            v = float(s[metric])
            figures.append(f"{label} {format_duration(v, 4)}" if not math.isnan(v)
                           else f"{label.split()[0]} never" if metric == "time_to_detect"
                           else "not recovered by the end")
    if "error_budget_burn_rate" in s.index:
        figures.append(f"error budget burn rate {float(s['error_budget_burn_rate']):.2f}x, "
                       f"{float(s['error_budget_consumed']):.2%} of the SLO window's budget")
    if figures:
        lines += wrap("  ", "; ".join(figures).split(" "), sep=" ")
    return "\n".join(lines)
