"""Alert rule semantics (Prometheus AlertingRule.Eval): pending, for, firing, resolved."""

from __future__ import annotations

import numpy as np
from conftest import client, constant, scenario_dict

import npsim
from npsim.results.alerts import evaluation_times, transitions


def test_a_rule_fires_after_holding_for_its_duration_and_resolves_when_false():
    times = evaluation_times(15.0, 100.0)
    assert times.tolist() == [15, 30, 45, 60, 75, 90]
    holds = np.array([False, True, True, True, False, True])
    got = transitions(times, holds, 30.0, "A", "")
    assert [(t, k) for t, k, _, _ in got] == [(60.0, "alert_firing"), (75.0, "alert_resolved")]
    # for: 0 fires at the first true evaluation; a pending rule that turns false never fires
    assert [(t, k) for t, k, _, _ in transitions(times, holds, 0.0, "A", "")][:1] == [
        (30.0, "alert_firing")]
    assert transitions(times, np.array([0, 1, 1, 0, 1, 0], dtype=bool), 30.0, "A", "") == []


def test_p99_and_error_ratio_rules_over_a_slowdown():
    """web-0 serves 50x slower from 10 s to 20 s (a noisy neighbour). The p99 rule
    (evaluated every 5 s, window 5 s, for 5 s) first holds at 15 s (the first slow
    answers end at 10.1 s, after the 10 s evaluation), fires at 20 s and resolves at
    25 s. No request fails, so the error-ratio rule never fires."""
    d = scenario_dict(nodes=2, replicas=2, workers=64, service_time=constant(2e-3),
                      clients=[client(rate=100.0)], duration=30.0)
    d["events"] = [{"at": "10s", "until": "20s", "podSlowdown": {"pod": "web-0", "factor": 50}}]
    d["monitoring"] = {"evaluationInterval": "5s", "alerts": [
        {"name": "Slow", "latencyP99": {"above": 0.05, "window": "5s"}, "for": "5s"},
        {"name": "Errors", "errorRatio": {"above": 0.0, "window": "5s"}}]}
    result = npsim.run(npsim.scenario_from_dict(d))
    ev = result.events[result.events["kind"].str.startswith("alert_")]
    assert list(zip(ev["time"], ev["kind"], ev["subject"], strict=True)) == [
        (20.0, "alert_firing", "Slow"), (25.0, "alert_resolved", "Slow")]
    assert result.metric("time_to_detect") == 10.0


def test_a_monitored_run_where_nothing_happens_and_nothing_fires():
    """A quiet run with alert rules: no transition at all, and no crash building the log."""
    d = scenario_dict(nodes=2, replicas=2, workers=8, service_time=constant(1e-3),
                      clients=[client(rate=50.0)], duration=10.0)
    d["monitoring"] = {"evaluationInterval": "5s", "alerts": [
        {"name": "Errors", "errorRatio": {"above": 0.5, "window": "5s"}, "for": "5s"}]}
    result = npsim.run(npsim.scenario_from_dict(d))
    assert result.events.empty
    assert result.metric("requests_failed") == 0
