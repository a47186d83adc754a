"""Property: mutations deep inside a scenario give a clean error or a run that adds up.

The generic fuzz (test_fuzz_scenarios.py) walks random paths from the top and rarely
reaches the parts nested deep in a scenario. This one first gives each bundled scenario
every such part it lacks: readiness and liveness probes, a preStop hook, a rolling
update strategy, a NetworkPolicy, events of every kind, a balancer with health checks,
retries, TLS, alert rules and sweep variants. It then mutates inside those parts only
(a wrong type, an extreme number, a bad unit, a name that does not exist, a part deleted,
emptied or doubled). Each case must either raise :class:`ScenarioError` whose every
problem names where it is (what the CLI prints with exit 2), or run, with its variants
checked as a sweep would, to a result whose requests add up.

In CI (``CI`` set) about 1,000 cases run; locally a few per scenario, so ``make test``
stays fast. The generator is seeded (``derandomize``): every run tries the same cases.
"""

from __future__ import annotations

import copy
import gc
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import Pools, children, inline, mutate

import npsim
from npsim.preflight import preflight_variants
from npsim.scenario.problems import ScenarioError
from npsim.sweep.variants import expand

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
BUNDLED = sorted(SCENARIOS.glob("*.yaml"))
TOTAL_EXAMPLES = 1_000 if os.environ.get("CI") else 2 * len(BUNDLED)
REQUESTS = 120
MAX_REQUESTS = 2_000

WRONG = [None, True, 0, -1, 1, 3.5, 1e308, 10**30, 2**31, 2**63, "", "x", [], {},
         [1, 2], {"a": 1}, "missing", math.inf, -math.inf, math.nan]
UNITS = ["0s", "-5ms", "5", "1e-12s", "9e99s", "1e12s", "inf s", "1ms", "30s", "5/us",
         "0/s", "1e9/s", "nan/s"]
NUMBERS = [0, 1, 2, -1, 3, 100, 101, 1000, 10**6, 10**9, 2**31 - 1, 2**31, 10**40, 0.5]
NAMES = ["missing", "node-9", "", "web-0", "a" * 300, "NodeCrash"]
POOLS = Pools(WRONG, UNITS, NUMBERS, NAMES)

PROBE = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1, "timeoutSeconds": 1,
         "failureThreshold": 2, "successThreshold": 1, "initialDelaySeconds": 0}


def _equipped(data: dict[str, Any]) -> tuple[dict[str, Any], list[list[Any]]]:
    """The scenario with every nested part added where it lacks one, and the paths of
    those parts (where mutations go)."""
    data = copy.deepcopy(data)
    parts: list[list[Any]] = []
    deployments = [i for i, m in enumerate(data["manifests"]) if m.get("kind") == "Deployment"]
    for i in deployments:
        pod = data["manifests"][i]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        container.setdefault("readinessProbe", dict(PROBE))
        container.setdefault("livenessProbe", {**PROBE, "failureThreshold": 3})
        container.setdefault("lifecycle", {"preStop": {"sleep": {"seconds": 1}}})
        pod.setdefault("terminationGracePeriodSeconds", 2)
        data["manifests"][i]["spec"].setdefault(
            "strategy", {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
        base = ["manifests", i, "spec", "template", "spec"]
        parts += [[*base, "containers", 0, key]
                  for key in ("readinessProbe", "livenessProbe", "lifecycle")]
        parts += [[*base, "terminationGracePeriodSeconds"], ["manifests", i, "spec", "strategy"]]
    first = data["manifests"][deployments[0]] if deployments else None
    if first is not None and not any(m.get("kind") == "NetworkPolicy" for m in data["manifests"]):
        labels = first["spec"]["template"]["metadata"]["labels"]
        data["manifests"].append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "fuzz-policy"},
            "spec": {"podSelector": {"matchLabels": dict(labels)}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                                        "except": ["10.0.0.0/8"]}}],
                                  "ports": [{"protocol": "TCP"}]}]}})
    parts += [["manifests", i] for i, m in enumerate(data["manifests"])
              if m.get("kind") == "NetworkPolicy"]
    nodes = [n["name"] for n in data["cluster"]["nodes"]]
    name = first["metadata"]["name"] if first is not None else "missing"
    if not data.get("events"):
        data["events"] = [
            {"at": "10ms", "until": "40ms", "podHang": {"pod": f"{name}-0"}},
            {"at": "20ms", "until": "50ms", "nodeCrash": {"node": nodes[-1]}},
            {"at": "15ms", "podSlowdown": {"pod": f"{name}-0", "factor": 3}, "until": "30ms"},
            {"at": "25ms", "scale": {"deployment": name, "replicas": 3}},
            {"at": "30ms", "rollout": {"deployment": name}},
            {"at": "5ms", "until": "45ms", "podCrash": {"pod": f"{name}-0", "runsFor": "10ms"}},
        ]
    parts += [["events"]] + [["events", i] for i in range(len(data["events"]))]
    for i, client in enumerate(data["clients"]):
        if (client.get("source") is None and "balancer" not in client
                and client.get("target", "nodePort") == "nodePort"):  # a balancer's target
            client["balancer"] = {"algorithm": "leastConnections", "snat": True,
                                  "healthCheck": {"interval": "20ms", "timeout": "10ms"},
                                  "passive": {"maxFails": 1, "failTimeout": "30ms"}}
            client["entry"] = "random"
            client.setdefault("tls", {"terminate": "balancer", "resumption": 0.5})
        if not (client.get("balancer") or {}).get("nextUpstream"):
            client.setdefault("retries", {"attempts": 3, "backoff": {"base": "1ms"},
                                          "budget": {"ratio": 0.5}})
        parts += [["clients", i, key] for key in ("balancer", "retries", "tls")
                  if key in client]
    data.setdefault("monitoring", {"evaluationInterval": "10ms", "alerts": [
        {"name": "down", "probe": {"interval": "20ms"}, "for": "10ms"},
        {"name": "errors", "errorRatio": {"above": 0.01, "window": "30ms"}},
        {"name": "slow", "latencyP99": {"above": 0.05, "window": "30ms"}}],
        "slo": {"availability": 0.99, "window": "1s"}})
    parts += [["monitoring"]] + [["monitoring", "alerts", i]
                                 for i in range(len(data["monitoring"].get("alerts", [])))]
    data.setdefault("variants", {
        "each": [{"name": "ipvs", "set": {"cluster.proxyMode": "ipvs"}},
                 {"name": "more", "set": {f"workloads.{name}.workers": 2}}],
        "grid": {"clients[0].requestsPerConnection": [1, 4]}})
    parts += [["variants"]]
    return data, parts


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], parts: list[list[Any]]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    starts = [draw(st.sampled_from(parts)) for _ in range(draw(st.integers(1, 3)))]
    if ["variants"] not in starts and draw(st.integers(0, 3)) > 0:
        del data["variants"]  # expanding them is most of a case's time: 1 case in 4 keeps them
    for start in starts:
        parent: Any = None
        key: Any = None
        node: Any = data
        for step in start:  # to the part (an earlier mutation may have removed it)
            if step not in children(node):
                break
            parent, key, node = node, step, node[step]
        # then down from it, stopping with some probability at each level
        while children(node) and draw(st.integers(0, 2)) > 0:
            keys = children(node)
            parent, key = node, keys[draw(st.integers(0, len(keys) - 1))]
            node = node[key]
        if parent is None:
            continue
        mutate(draw, parent, key, node, POOLS)
    return data


def _clean(exc: ScenarioError) -> None:
    """What the CLI prints and exits 2 with: every problem says where and what."""
    assert exc.problems
    for problem in exc.problems:
        assert problem.message and (problem.mark is not None or problem.path), problem
        assert "please report" not in problem.message
    assert "Traceback" not in exc.report()


def _adds_up(result: Any) -> None:
    req = result.requests
    assert len(req) <= MAX_REQUESTS
    assert req["outcome"].notna().all()
    summary = result.summary
    value = dict(zip(summary["metric"][summary["scope"] == "all"],
                     summary["value"][summary["scope"] == "all"], strict=True))
    generated = value.get("requests_generated", 0)
    calls = result.calls  # pods' calls are rows too; "all" counts the clients' requests
    assert generated == len(req) - (0 if calls is None else len(calls))
    assert generated == (value.get("requests_completed", 0) + value.get("requests_failed", 0)
                         + value.get("requests_in_flight", 0))
    retried = req[req["attempt"] > 0]
    assert (retried["retry_of"] >= 0).all()  # every retry names the request it repeats
    assert isinstance(result.report(), str)


def _check(data: dict[str, Any]) -> None:
    try:
        scenario = npsim.scenario_from_dict(data, base_dir=SCENARIOS)
        if scenario.spec.variants is not None:  # what a sweep checks before it starts
            variants, _ = expand(scenario)
            preflight_variants(variants, max_requests=MAX_REQUESTS, max_memory=4 << 30)
            scenario = variants[-1].scenario
        result = npsim.run(scenario, max_requests=MAX_REQUESTS, max_memory=4 << 30)
    except ScenarioError as exc:
        _clean(exc)
        return
    _adds_up(result)


EQUIPPED = {path.name: _equipped(inline(path, REQUESTS)) for path in BUNDLED}
EXAMPLES_PER_SCENARIO = -(-TOTAL_EXAMPLES // len(EQUIPPED))


@pytest.mark.parametrize("name", sorted(EQUIPPED))
def test_nested_mutations_fail_cleanly_or_run(name: str) -> None:
    base, parts = EQUIPPED[name]

    @settings(max_examples=EXAMPLES_PER_SCENARIO, derandomize=True, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    @given(mutated(base, parts))
    def check(data: dict[str, Any]) -> None:
        _check(data)

    gc.freeze()  # each run's gc.collect() would walk this process's heap: 0.8 s -> 0.2 s
    check()


def test_the_equipped_scenarios_run_and_reach_every_part() -> None:
    """The starting points are valid (else every mutation fails trivially), and each
    has the parts the mutations aim at."""
    gc.freeze()
    for base, parts in EQUIPPED.values():
        _check(copy.deepcopy(base))
        npsim.scenario_from_dict(copy.deepcopy(base), base_dir=SCENARIOS)
        tops = {tuple(p[:1]) for p in parts}
        assert {("events",), ("clients",), ("monitoring",), ("variants",)} <= tops
        nested = {p[-1] for p in parts if p[0] == "manifests"}
        assert {"readinessProbe", "livenessProbe", "lifecycle"} <= nested
