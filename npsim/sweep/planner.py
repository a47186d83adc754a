"""``npsim plan``: the smallest (or largest) value of one key that meets its targets.

The search assumes the metrics move one way as the value grows (more replicas, lower
latency; more load, higher latency) and bisects the range, so about log2(range) values
are run, not all of them. Each value probed runs replications (the same replication
indexes for every value: common random numbers) and each target is judged with a
one-sided 95% Student-t bound (npsim/sweep/targets.py): it *meets* the target when the
bound is on the right side of it, *fails* when the opposite bound is on the wrong side,
and is *uncertain* otherwise. A value meets when every target does (k6 thresholds: all
must hold); uncertain values get more replications, up to a limit; still uncertain,
they count as not meeting (an answer is only given with 95% confidence per target).

With ``each="node"`` (``"zone"``) every value is run once per node (zone) down
(npsim/sweep/down.py) and meets only if it meets in every case: the plan holds when
any one node (zone) is lost.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from npsim.parallel.pool import run_tasks
from npsim.results.text import fit_rows, text_rows
from npsim.scenario.scenario import Scenario
from npsim.sweep.down import DownCase, DownError, down_cases
from npsim.sweep.store import RunTask, execute
from npsim.sweep.targets import (  # noqa: F401 - names the planner has always exported
    ALWAYS_METRICS,
    SLO_METRICS,
    PlanError,
    Target,
    as_rows,
    check_metric,
    combine,
    deciding,
    judge,
    known_metrics,
    mean_ci,
    metric_value,
    parse_target,
    parse_targets,
    unknown_metric,
    with_guard,
)
from npsim.units import parse_duration, parse_rate


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
            number = r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*"
            if any(re.fullmatch(number, t) for t in (low_text, high_text)):
                raise ValueError("expected whole numbers (1..8), rates (100/s..400/s) or "
                                 f"durations (1ms..5ms), got {low_text.strip()!r}..."
                                 f"{high_text.strip()!r}")
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
    """One value probed: per (case, target) the runs' values and the judgment. A case
    is the node (zone) down, ``""`` without ``each``; targets are by index."""

    value: Any
    verdict: str = "uncertain"  # "meets", "fails" or "uncertain"
    confidence: float = 0.0  # the least sure of its (case, target) judgments
    samples: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    judged: dict[tuple[str, int], tuple[str, float]] = field(default_factory=dict)
    errors: int = 0

    @property
    def runs(self) -> int:
        return sum(len(v) for (_, k), v in self.samples.items() if k == 0) + self.errors

    def deciding(self) -> tuple[str, int]:
        """The (case, target) that decided the verdict: the least sure one."""
        return min(self.judged, key=lambda key: self.judged[key][1])


@dataclass
class PlanOutcome:
    """The answer and every value probed (``frame``: a DataFrame, ``table()``: text)."""

    path: str
    answer: Any | None
    probes: list[Probe] = field(default_factory=list)
    candidates: int = 0
    targets: list[Target] = field(default_factory=list)
    each: str | None = None

    @property
    def runs(self) -> int:
        return sum(p.runs for p in self.probes)

    def answer_line(self) -> str:
        return "answer: none" if self.answer is None else f"answer: {self.path} = {self.answer}"

    @property
    def frame(self) -> pd.DataFrame:
        """One row per value probed, target and case: ``value, target, down, runs, mean,
        ci_low, ci_high, confidence, verdict`` (``down`` None without ``each``), in the
        order the values were probed."""
        rows = []
        for probe in self.probes:
            for (case, k), samples in probe.samples.items():
                mean, low, high = mean_ci(samples)
                verdict, sure = probe.judged.get((case, k), ("uncertain", math.nan))
                rows.append({"value": probe.value, "target": str(self.targets[k]),
                             "down": case or None, "runs": len(samples), "mean": mean,
                             "ci_low": low, "ci_high": high, "confidence": sure,
                             "verdict": verdict})
        return pd.DataFrame(rows, columns=["value", "target", "down", "runs", "mean",
                                           "ci_low", "ci_high", "confidence", "verdict"])

    def table(self) -> str:
        """The probes as text under 100 columns: per value and target, the case that
        decides it (worst verdict, least sure: :func:`deciding`) with its mean and 95% CI,
        how sure the target is met there, and the verdict."""
        head = ("value", "target", "least sure case: mean [95% CI]",
                "down" if self.each is None else f"{self.each} down", "sure", "verdict")
        lines = []
        for probe in sorted(self.probes, key=lambda p: self._order(p.value)):
            for k, target in enumerate(self.targets):
                cases = [c for (c, j) in probe.samples if j == k]
                if not cases:
                    continue
                worst = deciding({c: probe.judged.get((c, k), ("uncertain", math.nan))
                                  for c in cases},
                                 {c: mean_ci(probe.samples[(c, k)])[0] for c in cases},
                                 target)
                mean, low, high = mean_ci(probe.samples[(worst, k)])
                verdict, sure = probe.judged.get((worst, k), ("uncertain", math.nan))
                ci = "" if low != low else f" [{target.show(low)}, {target.show(high)}]"
                name = str(target) + (" *" if target.implied else "")
                lines.append([_cut(str(probe.value), 12), name,
                              _cut(target.show(mean) + ci, 30), _cut(worst or "-", 12),
                              f"{sure:.1%}" if sure == sure else "-", verdict])
        out = text_rows(fit_rows([list(head), *lines], 1), "llllrl")
        if any(t.implied for t in self.targets):
            out.append("* implied: latency counts only while requests are served; "
                       "add an error_ratio target to set your own")
        return "\n".join(out)

    def _order(self, value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            text = str(value)
            return parse_rate(text) if "/" in text else parse_duration(text)

    def __repr__(self) -> str:
        return (f"<PlanOutcome {self.answer_line()}: {len(self.probes)} of {self.candidates} "
                f"values probed, {self.runs} runs; .frame has the probes>")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


def _check_bound(scenario: Scenario, path: str, value: Any, replications: int) -> None:
    """An end of the range must make a scenario that runs: a bad path or value, or a run
    the pre-flight checks refuse (too large, pods without addresses), is a ScenarioError
    naming the --vary value before anything runs."""
    from npsim.preflight import preflight
    from npsim.scenario.problems import Problem, ScenarioError

    try:
        changed = scenario.with_changes({"variants": None, path: value})
    except ScenarioError as exc:  # the value itself (a rate without its unit)
        raise ScenarioError([Problem(p.mark, f"--vary {path}={value}: {p.path}", p.message)
                             for p in exc.problems]) from None
    known = {w.message for w in scenario.warnings}
    for warning in changed.warnings:  # a key npsim ignores: every value runs the same
        if warning.message not in known and "not modelled" in warning.message:
            raise PlanError(f"--vary {path}={value}: {warning.path}: {warning.message}: "
                            "every value would run the same scenario")
    try:
        preflight(changed, replications=replications)  # as many as a probe may run
    except ScenarioError as exc:
        raise ScenarioError([Problem(p.mark, f"--vary {path}={value}: {p.path}", p.message)
                             for p in exc.problems]) from None


def plan_search(scenario: Scenario, target: str | Sequence[str], vary: str, *,
                largest: bool = False, replications: int | None = None,
                max_replications: int | None = None, jobs: int | None = None,
                client: Any = None, log: Callable[[str], None] | None = None,
                each: str | None = None) -> PlanOutcome:
    """Bisect ``vary``'s range for the smallest (``largest``: largest) value meeting
    every ``target`` (one text or several) with 95% confidence; ``each="node"``
    (``"zone"``): in every case of one node (zone) down. ``log`` receives one line per
    value probed, then the table of probes and the runs made."""
    goals = with_guard(parse_targets(target))
    for goal in goals:
        check_metric(goal, scenario)
    path, values = parse_vary(vary)
    first = replications or max(scenario.spec.run.replications, 5)
    most = max(max_replications or 4 * first, first)
    outcome = PlanOutcome(path, None, candidates=len(values), targets=goals, each=each)
    say = log or (lambda _line: None)
    judged: dict[int, bool] = {}

    def cases_of(variant: Scenario) -> list[DownCase | None]:
        if each is None:
            return [None]
        try:
            return list(down_cases(variant, each))
        except DownError as exc:
            raise PlanError(str(exc)) from None

    def meets(index: int) -> bool:
        if index in judged:
            return judged[index]
        value = values[index]
        variant = scenario.with_changes({"variants": None, path: value})
        runs = {(c.name if c else ""): (c.apply(variant) if c else variant)
                for c in cases_of(variant)}
        probe = Probe(value)
        done = dict.fromkeys(runs, 0)
        todo = list(runs)
        while todo:
            tasks, owners = [], []
            for case in todo:
                more = first if done[case] == 0 else min(done[case], most - done[case])
                tasks += [RunTask(f"{value} {case}".strip(), r, runs[case], None)
                          for r in range(done[case], done[case] + more)]
                owners += [case] * more
                done[case] += more
            for i, record in sorted(run_tasks(execute, tasks, jobs, client),
                                    key=lambda pair: pair[0]):
                case = owners[i]
                if record.metrics is None:
                    probe.errors += 1
                    continue
                rows = as_rows(record.metrics)
                for k, goal in enumerate(goals):
                    probe.samples.setdefault((case, k), []).append(
                        metric_value(rows, goal.key))
            for case in todo:
                for k, goal in enumerate(goals):
                    probe.judged[(case, k)] = judge(probe.samples.get((case, k), []), goal)
            probe.verdict = "fails" if probe.errors else combine(
                [v for v, _ in probe.judged.values()])
            if probe.verdict != "uncertain":
                break
            todo = [case for case in todo if done[case] < most and any(
                probe.judged[(case, k)][0] == "uncertain" for k in range(len(goals)))]
        probe.confidence = min(c for _, c in probe.judged.values())
        outcome.probes.append(probe)
        case, k = probe.deciding()
        mean = mean_ci(probe.samples[(case, k)])[0]
        failed = f", {probe.errors} runs failed" if probe.errors else ""
        down = f", {case} down" if case else ""
        say(_cut(f"  {value}: {probe.verdict}, {probe.confidence:.1%} sure ({goals[k].key} "
                 f"{goals[k].show(mean)}{down}; {probe.runs} runs{failed})", 100))
        judged[index] = probe.verdict == "meets"
        return judged[index]

    for bound in dict.fromkeys((values[0], values[-1])):  # before any output or probe
        _check_bound(scenario, path, bound, most)
        cases_of(scenario.with_changes({"variants": None, path: bound}))
    every = "" if each is None else f" with each {each} down in turn"
    say(f"searching {path} in {values[0]}..{values[-1]} ({len(values)} values) for the "
        f"{'largest' if largest else 'smallest'} value")
    say(f"meeting every target{every}:")
    for goal in goals:
        say(f"  {goal}" + (" (implied)" if goal.implied else ""))
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
    for line in outcome.table().splitlines():
        say(line)
    sure = ""
    if answer is not None:
        probe = next(p for p in outcome.probes if p.value == values[answer])
        sure = f"; {values[answer]} meets the targets with {probe.confidence:.1%} confidence"
    say(f"runs: {outcome.runs} over {len(outcome.probes)} of {len(values)} values{sure}")
    return outcome
