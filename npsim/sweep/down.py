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
