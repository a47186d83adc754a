"""Alert rule semantics (Prometheus AlertingRule.Eval): pending, for, firing, resolved."""

from __future__ import annotations

import numpy as np

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
