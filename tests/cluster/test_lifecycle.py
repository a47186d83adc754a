"""Node and pod lifecycle rules (npsim/cluster/lifecycle.py), without a simulation.

Upstream defaults (sources in npsim/cluster/lifecycle.py): lease every 10 s, monitor every 5 s,
grace 40 s up to v1.31 and 50 s from v1.32; probe defaults; the kubelet's restart
back-off; the Deployment controller's rolling-update arithmetic.
"""

from __future__ import annotations

import pytest

from npsim.cluster.lifecycle import (
    ControlPlaneTiming,
    CrashBackoff,
    Probe,
    resolve_strategy,
    rollout_step,
    timing_for,
    unknown_at,
)
from npsim.scenario.cluster_spec import ControlPlaneSpec


@pytest.mark.parametrize(("version", "grace"), [("1.30", 40.0), ("1.31", 40.0),
                                                ("v1.31.4", 40.0), ("1.32", 50.0),
                                                ("1.34", 50.0)])
def test_grace_period_per_version(version: str, grace: float) -> None:
    timing = timing_for(version)
    assert timing.grace_period == grace
    assert (timing.lease_renew_interval, timing.monitor_period,
            timing.toleration_seconds) == (10.0, 5.0, 300.0)


def test_every_knob_can_be_overridden() -> None:
    spec = ControlPlaneSpec(node_monitor_grace_period=20.0, toleration_seconds=30.0,
                            node_monitor_period=2.0, node_lease_renew_interval=4.0)
    assert timing_for("1.32", spec) == ControlPlaneTiming(4.0, 2.0, 20.0, 30.0)
    assert timing_for("1.31", ControlPlaneSpec()).grace_period == 40.0


@pytest.mark.parametrize("grace", [40.0, 50.0])
def test_unknown_within_grace_plus_one_monitor_period_of_the_last_renewal(grace: float
                                                                           ) -> None:
    timing = ControlPlaneTiming(grace_period=grace)
    for renewal in (100.0, 100.3, 102.5, 104.99):
        for first_tick in (0.0, 1.7, 4.2):
            at = unknown_at(renewal, first_tick, timing)
            assert renewal + grace <= at < renewal + grace + timing.monitor_period
            assert (at - first_tick) / 5.0 == pytest.approx(round((at - first_tick) / 5.0))


def test_crash_backoff_first_restart_at_once_then_doubles_to_five_minutes() -> None:
    backoff = CrashBackoff()
    t, delays = 0.0, []
    for _ in range(9):
        delay = backoff.delay(t)
        delays.append(delay)
        t += delay + 5.0  # each restart runs 5 s
    assert delays == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]


def test_crash_backoff_resets_after_ten_minutes_up() -> None:
    backoff = CrashBackoff()
    assert [backoff.delay(t) for t in (0.0, 1.0, 12.0)] == [0.0, 10.0, 20.0]
    # restarted at 32 s; runs 10 min and a bit: the entry has expired
    assert backoff.delay(32.0 + 600.5) == 0.0
    assert backoff.delay(32.0 + 601.0) == 10.0
    # ... but 9 minutes is not enough
    slow = CrashBackoff()
    slow.delay(0.0)
    assert slow.delay(540.0) == 10.0


def test_probe_defaults_and_timings() -> None:
    probe = Probe()
    assert (probe.period, probe.timeout, probe.failure_threshold, probe.success_threshold,
            probe.initial_delay) == (10.0, 1.0, 3, 1, 0.0)
    # started at 0: probes at 0, 10, 20, ...; hung from 30 -> probes 30, 40, 50 fail
    assert probe.failing_detected(0.0, 30.0) == 51.0
    assert probe.failing_detected(0.0, 30.5) == 61.0
    assert probe.passing_detected(0.0, 62.0) == 70.0
    assert Probe(initial_delay=5, period=2).first_ready(10.0) == 15.0
    assert Probe(success_threshold=3, period=2).first_ready(10.0) == 14.0


def test_strategy_defaults_round_surge_up_and_unavailable_down() -> None:
    assert resolve_strategy(10) == resolve_strategy(10, "25%", "25%")
    s = resolve_strategy(10)
    assert (s.max_surge, s.max_unavailable) == (3, 2)
    s = resolve_strategy(3, 0, 0)
    assert (s.max_surge, s.max_unavailable) == (0, 1)


def test_rollout_one_at_a_time_with_surge_one_unavailable_zero() -> None:
    strategy = resolve_strategy(6, 1, 0)
    assert rollout_step(6, strategy, old=6, new=0, new_available=0) == (1, 0)
    assert rollout_step(6, strategy, old=6, new=1, new_available=0) == (0, 0)
    assert rollout_step(6, strategy, old=6, new=1, new_available=1) == (0, 1)
    assert rollout_step(6, strategy, old=5, new=1, new_available=1) == (1, 0)
    # maxUnavailable 2, no surge: two old pods go at once
    strategy = resolve_strategy(6, 0, 2)
    assert rollout_step(6, strategy, old=6, new=0, new_available=0) == (0, 2)


def test_version_must_be_written_as_text() -> None:
    from pydantic import ValidationError

    from npsim.scenario.cluster_spec import ClusterSpec

    nodes = [{"name": "n1"}]
    assert ClusterSpec(nodes=nodes, kubernetes_version="v1.31.2").kubernetes_version == "v1.31.2"
    for bad, message in ((1.30, "write the version in quotes"),
                         ("2.0", "expected a Kubernetes version")):
        with pytest.raises(ValidationError, match=message):
            ClusterSpec(nodes=nodes, kubernetes_version=bad)
