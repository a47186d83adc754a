"""Distributions: mapped from YAML, each knows its mean and variance, samplers agree."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError
from scenario_files import line_of, scenario_text

from npsim.dists import (
    BATCH,
    Constant,
    Distribution,
    Empirical,
    Exponential,
    LogNormal,
    Uniform,
    next_values,
)
from npsim.scenario.loader import load_scenario
from npsim.scenario.problems import ScenarioError

N = 100_000
ADAPTER: TypeAdapter[Any] = TypeAdapter(Distribution)


def from_yaml(value: Any) -> Any:
    """A distribution as a scenario file gives it (units required)."""
    return ADAPTER.validate_python(value, context={"yaml": True})


def draws(dist: Any, seed: int = 7, n: int = N) -> np.ndarray:
    sample = dist.sampler(np.random.default_rng(seed))
    return np.array([sample() for _ in range(n)])


@pytest.mark.parametrize(
    ("spec", "kind", "mean", "variance"),
    [
        ({"dist": "exponential", "mean": "5ms"}, Exponential, 5e-3, 25e-6),
        ({"dist": "constant", "value": "250us"}, Constant, 250e-6, 0.0),
        ({"dist": "lognormal", "mean": "1ms", "cv": 0.5}, LogNormal, 1e-3, (0.5e-3) ** 2),
        ({"dist": "lognormal", "mean": "90us", "cv": 0.3}, LogNormal, 90e-6, (27e-6) ** 2),
        ({"dist": "uniform", "low": "1ms", "high": "3ms"}, Uniform, 2e-3, (2e-3) ** 2 / 12),
        ({"dist": "empirical", "samples": ["1ms", "2ms", "6ms"]}, Empirical, 3e-3,
         ((2e-3) ** 2 + (1e-3) ** 2 + (3e-3) ** 2) / 3),
    ],
)
def test_mean_and_variance_match_the_sampler(
    spec: dict[str, Any], kind: type, mean: float, variance: float
) -> None:
    dist = from_yaml(spec)
    assert isinstance(dist, kind)
    assert dist.mean == pytest.approx(mean, rel=1e-12)
    assert dist.variance == pytest.approx(variance, rel=1e-12, abs=1e-30)
    x = draws(dist)
    assert len(x) == N > BATCH  # several batches
    assert (x >= 0).all()
    # sample mean within ~5 standard errors; sample variance within a few percent
    stderr = math.sqrt(variance / N)
    assert abs(x.mean() - mean) <= 5 * stderr + 1e-15
    assert x.var() == pytest.approx(variance, rel=0.05, abs=1e-30)


def test_sampler_is_reproducible_per_generator() -> None:
    dist = from_yaml({"dist": "exponential", "mean": "5ms"})
    assert (draws(dist, seed=3, n=5000) == draws(dist, seed=3, n=5000)).all()
    assert not (draws(dist, seed=3, n=100) == draws(dist, seed=4, n=100)).all()



@pytest.mark.parametrize("dist", [{"dist": "exponential", "mean": "5ms"},
                                  {"dist": "constant", "value": "2ms"}])
def test_next_values_are_what_as_many_calls_give(dist: dict) -> None:
    """Settling a quiet pod takes a chunk of service times at once (npsim/sim/pods.py):
    they must be the values, in the order, that one call per request gives, across
    batch boundaries, and later calls go on from there."""
    one, many = (from_yaml(dist).sampler(np.random.default_rng(8)) for _ in range(2))
    expected = [one() for _ in range(3 * BATCH + 7)]
    got = next_values(many, 5) + next_values(many, 3 * BATCH) + [many(), many()]
    assert got == expected

def test_lognormal_shape() -> None:
    # mean and cv (what one measures) give the log-space parameters
    x = draws(from_yaml({"dist": "lognormal", "mean": "1ms", "cv": 1.0}))
    sigma = math.sqrt(math.log(2.0))
    assert np.log(x).std() == pytest.approx(sigma, rel=0.02)
    assert np.median(x) == pytest.approx(1e-3 / math.sqrt(2.0), rel=0.02)


@pytest.mark.parametrize(("text", "value"), [("5ms", 5e-3), ("1.5s", 1.5), ("40us", 40e-6)])
def test_bare_duration_is_a_constant(text: str, value: float) -> None:
    dist = from_yaml(text)
    assert isinstance(dist, Constant)
    assert dist.value == pytest.approx(value, rel=1e-12)
    assert (dist.mean, dist.variance) == (dist.value, 0.0)
    assert set(draws(dist, n=10)) == {dist.value}


def test_describe() -> None:
    assert from_yaml({"dist": "exponential", "mean": "5ms"}).describe() == "exponential(mean 5ms)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dist": "gamma", "mean": "5ms"},
         "unknown distribution 'gamma'; known: exponential, constant, lognormal, uniform, "
         "empirical"),
        ({"mean": "5ms"}, "missing 'dist': name one of exponential"),
        ("5", "expected a duration such as '300s'"),
        (5, "a duration needs a unit"),
        ({"dist": "exponential", "mean": 5}, "a duration needs a unit"),
        ({"dist": "exponential", "mean": "0s"}, "greater than 0"),
        ({"dist": "exponential"}, "Field required"),
        ({"dist": "exponential", "mean": "5ms", "cv": 1}, "Extra inputs are not permitted"),
        ({"dist": "lognormal", "mean": "1ms", "cv": 0}, "greater than 0"),
        ({"dist": "uniform", "low": "3ms", "high": "1ms"}, "high must be >= low"),
        ({"dist": "empirical"}, "give exactly one of 'samples'"),
        ({"dist": "empirical", "samples": ["1ms"], "file": "x.txt"},
         "give exactly one of 'samples'"),
        ({"dist": "empirical", "samples": [1]}, "a duration needs a unit"),
        ({"dist": "empirical", "file": "x.txt", "unit": "days"}, "Input should be 'ns'"),
    ],
)
def test_invalid_distributions(spec: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        from_yaml(spec)
    assert message in str(info.value)


# --- empirical samples from a file ------------------------------------------------------


def test_empirical_from_file_with_unit(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "svc-ms.txt").write_text(
        "# service times measured with wrk, in milliseconds\n"
        "1.5\n"
        "\n"
        "2.5   # a slow one\n"
        "  2\n"
    )
    dist = from_yaml({"dist": "empirical", "file": "data/svc-ms.txt", "unit": "ms"})
    assert dist.samples == ()
    resolved = dist.resolved(tmp_path)  # paths are relative to the scenario folder
    assert resolved.samples == pytest.approx((1.5e-3, 2.5e-3, 2e-3))
    assert resolved.file is None
    assert resolved.mean == pytest.approx(2e-3)
    assert resolved.variance == pytest.approx(np.var([1.5e-3, 2.5e-3, 2e-3]))
    assert set(draws(resolved, n=1000)) == set(resolved.samples)


def test_empirical_file_default_unit_is_seconds(tmp_path: Path) -> None:
    (tmp_path / "s.txt").write_text("0.25\n0.75\n")
    dist = from_yaml({"dist": "empirical", "file": "s.txt"}).resolved(tmp_path)
    assert dist.mean == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("text", "message"),
    [("1\nabc\n", ":2: not a number (one value per line"),
     ("# nothing\n\n", "no samples in the file")],
)
def test_empirical_file_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "bad.txt").write_text(text)
    dist = from_yaml({"dist": "empirical", "file": "bad.txt", "unit": "ms"})
    with pytest.raises(ValueError, match="bad.txt") as info:
        dist.resolved(tmp_path)
    assert message in str(info.value)


SCENARIO = scenario_text(
    name="empirical-files", nodes=["{name: node-1}"],
    cluster="network:\n  sameNode: {dist: empirical, file: data/hop-us.txt, unit: us}",
    ports="{port: 80, nodePort: 30080}",
    pod_spec="containers: [{name: web, ports: [{containerPort: 80}]}]",
    workloads={"web": "serviceTime: {dist: empirical, file: data/svc-ms.txt, unit: ms}"},
    clients=["""\
        name: open
        service: web
        arrival: {rate: 10/s}
        rtt: {dist: empirical, file: data/rtt-ms.txt, unit: ms}""", """\
        name: closed
        service: web
        arrival:
          users: 2
          thinkTime: {dist: empirical, file: data/think-s.txt}"""])


def test_every_empirical_file_in_a_scenario_is_read(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    for name, text in {"hop-us.txt": "10\n30\n", "svc-ms.txt": "1\n3\n",
                       "rtt-ms.txt": "4\n", "think-s.txt": "0.5\n1.5\n"}.items():
        (tmp_path / "data" / name).write_text(text)
    (tmp_path / "s.yaml").write_text(SCENARIO)
    spec = load_scenario(tmp_path / "s.yaml").spec
    assert spec.cluster.network.same_node.mean == pytest.approx(20e-6)
    assert spec.workloads["web"].service_time.mean == pytest.approx(2e-3)
    assert spec.clients[0].rtt.mean == pytest.approx(4e-3)
    assert spec.clients[1].arrival.think_time.mean == pytest.approx(1.0)


def test_missing_empirical_files_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "s.yaml")
    got = [(p.mark.line, p.path) for p in info.value.problems]
    assert got == [
        (line_of(SCENARIO, "hop-us.txt"), "cluster.network.sameNode.file"),
        (line_of(SCENARIO, "svc-ms.txt"), "workloads.web.serviceTime.file"),
        (line_of(SCENARIO, "rtt-ms.txt"), "clients[0].rtt.file"),
        (line_of(SCENARIO, "think-s.txt"), "clients[1].arrival.thinkTime.file"),
    ]
    assert all("samples file not found" in p.message for p in info.value.problems)
