"""The incidents block's figures: a scenario with no alert rule cannot detect anything,
so "detected never" (read: the outage went unnoticed) is not its to say; it says no
alert rule watched. With rules that never fired, "detected never" stays."""

from __future__ import annotations

from pathlib import Path

import npsim
from npsim.scenario.changes import with_changes

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def _incidents(changes: dict) -> str:
    scenario = npsim.load_scenario(SCENARIOS / "node-failure.yaml")
    result = npsim.run(with_changes(scenario, {"run.duration": "70s", **changes}))
    return result.report().split("incidents")[1]


def test_no_alert_rule_is_not_detected_never() -> None:
    block = _incidents({})
    assert "detected never" not in block
    assert "no alert rule (monitoring.alerts) to detect it" in block
    watched = _incidents({"monitoring": {"alerts": [
        {"name": "slow", "latencyP99": {"above": 10}}]}})
    assert "detected never" in watched
