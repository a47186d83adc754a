"""Plans that hold when things break: every variant once per node (zone) down.

``--each-node-down`` (``--each-zone-down``) runs a scenario once per node (zone), with
that node (every node of that zone) down before the measurement starts
(``cluster.nodes[].down``: the steady degraded state between a crash's detection and its
pods' eviction, see npsim/scenario/faultplan.py ``FaultPlan``), and reports the worst
case: per metric, the case on its wrong side, named. The cases of one value share the
seed and replication indexes (common random numbers), so they differ only by the node
that is down.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from npsim.results.text import text_rows
from npsim.scenario.scenario import Scenario

EACH = ("node", "zone")


class DownError(ValueError):
    """A scenario whose nodes cannot be taken down one case at a time."""


@dataclass(frozen=True)
class DownCase:
    """One case: ``name`` (the node or zone) and the nodes (indexes, names) down."""

    name: str
    nodes: tuple[int, ...]
    node_names: tuple[str, ...]

    def changes(self) -> dict[str, Any]:
        """The key paths that take this case's nodes down (``--set`` style)."""
        return {f"cluster.nodes[{i}].down": True for i in self.nodes}

    def apply(self, scenario: Scenario) -> Scenario:
        return scenario.with_changes({"variants": None, **self.changes()})


def down_cases(scenario: Scenario, each: str) -> list[DownCase]:
    """One case per node (``each="node"``) or zone (``"zone"``), in the scenario's
    order. Nodes the scenario already has down stay down in every case and are no case
    of their own."""
    if each not in EACH:
        raise DownError(f"each must be one of {', '.join(EACH)}, not {each!r}")
    nodes = scenario.spec.cluster.nodes
    up = [(i, n) for i, n in enumerate(nodes) if not n.down]
    if each == "node":
        cases = [DownCase(n.name, (i,), (n.name,)) for i, n in up]
    else:
        zones: dict[str, list[tuple[int, str]]] = {}
        for i, n in up:
            zones.setdefault(n.zone, []).append((i, n.name))
        if len(zones) < 2:
            raise DownError(f"--each-zone-down needs nodes in two zones or more; this "
                            f"scenario's are all in {next(iter(zones), 'no zone')}")
        cases = [DownCase(zone, tuple(i for i, _ in members),
                          tuple(name for _, name in members))
                 for zone, members in zones.items()]
    if len(cases) < 2 and each == "node":
        raise DownError("--each-node-down needs two nodes or more that are up (with one, "
                        "nothing would be left to serve)")
    return cases


#: metrics whose larger value is the better one; the others (latency, failures, skew,
#: utilisation, incident times) are worse when larger
HIGHER_IS_BETTER = ("throughput", "requests_completed", "source_ip_intact_fraction",
                    "client_stickiness", "pod_share_jain", "node_share_jain")
#: counts and settings that are no better or worse (the same in every case, or not a
#: quality)
NEUTRAL = ("requests_generated", "requests_measured", "requests_in_flight", "replications",
           "fault_start", "alerts_fired")


def worse_when_higher(metric: str) -> bool | None:
    """Whether a larger value of ``metric`` is worse (None: neither)."""
    if metric in NEUTRAL:
        return None
    return metric not in HIGHER_IS_BETTER


def worst_case(summaries: Mapping[str, pd.DataFrame],
               metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Per metric, the case whose value is on the wrong side: ``metric, value, ci_low,
    ci_high, case`` (and ``best``, ``best_case`` beside it). ``summaries``: case name ->
    a run's summary (``scope``, ``metric``, ``value``, ``ci_low``, ``ci_high``); the
    ``all`` scope is read. A NaN is the worst (a figure the case could not measure)."""
    rows: dict[str, list[tuple[str, float, float, float]]] = {}
    for case, summary in summaries.items():
        part = summary[summary["scope"] == "all"] if "scope" in summary else summary
        for r in part.itertuples(index=False):
            rows.setdefault(str(r.metric), []).append(
                (case, float(r.value), float(r.ci_low), float(r.ci_high)))
    out = []
    for metric, values in rows.items():
        if metrics is not None and metric not in metrics:
            continue
        higher = worse_when_higher(metric)
        if higher is None:
            continue

        def badness(item: tuple[str, float, float, float], up: bool = higher) -> float:
            value = item[1]
            return math.inf if math.isnan(value) else (value if up else -value)

        ordered = sorted(values, key=badness)  # stable: the first case wins a tie
        worst = max(ordered, key=badness)
        best = ordered[0]
        out.append({"metric": metric, "value": worst[1], "ci_low": worst[2],
                    "ci_high": worst[3], "case": worst[0], "best": best[1],
                    "best_case": best[0]})
    return pd.DataFrame(out, columns=["metric", "value", "ci_low", "ci_high", "case", "best",
                                      "best_case"])


#: the figures ``DownRuns.report`` shows, when a run writes them
REPORT_METRICS = ("error_ratio", "throughput", "latency_p50", "latency_p99",
                  "user_latency_p99", "queue_wait_mean", "pod_utilisation_max",
                  "cross_node_fraction", "pod_share_max_over_mean")


def show(metric: str, value: float) -> str:
    """A value as the summary writes it: durations with units, shares in %, rates /s."""
    from npsim.units import format_duration

    if value != value:
        return "-"
    if metric.startswith(("latency", "user_latency", "queue_wait", "first_packet", "time_to")):
        return format_duration(value, 4)
    if metric == "error_ratio" or metric.endswith(("fraction", "utilisation_max",
                                                   "utilisation_mean")):
        return f"{value:.3%}" if 0 < abs(value) < 0.001 else f"{value:.2%}"
    if metric == "throughput":
        return f"{value:.1f}/s"
    return f"{value:.4g}"


@dataclass
class DownRuns:
    """A scenario run once per node (zone) down: ``results`` by case (the node or
    zone), and per metric the worst case (``worst``)."""

    each: str
    results: dict[str, Any]  # case -> npsim Result

    @property
    def worst(self) -> pd.DataFrame:
        """``worst_case`` over the cases' summaries (scope ``all``)."""
        return worst_case({case: r.summary for case, r in self.results.items()})

    def report(self) -> str:
        """Each case's key figures, then the worst case per metric (under 100 columns)."""
        shown = ("error_ratio", "throughput", "latency_p50", "latency_p99", "user_latency_p99")
        values = {case: r.summary[r.summary["scope"] == "all"].set_index("metric")["value"]
                  for case, r in self.results.items()}
        cols = [m for m in shown if any(m in v.index for v in values.values())]
        head = [f"{self.each} down", "measured", *cols]
        rows = [[_cut(case, 16), f"{values[case].get('requests_measured', 0):,.0f}",
                 *(show(m, float(values[case].get(m, math.nan))) for m in cols)]
                for case in self.results]
        lines = [f"each {self.each} down: {len(self.results)} cases, each run with it down "
                 "from the start (detected, not evicted)", *_columns([head, *rows]), "",
                 "worst case per metric (mean [95% CI] over replications)"]
        worst = self.worst.set_index("metric")
        table = [["metric", "worst", f"{self.each} down", "best", f"{self.each} down"]]
        for m in REPORT_METRICS:
            if m not in worst.index:
                continue
            r = worst.loc[m]
            ci = "" if r["ci_low"] != r["ci_low"] else (
                f" [{show(m, r['ci_low'])}, {show(m, r['ci_high'])}]")
            table.append([m, show(m, r["value"]) + ci, _cut(str(r["case"]), 16),
                          show(m, r["best"]), _cut(str(r["best_case"]), 16)])
        return "\n".join(lines + _columns(table))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _columns(rows: list[list[str]], left: int = 1) -> list[str]:
    """The first ``left`` columns left-aligned, the others right-aligned."""
    return text_rows(rows, "l" * left + "r" * (len(rows[0]) - left), indent="  ")


def run_each_down(scenario: Scenario, each: str = "node", **run_options: Any) -> DownRuns:
    """Run ``scenario`` once per node (``each="node"``) or zone down, with
    :func:`npsim.run`'s options; the cases share the seed (common random numbers)."""
    from npsim.api import run

    return DownRuns(each, {case.name: run(case.apply(scenario), **run_options)
                           for case in down_cases(scenario, each)})


def down_variants(variants: list[Any], baseline: str, each: str
                  ) -> tuple[list[Any], str, dict[str, dict[str, str]]]:
    """A sweep's variants, each once per node (zone) down: ``VARIANT,down=CASE``; the
    baseline's first case is the new baseline. Also ``groups``: variant -> case -> the
    name of its run variant."""
    import re

    from npsim.sweep.variants import Variant

    out: list[Any] = []
    groups: dict[str, dict[str, str]] = {}
    for variant in variants:
        groups[variant.name] = {}
        for case in down_cases(variant.scenario, each):
            name = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", f"{variant.name},down={case.name}")
            groups[variant.name][case.name] = name
            out.append(Variant(name, {**variant.changes, **case.changes()},
                               case.apply(variant.scenario)))
    return out, next(iter(groups[baseline].values())), groups


def worst_per_variant(summary: pd.DataFrame, groups: dict[str, dict[str, str]]
                      ) -> pd.DataFrame:
    """A sweep's worst case per variant and metric: ``variant`` and the columns of
    :func:`worst_case`, from its summary (``variant, metric, mean, ci_low, ci_high``)."""
    parts = []
    for variant, cases in groups.items():
        frames = {case: summary[summary["variant"] == name].rename(columns={"mean": "value"})
                  for case, name in cases.items()}
        worst = worst_case(frames)
        worst.insert(0, "variant", variant)
        parts.append(worst)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def worst_table(worst: pd.DataFrame, each: str, metrics: Sequence[str]) -> str:
    """The sweep's worst cases as text under 100 columns: per variant and metric."""
    rows = [["variant", "metric", "worst [95% CI]", f"{each} down"]]
    for r in worst.itertuples(index=False):
        if r.metric not in metrics:
            continue
        ci = "" if r.ci_low != r.ci_low else f" [{show(r.metric, r.ci_low)}, " \
            f"{show(r.metric, r.ci_high)}]"
        rows.append([_cut(str(r.variant), 24), r.metric, show(r.metric, r.value) + ci,
                     _cut(str(r.case), 16)])
    return "\n".join([f"Worst case with each {each} down (per variant and metric):",
                      *_columns(rows, left=2)])
