"""``npsim plan``: the smallest (or largest) value of one key that meets a target.

The search assumes the metric moves one way as the value grows (more replicas, lower
latency; more load, higher latency) and bisects the range, so about log2(range) values
are run, not all of them. Each value probed runs replications (the same replication
indexes for every value: common random numbers) and is judged with a one-sided 95%
Student-t bound: it *meets* the target when the bound is on the right side of it,
*fails* when the opposite bound is on the wrong side, and is *uncertain* otherwise.
Uncertain values get more replications, up to a limit; still uncertain, they count as
not meeting (an answer is only given with 95% confidence).
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from npsim.parallel.pool import run_tasks
from npsim.scenario.scenario import Scenario
from npsim.sweep.store import RunTask, execute
from npsim.units import format_duration, parse_duration, parse_rate

_TARGET = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|<|>)\s*(\S.*?)\s*$")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class PlanError(ValueError):
    """A --target or --vary that cannot be read."""


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


def _counted_metrics() -> dict[str, str | None]:
    """Metrics a run writes only when they count something: absent means 0 (the value
    None), or the value of another metric (``requests_failed_after_retries`` without
    retries is ``requests_failed``)."""
    from npsim.outcomes import REASONS

    out: dict[str, str | None] = {f"failed_{r}": None for r in REASONS.values() if r}
    out.update({f"failed_share_{r}": None for r in REASONS.values() if r})
    out["retries"] = None
    out["requests_measured_in_flight"] = None
    out["requests_failed_after_retries"] = "requests_failed"
    return out


@dataclass
class Target:
    metric: str
    op: str
    threshold: float

    @property
    def below(self) -> bool:
        return self.op.startswith("<")

    def show(self, value: float) -> str:
        if _is_duration(self.metric):
            return format_duration(value, 4)
        return f"{value:.4g}"


def _is_duration(metric: str) -> bool:
    return metric.startswith(("latency", "user_latency", "queue_wait", "first_packet", "time_to_",
                              "fault_start"))


def _incident_metrics() -> list[str]:
    """The fault figures a run writes (the SLO ones are listed apart)."""
    from npsim.results.summary import INCIDENT_METRICS

    return [m for m in INCIDENT_METRICS if m not in SLO_METRICS]


def known_metrics() -> list[str]:
    """Every scope-``all`` metric a run can write."""
    return [*ALWAYS_METRICS, *_counted_metrics(), *_incident_metrics(), *SLO_METRICS]


def unknown_metric(metric: str) -> str:
    """Why ``metric`` is refused: no run writes it; the closest names, and the list."""
    close = difflib.get_close_matches(metric, known_metrics(), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    incident = _incident_metrics()
    return (f"no metric {metric!r}; {hint}Metrics: {', '.join(ALWAYS_METRICS)}; "
            "failed_<reason> (e.g. failed_connect_timeout), retries; with faults "
            f"{', '.join(incident)}; with an SLO {', '.join(SLO_METRICS)}")


def _check_name(metric: str, text: str) -> None:
    """A metric no run writes is refused before anything runs, with the closest names."""
    if metric not in known_metrics():
        raise PlanError(f"--target {text!r}: {unknown_metric(metric)}")


def check_metric(target: Target, scenario: Scenario, text: str) -> None:
    """What the scenario must have for the target's metric (an SLO for the error
    budget's). Incident figures need no check: a run without a fault gives NaN, which
    never meets a target."""
    monitoring = scenario.spec.monitoring
    if target.metric in SLO_METRICS and (monitoring is None or monitoring.slo is None):
        raise PlanError(f"--target {text!r}: {target.metric} needs an SLO "
                        "(monitoring.slo.availability) in the scenario")


def parse_target(text: str) -> Target:
    """``latency_p99 < 50ms``, ``throughput >= 900/s``, ``pod_share_jain > 0.99``."""
    match = _TARGET.match(text)
    if match is None:
        raise PlanError(f"--target {text!r}: expected METRIC OP VALUE, e.g. "
                        "\"latency_p99 < 50ms\" (OP one of <, <=, >, >=)")
    metric, op, value = match.groups()
    _check_name(metric, text)
    try:
        if _is_duration(metric):
            threshold = parse_duration(value)
        elif "/" in value:
            threshold = parse_rate(value)
        else:
            threshold = float(value.rstrip("%")) / (100 if value.endswith("%") else 1)
    except ValueError as exc:
        raise PlanError(f"--target {text!r}: {exc}") from None
    return Target(metric, op, threshold)


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """``PATH=LOW..HIGH[:STEP]``: whole numbers, rates (``100/s..5000/s``) or durations;
    the candidate values in increasing order, as a scenario file would write them."""
    path, sep, spec = text.partition("=")
    low_text, dots, rest = spec.partition("..")
    high_text, _, step_text = rest.partition(":")
    if not sep or not path.strip() or not dots or not low_text.strip() or not high_text.strip():
        raise PlanError(f"--vary {text!r}: expected PATH=LOW..HIGH[:STEP], e.g. "
                        "deployments.nginx.replicas=1..64")
    path = path.strip()
    try:
        if all(re.fullmatch(r"\s*-?\d+\s*", t) for t in (low_text, high_text)) and (
                not step_text or re.fullmatch(r"\s*\d+\s*", step_text)):
            low, high, step = int(low_text), int(high_text), int(step_text or 1)
            if step <= 0:  # a step of 0 was taken as 1
                raise ValueError(f"STEP must be > 0, got {step_text.strip()}")
            _count_fits((high - low) // step + 1)  # counted before it is built
            values: list[Any] = list(range(low, high + 1, step))
        else:
            is_rate = "/" in low_text
            parse = parse_rate if is_rate else parse_duration
            unit = "/s" if is_rate else "s"
            low, high = parse(low_text), parse(high_text)
            step = parse(step_text) if step_text else (high - low) / 32
            if step_text and step <= 0:  # was "the range is empty"
                raise ValueError(f"STEP must be > 0, got {step_text.strip()}")
            count = (high - low) / step + 1 if step > 0 else 0
            _count_fits(count)
            values = [f"{low + i * step:.6g}{unit}"
                      for i in range(int(math.floor(count - 1 + 1e-9)) + 1 if count else 0)]
    except ValueError as exc:
        raise PlanError(f"--vary {text!r}: {exc}") from None
    if not values:
        raise PlanError(f"--vary {text!r}: the range is empty (LOW must not exceed HIGH)")
    return path, values


MAX_VARY_VALUES = 100_000


def _count_fits(count: float) -> None:
    """Refuse a range of more candidate values than a search should hold, before making
    them (``1..10**12`` ran out of memory building the list)."""
    if count > MAX_VARY_VALUES:
        many = f"{count:,.0f}" if count < 1e15 else f"{count:.3g}"
        raise ValueError(f"{many} values, more than {MAX_VARY_VALUES:,}; use a coarser STEP "
                         "or a narrower range")


@dataclass
class Probe:
    value: Any
    samples: list[float]
    verdict: str  # "meets", "fails" or "uncertain"
    confidence: float  # probability the target is met, one-sided t
    errors: int = 0

    @property
    def runs(self) -> int:
        return len(self.samples) + self.errors


@dataclass
class PlanOutcome:
    path: str
    answer: Any | None
    probes: list[Probe] = field(default_factory=list)
    candidates: int = 0

    @property
    def runs(self) -> int:
        return sum(p.runs for p in self.probes)

    def answer_line(self) -> str:
        return "answer: none" if self.answer is None else f"answer: {self.path} = {self.answer}"


def _judge(samples: list[float], target: Target) -> tuple[str, float]:
    x = np.asarray(samples, dtype=float)
    if len(x) < 2 or np.isnan(x).any():
        return "fails", 0.0
    mean, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))
    margin = (target.threshold - mean) if target.below else (mean - target.threshold)
    if se == 0:
        meets = _OPS[target.op](mean, target.threshold)
        return ("meets" if meets else "fails"), (1.0 if meets else 0.0)
    confidence = float(stats.t.cdf(margin / se, len(x) - 1))
    if confidence >= 0.95:
        return "meets", confidence
    if confidence <= 0.05:
        return "fails", confidence
    return "uncertain", confidence


def _value(metrics: Any, metric: str) -> float:
    """One run's value of ``metric``; a count it did not write is 0 (or what stands for
    it), an incident figure it could not measure (no fault in the run) NaN."""
    by_name = dict(zip(metrics["metric"], metrics["value"], strict=True))
    if metric in by_name:
        return float(by_name[metric])
    counted = _counted_metrics()
    if metric in counted:
        instead = counted[metric]
        return float(by_name.get(instead, math.nan)) if instead else 0.0
    return math.nan


def _check_bound(scenario: Scenario, path: str, value: Any, replications: int) -> None:
    """An end of the range must make a scenario that runs: a bad path or value, or a run
    the pre-flight checks refuse (too large, pods without addresses), is a ScenarioError
    naming the --vary value before anything runs."""
    from npsim.preflight import preflight
    from npsim.scenario.problems import Problem, ScenarioError

    changed = scenario.with_changes({"variants": None, path: value})
    try:
        preflight(changed, replications=replications)  # as many as a probe may run
    except ScenarioError as exc:
        raise ScenarioError([Problem(p.mark, f"--vary {path}={value}: {p.path}", p.message)
                             for p in exc.problems]) from None


def plan_search(scenario: Scenario, target: str, vary: str, *, largest: bool = False,
                replications: int | None = None, max_replications: int | None = None,
                jobs: int | None = None, client: Any = None,
                log: Callable[[str], None] | None = None) -> PlanOutcome:
    """Bisect ``vary``'s range for the smallest (``largest``: largest) value meeting
    ``target`` with 95% confidence. ``log`` receives one line per value probed."""
    goal = parse_target(target)
    check_metric(goal, scenario, target)
    path, values = parse_vary(vary)
    first = replications or max(scenario.spec.run.replications, 5)
    most = max(max_replications or 4 * first, first)
    outcome = PlanOutcome(path, None, candidates=len(values))
    say = log or (lambda _line: None)
    judged: dict[int, bool] = {}

    def meets(index: int) -> bool:
        if index in judged:
            return judged[index]
        value = values[index]
        variant = scenario.with_changes({"variants": None, path: value})
        probe = Probe(value, [], "uncertain", 0.0)
        n = 0
        while probe.verdict == "uncertain" and n < most:
            more = first if n == 0 else min(n, most - n)
            tasks = [RunTask(str(value), r, variant, None) for r in range(n, n + more)]
            for _, record in sorted(run_tasks(execute, tasks, jobs, client),
                                    key=lambda pair: pair[0]):
                if record.metrics is None:
                    probe.errors += 1
                    continue
                probe.samples.append(_value(record.metrics, goal.metric))
            n += more
            probe.verdict, probe.confidence = _judge(probe.samples, goal)
            if probe.errors:
                probe.verdict = "fails"
        outcome.probes.append(probe)
        x = np.asarray(probe.samples, dtype=float)
        if len(x) >= 2:
            half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
            shown = (f"{goal.show(x.mean())} (95% CI {goal.show(x.mean() - half)}.."
                     f"{goal.show(x.mean() + half)})")
        else:
            shown = "no value"
        failed = f", {probe.errors} runs failed" if probe.errors else ""
        say(f"  {path} = {value}: {goal.metric} {shown} over {len(x)} runs{failed} -> "
            f"{probe.verdict} ({probe.confidence:.1%} sure it meets {goal.metric} {goal.op} "
            f"{goal.show(goal.threshold)})")
        judged[index] = probe.verdict == "meets"
        return judged[index]

    for bound in dict.fromkeys((values[0], values[-1])):  # before any output or probe
        _check_bound(scenario, path, bound, most)
    say(f"searching {path} in {values[0]}..{values[-1]} ({len(values)} values) for the "
        f"{'largest' if largest else 'smallest'} meeting {target.strip()}")
    # search in the order in which values stop failing: increasing for the smallest,
    # decreasing for the largest (more load meets the target less)
    order = list(range(len(values)))[::-1] if largest else list(range(len(values)))
    lo, hi = 0, len(order) - 1
    if not meets(order[hi]):
        answer = None
    elif meets(order[lo]):
        answer = order[lo]
    else:  # order[lo] fails, order[hi] meets
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if meets(order[mid]) else (mid, hi)
        answer = order[hi]
    outcome.answer = None if answer is None else values[answer]
    sure = ""
    if answer is not None:
        probe = next(p for p in outcome.probes if p.value == values[answer])
        sure = f"; {values[answer]} meets the target with {probe.confidence:.1%} confidence"
    say(f"runs: {outcome.runs} over {len(outcome.probes)} of {len(values)} values{sure}")
    return outcome
