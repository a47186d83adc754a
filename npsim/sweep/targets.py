"""Targets and checks: ``latency_p99 < 50ms`` read, named and judged.

``npsim plan`` and ``npsim sweep`` take several ``--target``s, ``npsim run`` several
``--check``s; all must hold, as k6 thresholds do. A target is judged over replications
with a one-sided 95% Student-t bound (:func:`judge`); a run's check compares the
summary's value (the mean over replications), as a k6 threshold compares its aggregate.

Failures are part of every answer: ``error_ratio`` (failed / (completed + failed) over
the measured requests) and the ``failed_<reason>`` counts need no ``monitoring.slo``.
A setting that sheds load (a full queue, timeouts) lowers every latency figure of the
completed requests, so a latency target alone could be met by failing requests:
unless a failure target is given, a latency target brings the implied target
``error_ratio < 1%`` (:func:`with_guard`), printed with the others.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from npsim.results.student import mean_and_interval
from npsim.results.text import fit_rows, text_rows
from npsim.scenario.scenario import Scenario
from npsim.units import format_duration, parse_duration, parse_rate

# METRIC, an optional {service=NAME} or {population=NAME} (quotes allowed), OP, VALUE
_TARGET = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\{\s*([A-Za-z]+)\s*=\s*\"?([^\"{}]*?)\"?\s*\})?"
                     r"\s*(<=|>=|<|>)\s*(\S.*?)\s*$")
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class PlanError(ValueError):
    """A --target, --check or --vary that cannot be read."""


# The scope-``all`` metrics of every run (results/summary.py ``summarise``, and
# ``first_packet_*`` from sweep/store.py ``tidy_metrics``); tests/sweep/test_planner.py
# checks this list against a run's.
ALWAYS_METRICS = (
    "requests_generated", "requests_completed", "requests_failed", "requests_in_flight",
    "requests_measured", "throughput", "latency_mean", "latency_p50", "latency_p95",
    "latency_p99", "queue_wait_mean", "cross_node_fraction", "source_ip_intact_fraction",
    "client_stickiness",
    *(f"{who}_share_{stat}" for who in ("pod", "node")
      for stat in ("max_over_mean", "cv", "jain", "gini")),
    "pod_utilisation_mean", "pod_utilisation_max", "replications",
    "first_packet_p50", "first_packet_p99",
    "error_ratio", "user_latency_p50", "user_latency_p95", "user_latency_p99")
SLO_METRICS = ("error_budget_burn_rate", "error_budget_consumed")
#: the labels a target may scope its metric by: the summary's ``service:<name>`` rows
#: (what one Service received, from clients and calling pods alike: written when pods
#: call Services) and ``population:<name>`` rows (one client population's requests:
#: written when there are several)
SCOPE_LABELS = ("service", "population")
#: the figures each scope has (results/summary.py ``_measured_rows``), and failed_<reason>
SCOPED_METRICS = (
    "requests_measured", "throughput", "latency_mean", "latency_p50", "latency_p95",
    "latency_p99", "queue_wait_mean", "error_ratio", "user_latency_p50",
    "user_latency_p95", "user_latency_p99", "cross_node_fraction",
    "source_ip_intact_fraction", "client_stickiness",
    *(f"{who}_share_{stat}" for who in ("pod", "node")
      for stat in ("max_over_mean", "cv", "jain", "gini")))
#: the failed share of the measured requests: every run's summary has it (a summary
#: written before it did is read from its failure counts)
ERROR_RATIO = "error_ratio"
#: what a latency target implies when no failure target is given
GUARD_RATIO = 0.01


def _counted_metrics() -> dict[str, str | None]:
    """Metrics a run writes only when they count something: absent means 0 (the value
    None), or the value of another metric (``requests_failed_after_retries`` without
    retries is ``requests_failed``)."""
    from npsim.outcomes import REASONS

    out: dict[str, str | None] = {f"failed_{r}": None for r in REASONS.values() if r}
    out.update({f"failed_share_{r}": None for r in REASONS.values() if r})
    out["retries"] = None
    out["requests_measured_in_flight"] = None
    out["requests_unanswered"] = None
    out["requests_failed_after_retries"] = "requests_failed"
    return out


def scoped_key(metric: str, scope: str) -> str:
    """The name of ``metric`` in a summary scope other than ``all``, as runs record it
    for targets (sweep/store.py ``tidy_metrics``): ``latency_p99{service=cart}`` for the
    scope ``service:cart``, the label syntax of Prometheus and k6 thresholds."""
    label, _, name = scope.partition(":")
    return f"{metric}{{{label}={name}}}"


def split_key(key: str) -> tuple[str, str]:
    """The scope and metric of a recorded figure's name (:func:`scoped_key`'s inverse):
    ``("service:cart", "latency_p99")``, ``("all", "throughput")``."""
    metric, brace, labels = key.partition("{")
    if not brace or not labels.endswith("}") or "=" not in labels:
        return "all", key
    label, _, name = labels[:-1].partition("=")
    return f"{label}:{name}", metric


@dataclass(frozen=True)
class Target:
    metric: str
    op: str
    threshold: float
    text: str = ""
    implied: bool = False  # added by with_guard, not given by the user
    scope: str | None = None  # a summary scope (``service:cart``); None: ``all``

    @property
    def key(self) -> str:
        """The name of the judged figure in a run's recorded metrics."""
        return self.metric if self.scope is None else scoped_key(self.metric, self.scope)

    @property
    def below(self) -> bool:
        return self.op.startswith("<")

    def show(self, value: float) -> str:
        if value != value:
            return "-"
        if is_duration(self.metric):
            return format_duration(value, 4)
        if self.metric == ERROR_RATIO:
            return f"{value:.3%}" if 0 < abs(value) < 0.001 else f"{value:.2%}"
        if self.metric == "throughput":
            return f"{value:.4g} req/s"
        return f"{value:.4g}"

    def __str__(self) -> str:
        return self.text or f"{self.metric} {self.op} {self.show(self.threshold)}"

    def holds(self, value: float) -> bool:
        """Whether one value meets the target (NaN never does)."""
        return value == value and bool(OPS[self.op](value, self.threshold))

    def worst(self, values: Sequence[float]) -> int:
        """The index of the value furthest on the wrong side (NaN first)."""
        x = np.asarray(values, dtype=float)
        if np.isnan(x).any():
            return int(np.flatnonzero(np.isnan(x))[0])
        return int(np.argmax(x) if self.below else np.argmin(x))


def is_duration(metric: str) -> bool:
    return metric.startswith(("latency", "queue_wait", "first_packet", "time_to_",
                              "fault_start", "user_latency"))


def is_latency(metric: str) -> bool:
    """Time figures, which shedding load makes look better: the completed requests'
    lose the slow ones, and the users' view counts a full queue's quick refusal."""
    return metric.startswith(("latency", "user_latency", "queue_wait", "first_packet"))


def is_failure(metric: str) -> bool:
    return metric == ERROR_RATIO or metric.startswith(("failed_", "requests_failed",
                                                       "error_budget"))


def _incident_metrics() -> list[str]:
    """The fault figures a run writes (the SLO ones are listed apart)."""
    from npsim.results.summary import INCIDENT_METRICS

    return [m for m in INCIDENT_METRICS if m not in SLO_METRICS and m != ERROR_RATIO]


def known_metrics() -> list[str]:
    """Every scope-``all`` metric a run can write."""
    return list(dict.fromkeys([*ALWAYS_METRICS,
                               *_counted_metrics(), *_incident_metrics(), *SLO_METRICS]))


def unknown_metric(metric: str) -> str:
    """Why ``metric`` is refused: no run writes it; the closest names, and the list."""
    close = difflib.get_close_matches(metric, known_metrics(), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    incident = _incident_metrics()
    return (f"no metric {metric!r}; {hint}Metrics: {', '.join(ALWAYS_METRICS)}; "
            "failed_<reason> (e.g. failed_connect_timeout), failed_share_<reason>, retries; "
            f"with faults {', '.join(incident)}; with an SLO {', '.join(SLO_METRICS)}")


def check_metric(target: Target, scenario: Scenario, flag: str = "--target") -> None:
    """What the scenario must have for the target's metric (an SLO for the error
    budget's). Incident figures need no check: a run without a fault gives NaN, which
    never meets a target."""
    if target.scope is not None:
        _check_scope(target, scenario, flag)
    monitoring = scenario.spec.monitoring
    if target.metric in SLO_METRICS and (monitoring is None or monitoring.slo is None):
        raise PlanError(f"{flag} {target.text!r}: {target.metric} needs an SLO "
                        "(monitoring.slo.availability) in the scenario")


def _check_scope(target: Target, scenario: Scenario, flag: str) -> None:
    """A scoped target's Service or population must be one the run writes figures for."""
    label, _, name = (target.scope or "").partition(":")
    calls = scenario.makes_calls
    if label == "service":
        if not calls:
            raise PlanError(
                f"{flag} {target.text!r}: per-Service figures are written when pods call "
                "Services (a workload's calls:); without calls the clients' figures are "
                f"their Service's: write {target.metric} without {{service=...}}")
        if name not in scenario.services:
            raise PlanError(f"{flag} {target.text!r}: no Service {name!r} in the scenario "
                            f"(Services: {', '.join(sorted(scenario.services))})")
        return
    clients = [c.name for c in scenario.spec.clients]
    if name not in clients:
        raise PlanError(f"{flag} {target.text!r}: no client population {name!r} "
                        f"(populations: {', '.join(clients)})")
    if len(clients) < 2 and not calls:
        raise PlanError(f"{flag} {target.text!r}: with one client population its "
                        f"figures are the run's: write {target.metric} without "
                        "{population=...}")


def parse_target(text: str, flag: str = "--target") -> Target:
    """``latency_p99 < 50ms``, ``throughput >= 900/s``, ``error_ratio < 0.1%``; a
    figure of one Service or client population: ``latency_p99{service=cart} < 200ms``."""
    match = _TARGET.match(text)
    if match is None:
        raise PlanError(f"{flag} {text!r}: expected METRIC OP VALUE, e.g. "
                        "\"latency_p99 < 50ms\" or \"latency_p99{service=cart} < 200ms\" "
                        "(OP one of <, <=, >, >=)")
    metric, label, name, op, value = match.groups()
    if metric not in known_metrics():
        raise PlanError(f"{flag} {text!r}: {unknown_metric(metric)}")
    scope = None
    if label is not None:
        if label not in SCOPE_LABELS or not name:
            raise PlanError(f"{flag} {text!r}: a figure is scoped as {{service=NAME}} or "
                            "{population=NAME}")
        if metric not in SCOPED_METRICS and not metric.startswith("failed_"):
            raise PlanError(f"{flag} {text!r}: {metric} is a figure of the whole run; "
                            f"per {label}: {', '.join(SCOPED_METRICS)}, failed_<reason>")
        scope = f"{label}:{name}"
    try:
        if is_duration(metric):
            threshold = parse_duration(value)
        elif "/" in value:
            threshold = parse_rate(value)
        else:
            threshold = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError as exc:
        raise PlanError(f"{flag} {text!r}: {exc}") from None
    if not math.isfinite(threshold):
        raise PlanError(f"{flag} {text!r}: the value must be a finite number")
    return Target(metric, op, threshold, text.strip(), scope=scope)


def parse_targets(texts: str | Sequence[str], flag: str = "--target") -> list[Target]:
    """Several targets, all to hold; the same metric twice is fine (a band)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise PlanError(f"give at least one {flag}")
    return [parse_target(t, flag) for t in texts]


def with_guard(targets: list[Target]) -> list[Target]:
    """The targets, plus ``error_ratio < 1%`` when one is a latency figure of completed
    requests and none is about failures: a value that sheds load must not pass. Per
    scope: a Service's latency target brings that Service's error ratio (its failed
    calls need not fail the clients' requests, with ``onFailure: continue``)."""
    guards = []
    for scope in dict.fromkeys(t.scope for t in targets):
        mine = [t for t in targets if t.scope == scope]
        if any(is_latency(t.metric) for t in mine) and not any(
                is_failure(t.metric) for t in mine):
            key = ERROR_RATIO if scope is None else scoped_key(ERROR_RATIO, scope)
            guards.append(Target(ERROR_RATIO, "<", GUARD_RATIO, f"{key} < {GUARD_RATIO:.0%}",
                                 implied=True, scope=scope))
    return [*targets, *guards]


def metric_value(values: Mapping[str, float], metric: str) -> float:
    """One run's (or summary's) value of ``metric`` from its ``metric -> value`` rows; a
    count it did not write is 0 (or what stands for it), an incident figure it could
    not measure (no fault in the run) NaN. ``error_ratio`` is worked out from the
    failure counts when the rows do not carry it."""
    if metric in values:
        return float(values[metric])
    base, brace, labels = metric.partition("{")
    if brace:  # a scope's count it did not write is 0, if the run has the scope at all
        scoped = any(k.endswith(brace + labels) for k in values)
        return 0.0 if scoped and base in _counted_metrics() else math.nan
    counted = _counted_metrics()
    if metric in counted:
        instead = counted[metric]
        return float(values.get(instead, math.nan)) if instead else 0.0
    if metric == ERROR_RATIO:
        failed = sum(float(v) for k, v in values.items() if k.startswith("failed_"))
        measured = float(values.get("requests_measured", math.nan))
        return failed / measured if measured > 0 else math.nan
    return math.nan


def judge(samples: Sequence[float], target: Target) -> tuple[str, float]:
    """``meets``, ``fails`` or ``uncertain``, and the probability the target is met
    (one-sided Student-t over the samples: 95% either way decides)."""
    x = np.asarray(samples, dtype=float)
    if len(x) < 2 or np.isnan(x).any():
        return "fails", 0.0
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))
    margin = (target.threshold - mean) if target.below else (mean - target.threshold)
    if se == 0:
        meets = target.holds(mean)
        return ("meets" if meets else "fails"), (1.0 if meets else 0.0)
    from scipy import stats  # only when a target is judged: `npsim run` starts without it

    confidence = float(stats.t.cdf(margin / se, len(x) - 1))
    if confidence >= 0.95:
        return "meets", confidence
    if confidence <= 0.05:
        return "fails", confidence
    return "uncertain", confidence


def mean_ci(samples: Sequence[float]) -> tuple[float, float, float]:
    """Mean and two-sided 95% t-interval (NaN bounds with fewer than two samples)."""
    return mean_and_interval(np.asarray(samples, dtype=float))


_RANK = {"fails": 0, "uncertain": 1, "meets": 2}


def deciding(judged: Mapping[Any, tuple[str, float]], means: Mapping[Any, float],
             target: Target) -> Any:
    """The case that decides ``target`` over several (a node down each): the worst
    verdict; among failing cases the worst mean, among the others the least sure. The
    case of the worst mean can meet the target surely while a noisier one leaves it
    uncertain: shown alone, it said met."""
    def key(case: Any) -> tuple[int, float, float]:
        verdict, sure = judged[case]
        mean = means.get(case, math.nan)
        worse = 0.0 if mean != mean else (-mean if target.below else mean)
        sure = 0.0 if verdict == "fails" or sure != sure else sure
        return _RANK.get(verdict, 1), sure, worse

    return min(judged, key=key)


def combine(verdicts: Sequence[str]) -> str:
    """All must hold: one failing fails, all meeting meets, else uncertain."""
    if "fails" in verdicts:
        return "fails"
    return "meets" if all(v == "meets" for v in verdicts) else "uncertain"


def as_rows(values: Any) -> dict[str, float]:
    """``metric -> value`` of a tidy frame (``metric``, ``value`` columns)."""
    return dict(zip(values["metric"], values["value"], strict=True))


@dataclass(frozen=True)
class CheckResult:
    """One ``--check`` against a run (or the worst of several cases)."""

    target: Target
    value: float
    passed: bool
    case: str | None = None  # the case whose value decided, with --each-node-down

    def line(self) -> str:
        shown = self.target.show(self.value) if self.value == self.value else "no value"
        where = f" with {self.case} down" if self.case else ""
        implied = " (implied by the latency check)" if self.target.implied else ""
        return (f"check {'passed' if self.passed else 'FAILED'}: {self.target}{implied}: "
                f"{shown}{where}")


def evaluate_checks(targets: Sequence[Target],
                    cases: Mapping[str | None, Mapping[str, float]]) -> list[CheckResult]:
    """Each target against every case's ``metric -> value`` rows (one case, None,
    without --each-node-down): it passes when every case's value holds; the case on its
    wrong side is named."""
    out = []
    names = list(cases)
    for target in targets:
        values = [metric_value(cases[name], target.key) for name in names]
        worst = target.worst(values)
        out.append(CheckResult(target, values[worst], all(target.holds(v) for v in values),
                               names[worst]))
    return out


def judge_variants(runs: Any, targets: Sequence[Target],
                   groups: Mapping[str, Mapping[str, str]]) -> Any:
    """Each sweep variant judged against every target over its replications (as the
    planner judges a value): per variant and target the deciding case (:func:`deciding`:
    worst verdict, least sure; ``down``, "" when
    the sweep takes no node down), its mean and 95% CI, how sure the target is met, and
    the variant's verdict over all targets and cases (``variant_verdict``)."""
    import pandas as pd

    per_run = {key: as_rows(part) for key, part in runs.groupby(["variant", "replication"],
                                                               sort=False)}
    rows = []
    for variant, cases in groups.items():
        judged = []
        for target in targets:
            samples = {case: [metric_value(values, target.key)
                              for (name, _), values in per_run.items() if name == run]
                       for case, run in cases.items()}
            verdicts = {case: judge(s, target) for case, s in samples.items()}
            worst = deciding(verdicts, {c: mean_ci(s)[0] for c, s in samples.items()},
                             target)
            judged += [v for v, _ in verdicts.values()]
            mean, low, high = mean_ci(samples[worst])
            rows.append({"variant": variant, "target": str(target), "down": worst,
                         "mean": mean, "ci_low": low, "ci_high": high,
                         "confidence": verdicts[worst][1], "verdict": verdicts[worst][0]})
        for row in rows[len(rows) - len(targets):]:
            row["variant_verdict"] = combine(judged)
    return pd.DataFrame(rows, columns=["variant", "target", "down", "mean", "ci_low",
                                       "ci_high", "confidence", "verdict",
                                       "variant_verdict"])


def verdict_table(verdicts: Any, targets: Sequence[Target]) -> str:
    """The sweep's verdicts as text under 100 columns."""
    by_text = {str(t): t for t in targets}
    rows = [["variant", "target", "least sure case: mean [95% CI]", "down", "sure",
             "verdict"]]
    for r in verdicts.itertuples(index=False):
        target = by_text[r.target]
        ci = "" if r.ci_low != r.ci_low else f" [{target.show(r.ci_low)}, " \
            f"{target.show(r.ci_high)}]"
        rows.append([str(r.variant)[:24], str(r.target), target.show(r.mean) + ci,
                     str(r.down or "-")[:12], f"{r.confidence:.1%}", r.verdict])
    lines = text_rows(fit_rows(rows, 1), "l" * len(rows[0]))
    met = list(dict.fromkeys(verdicts.loc[verdicts["variant_verdict"] == "meets",
                                          "variant"]))
    return "\n".join(["Targets (95% one-sided bound; every target must hold):", *lines,
                      f"meeting every target: {', '.join(met) if met else 'none'}"])
