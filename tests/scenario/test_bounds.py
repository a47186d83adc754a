"""Counts and times a run allocates or repeats are bounded where the scenario says them:
each bound is a placed error (file, line, field; what ``validate`` and ``run`` exit 2
with), stated in README's limits table (issue 22)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import client, scenario_dict

import npsim
from npsim.scenario.limits import MAX_BALANCER_CORES, MAX_RETRIES, MAX_WORKERS
from npsim.scenario.problems import ScenarioError

ROOT = Path(__file__).resolve().parents[2]


def _problems(tmp_path: Path, change: Any) -> list[Any]:
    data = scenario_dict(nodes=2, replicas=2, clients=[client(rate=50.0)], duration=2.0)
    change(data)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    with pytest.raises(ScenarioError) as info:
        npsim.load_scenario(path)
    return info.value.problems


def _set(*keys: Any, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
        node[keys[-1]] = value
    return change


@pytest.mark.parametrize("keys, value, field, words", [
    (("workloads", "web", "workers"), MAX_WORKERS + 1, "workloads.web.workers",
     "at most 1,048,576 workers"),
    (("cluster", "userspace", "workers"), 10**9, "cluster.userspace.workers",
     "at most 1,048,576 workers"),
    (("clients", 0, "tls"), {"terminate": "balancer", "balancerCores": 10**9},
     "clients[0].tls.balancerCores", f"at most {MAX_BALANCER_CORES:,} cores"),
    (("clients", 0, "retries"), {"attempts": 10**9, "backoff": {"base": 0}},
     "clients[0].retries.attempts", f"at most {MAX_RETRIES} retries"),
    (("clients", 0, "balancer"), {"nextUpstream": 10**9},
     "clients[0].balancer.nextUpstream", f"at most {MAX_RETRIES} retries"),
    (("events",), [{"at": "1000000000000s", "nodeCrash": {"node": "node-1"}}],
     "events[0].at", "at most 365 days of simulated time"),
    (("run", "duration"), "9000h", "run.duration", "at most 365 days"),
    (("clients", 0, "stop"), "1e12s", "clients[0].stop", "at most 365 days"),
])
def test_counts_and_times_past_their_bound_are_placed_errors(
        tmp_path: Path, keys: tuple[Any, ...], value: Any, field: str, words: str) -> None:
    problems = _problems(tmp_path, _set(*keys, value=value))
    hit = [p for p in problems if p.path == field]
    assert hit, [str(p) for p in problems]
    assert words in hit[0].message
    assert hit[0].mark is not None and hit[0].mark.file.endswith("scenario.yaml")
    assert hit[0].mark.line > 1


def test_a_bound_itself_is_accepted() -> None:
    data = scenario_dict(nodes=2, replicas=1, clients=[client(rate=5.0)], duration=1.0)
    data["clients"][0]["retries"] = {"attempts": MAX_RETRIES}
    data["clients"][0]["balancer"] = {"snat": True}
    data["clients"][0]["tls"] = {"terminate": "balancer", "balancerCores": MAX_BALANCER_CORES}
    npsim.scenario_from_dict(data)


def test_tls_at_a_balancer_needs_the_balancer(tmp_path: Path) -> None:
    """``tls: {terminate: balancer}`` on a population with no balancer changed nothing
    and was accepted; cores for TLS terminated in the pod likewise."""
    problems = _problems(tmp_path, _set("clients", 0, "tls", value={"terminate": "balancer"}))
    assert [p.path for p in problems] == ["clients[0].tls.terminate"]
    assert "no balancer" in problems[0].message and problems[0].mark.line > 1
    problems = _problems(tmp_path, _set("clients", 0, "tls", value={
        "terminate": "pod", "balancerCores": 4}))
    assert [p.path for p in problems] == ["clients[0].tls.balancerCores"]
    assert "no effect" in problems[0].message


def test_an_event_after_the_end_is_a_warning_with_its_line() -> None:
    data = scenario_dict(nodes=2, replicas=2, clients=[client(rate=5.0)], duration=2.0)
    data["events"] = [{"at": "5s", "nodeCrash": {"node": "node-1"}}]
    scenario = npsim.scenario_from_dict(data)
    assert [w.path for w in scenario.warnings] == ["events[0].at"]
    assert "changes nothing" in scenario.warnings[0].message


@pytest.mark.parametrize("value", ["inf", ".nan"])
def test_a_backoff_multiplier_must_be_finite(tmp_path: Path, value: str) -> None:
    problems = _problems(tmp_path, _set("clients", 0, "retries", value={
        "backoff": {"multiplier": float(value.strip("."))}}))
    assert [p.path for p in problems] == ["clients[0].retries.backoff.multiplier"]


@pytest.mark.parametrize("container, field, words", [
    ({"readinessProbe": {"periodSeconds": 2**31}}, "readinessProbe.periodSeconds",
     "must be at most 2147483647"),
    ({"livenessProbe": {"failureThreshold": 10**30}}, "livenessProbe.failureThreshold",
     "must be at most 2147483647"),
    ({"lifecycle": {"preStop": {"sleep": {"seconds": -5}}}},
     "lifecycle.preStop.sleep.seconds", "must be non-negative"),
])
def test_probe_numbers_and_hooks_are_bounded_as_the_api_server_does(
        container: dict[str, Any], field: str, words: str) -> None:
    data = scenario_dict(nodes=2, replicas=2, clients=[client(rate=5.0)], duration=1.0)
    deployment = next(m for m in data["manifests"] if m["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0].update(container)
    with pytest.raises(ScenarioError) as info:
        npsim.scenario_from_dict(data)
    (problem,) = info.value.problems
    assert problem.path.endswith(field) and words in problem.message
    assert problem.mark is not None
