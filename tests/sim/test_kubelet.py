"""The kubelet's kills and probe timing (npsim/sim/kubelet.py, npsim/cluster/lifecycle.py).

* A liveness failure kills the container the way the kubelet stops any container
  (``pkg/kubelet/kuberuntime/kuberuntime_container.go`` killContainer): preStop for at
  most the grace period, then SIGTERM with the rest of ``terminationGracePeriodSeconds``
  but never less than ``minimumGracePeriodInSeconds`` 2 s, then SIGKILL; the restart
  follows under the crash-loop back-off (the first one at once).
* Each probe worker ticks on its own ``periodSeconds`` ticker (``pkg/kubelet/prober``
  worker.go), so against a hang its phase is anywhere in a period: NotReady falls in
  [hang + (failureThreshold - 1) x period + timeout, the same + period).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

import npsim
from npsim.cluster.lifecycle import Probe, kill_times
from npsim.scenario.loader import scenario_from_dict

HANG_AT = 30.0


def _scenario(container: dict[str, Any], grace: int = 30, replicas: int = 1,
              probe_phase: str = "aligned", on_sigterm: str = "drain",
              hang: list[str] | None = None, duration: str = "120s") -> npsim.Scenario:
    data = {
        "name": "kubelet",
        "cluster": {"probePhase": probe_phase, "nodes": [{"name": "node-1"}]},
        "manifests": [
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"type": "NodePort", "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 80, "nodePort": 30080}]}},
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}},
                                   "spec": {"terminationGracePeriodSeconds": grace,
                                            "containers": [{"name": "web",
                                                            "ports": [{"containerPort": 80}],
                                                            **container}]}}}}],
        "workloads": {"web": {"serviceTime": {"dist": "constant", "value": "1ms"},
                              "onSigterm": on_sigterm}},
        "clients": [{"name": "users", "service": "web", "arrival": {"rate": "5/s"},
                     "connectTimeout": "1s"}],
        "events": [{"at": f"{HANG_AT:g}s", "podHang": {"pod": p}}
                   for p in (hang if hang is not None else ["web-0"])],
        "run": {"duration": duration, "seed": 1},
    }
    return scenario_from_dict(data)


def _events(result: npsim.Result, kind: str) -> pd.DataFrame:
    e = result.events
    return e[e["kind"].astype(str) == kind]


@pytest.mark.parametrize(("pre_stop", "grace", "sigterm", "sigkill"), [
    (0.0, 30.0, 0.0, 30.0),
    (20.0, 30.0, 20.0, 30.0),
    (29.0, 30.0, 29.0, 31.0),  # the rest is 1 s: raised to 2 s
    (40.0, 30.0, 30.0, 32.0),  # preStop cut at the grace period, then 2 s
    (0.0, 0.0, 0.0, 2.0),
])
def test_kill_times_kill_container(pre_stop: float, grace: float, sigterm: float,
                                   sigkill: float) -> None:
    """killContainer: gracePeriod - preStop's time, at least minimumGracePeriodInSeconds."""
    assert kill_times(pre_stop, grace) == (sigterm, sigkill)


def _liveness_run(pre_stop: int, grace: int) -> tuple[float, npsim.Result]:
    container = {"livenessProbe": {"httpGet": {"path": "/", "port": 80},
                                   "periodSeconds": 10, "failureThreshold": 1},
                 "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(pre_stop)]}}}}
    result = npsim.run(_scenario(container, grace=grace))
    failed = _events(result, "pod_killing")
    assert failed["detail"].item() == "liveness probe failed"
    return failed["time"].item(), result


def test_liveness_kill_runs_prestop_then_sigterm_and_restarts_within_the_grace() -> None:
    """preStop 20 s, grace 30 s: the restart comes 20-32 s after the probe failure (here
    20 s: the hung process exits on SIGTERM), not at the failure; the requests the hung
    pod held fail at the kill."""
    failed_at, result = _liveness_run(20, 30)
    # aligned probes: period 10 from the start, the first failing one at 30 s, 1 s timeout
    assert failed_at == pytest.approx(31.0)
    sigterm = _events(result, "pod_sigterm")["time"].item()
    restart = _events(result, "pod_restart")["time"].item()
    assert sigterm - failed_at == pytest.approx(20.0)
    assert 20.0 <= restart - failed_at <= 32.0 and restart == pytest.approx(sigterm)
    crash = _events(result, "pod_crash")
    assert crash["time"].item() == pytest.approx(restart)
    held = result.requests[(result.requests["t_start"] >= HANG_AT).to_numpy()
                           & (result.requests["t_start"] < failed_at).to_numpy()]
    assert len(held) > 0
    assert (held["t_end"] >= restart - 1e-9).all()  # nothing fails before the kill


def test_liveness_kill_with_a_prestop_longer_than_the_grace_gets_two_more_seconds() -> None:
    """preStop 45 s > grace 30 s: SIGTERM at 30 s, SIGKILL would be at 32 s; the hung
    process exits at SIGTERM."""
    failed_at, result = _liveness_run(45, 30)
    sigterm = _events(result, "pod_sigterm")["time"].item()
    assert sigterm - failed_at == pytest.approx(30.0)
    assert _events(result, "pod_restart")["time"].item() - failed_at <= 32.0


def test_probe_phase_window_failing_detected() -> None:
    """Probe.failing_detected with the worker's tick grid: NotReady in [hang + 21, hang +
    31) for period 10, failureThreshold 3, timeout 1; aligned: exactly hang + 21 when
    the hang falls on a tick."""
    probe = Probe()
    at = [probe.failing_detected(0.0, HANG_AT, origin) for origin in np.arange(0, 10, 0.5)]
    assert min(at) == pytest.approx(HANG_AT + 21.0)
    assert max(at) < HANG_AT + 31.0
    assert probe.failing_detected(0.0, HANG_AT) == pytest.approx(HANG_AT + 21.0)


def test_not_ready_lands_anywhere_in_the_period_long_window() -> None:
    """Twelve pods hung at 30 s with default readiness probes: with drawn phases their
    NotReady times spread over [51, 61) s; aligned they all come at 51 s."""
    container = {"readinessProbe": {"httpGet": {"path": "/", "port": 80}}}
    pods = [f"web-{i}" for i in range(12)]
    drawn = npsim.run(_scenario(container, replicas=12, probe_phase="random", hang=pods,
                                duration="70s"))
    times = _events(drawn, "pod_not_ready")["time"].to_numpy()
    assert len(times) == 12
    assert (times >= HANG_AT + 21.0 - 1e-9).all() and (times < HANG_AT + 31.0).all()
    assert times.max() - times.min() > 5.0  # spread over the window, not one instant
    aligned = npsim.run(_scenario(container, replicas=12, hang=pods, duration="70s"))
    assert _events(aligned, "pod_not_ready")["time"].to_numpy() == pytest.approx(
        [HANG_AT + 21.0] * 12)
    again = npsim.run(_scenario(container, replicas=12, probe_phase="random", hang=pods,
                                duration="70s"))
    assert (_events(again, "pod_not_ready")["time"].to_numpy() == times).all()  # seeded


def test_a_liveness_probe_s_own_grace_period_bounds_its_kill() -> None:
    """livenessProbe.terminationGracePeriodSeconds 5 (KEP-2238, setTerminationGracePeriod)
    replaces the pod's 30 s for the kill a failure causes: preStop 20 s is cut at 5 s."""
    container = {"livenessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10,
                                   "failureThreshold": 1, "terminationGracePeriodSeconds": 5},
                 "lifecycle": {"preStop": {"exec": {"command": ["sleep", "20"]}}}}
    result = npsim.run(_scenario(container, grace=30))
    failed_at = _events(result, "pod_killing")["time"].item()
    assert _events(result, "pod_sigterm")["time"].item() - failed_at == pytest.approx(5.0)


def test_readiness_probes_take_no_grace_period() -> None:
    from npsim.scenario.problems import ScenarioError

    container = {"readinessProbe": {"httpGet": {"path": "/", "port": 80},
                                    "terminationGracePeriodSeconds": 5}}
    with pytest.raises(ScenarioError, match="must not be set for readinessProbes"):
        _scenario(container)
