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

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from npsim.scenario.loader import Scenario
from npsim.sweep.pool import run_tasks
from npsim.sweep.store import RunTask, execute
from npsim.units import format_duration, parse_duration, parse_rate

_TARGET = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|<|>)\s*(\S.*?)\s*$")
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


class PlanError(ValueError):
    """A --target or --vary that cannot be read."""


@dataclass
class Target:
    metric: str
    op: str
    threshold: float

    @property
    def below(self) -> bool:
        return self.op.startswith("<")

    def show(self, value: float) -> str:
        if self.metric.startswith(("latency", "queue_wait")):
            return format_duration(value, 4)
        return f"{value:.4g}"


def parse_target(text: str) -> Target:
    """``latency_p99 < 50ms``, ``throughput >= 900/s``, ``pod_share_jain > 0.99``."""
    match = _TARGET.match(text)
    if match is None:
        raise PlanError(f"--target {text!r}: expected METRIC OP VALUE, e.g. "
                        "\"latency_p99 < 50ms\" (OP one of <, <=, >, >=)")
    metric, op, value = match.groups()
    try:
        if metric.startswith(("latency", "queue_wait")):
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
            values: list[Any] = list(range(low, high + 1, max(step, 1)))
        else:
            is_rate = "/" in low_text
            parse = parse_rate if is_rate else parse_duration
            unit = "/s" if is_rate else "s"
            low, high = parse(low_text), parse(high_text)
            step = parse(step_text) if step_text else (high - low) / 32
            count = int(math.floor((high - low) / step + 1e-9)) + 1 if step > 0 else 0
            values = [f"{low + i * step:.6g}{unit}" for i in range(count)]
    except ValueError as exc:
        raise PlanError(f"--vary {text!r}: {exc}") from None
    if not values:
        raise PlanError(f"--vary {text!r}: the range is empty (LOW must not exceed HIGH)")
    if len(values) > 100_000:
        raise PlanError(f"--vary {text!r}: {len(values)} values; use a coarser STEP")
    return path, values


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


def plan_search(scenario: Scenario, target: str, vary: str, *, largest: bool = False,
                replications: int | None = None, max_replications: int | None = None,
                jobs: int | None = None, client: Any = None,
                log: Callable[[str], None] | None = None) -> PlanOutcome:
    """Bisect ``vary``'s range for the smallest (``largest``: largest) value meeting
    ``target`` with 95% confidence. ``log`` receives one line per value probed."""
    goal = parse_target(target)
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
                rows = record.metrics[record.metrics["metric"] == goal.metric]["value"]
                if rows.empty:
                    raise PlanError(f"--target: no metric {goal.metric!r} (metrics: "
                                    f"{', '.join(record.metrics['metric'])})")
                probe.samples.append(float(rows.iloc[0]))
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

    for bound in {values[0], values[-1]}:  # a bad path or value: ScenarioError, no output
        scenario.with_changes({"variants": None, path: bound})
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
