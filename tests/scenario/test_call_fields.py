"""A call's own fields, as a new user writes them (npsim/scenario/calls_spec.py): each
mistake is one placed problem that names the field and what it accepts, as the same
mistake in a ``clients:`` population is."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import npsim
from npsim.scenario.problems import ScenarioError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sim"))
from test_calls import two_tier  # noqa: E402


def error(call: dict[str, Any]) -> str:
    d = two_tier(nodes=1)
    d["workloads"]["web"]["calls"] = [{"service": "backend", "port": 9000, **call}]
    with pytest.raises(ScenarioError) as info:
        npsim.scenario_from_dict(d)
    return str(info.value)


def test_a_misspelt_retry_reason_is_refused_as_for_clients():
    """``retryOn: [timeout]`` (for request_timeout) would never retry anything: a
    client population refuses it, and so must a call."""
    text = error({"retries": {"attempts": 2, "retryOn": ["timeout", "request_timeout"]}})
    assert "workloads.web.calls[0]" in text
    assert "retries.retryOn: unknown failure reason(s) timeout" in text
    assert "request_timeout" in text.split("known:")[1]  # the known ones are listed
    assert text.startswith("1 problem")


def test_known_retry_reasons_of_a_call_are_accepted():
    d = two_tier(nodes=1)
    d["workloads"]["web"]["calls"] = [{"service": "backend", "port": 9000, "retries": {
        "retryOn": ["request_timeout", "connect_timeout", "downstream_failed"]}}]
    npsim.scenario_from_dict(d)


@pytest.mark.parametrize("count, where, words", [
    # a distribution's own mistake, without a word about whole numbers
    ({"dist": "poisson", "mean": -2}, "calls[0].count.mean",
     "Input should be greater than or equal to 0"),
    ({"dist": "normal", "mean": 2}, "calls[0].count.dist", "'poisson' or 'uniform'"),
    # a number that is no whole number, without pydantic's class names
    (2.5, "calls[0].count", "a valid integer, got a number with a fractional part"),
])
def test_a_bad_count_is_one_problem_about_what_was_written(count, where, words):
    text = error({"count": count})
    assert text.startswith("1 problem"), text
    assert f"{where}: " in text and words in text, text
    assert "CountSpec" not in text and "instance of" not in text, text


def _with_loadgen(calls_of_loadgen: bool) -> npsim.Scenario:
    """The two tiers plus a load generator's Deployment that no Service selects, as
    ``npsim import`` writes one (its env names the frontend)."""
    d = two_tier(nodes=1)
    d["manifests"].append({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "loadgen"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "loadgen"}},
                 "template": {"metadata": {"labels": {"app": "loadgen"}},
                              "spec": {"containers": [{"name": "main"}]}}}})
    d["workloads"]["loadgen"] = {"workers": 1, "serviceTime": "1ms"}
    if calls_of_loadgen:
        d["workloads"]["loadgen"]["calls"] = [{"service": "backend", "port": 9000}]
    return npsim.scenario_from_dict(d)


def test_calls_nothing_can_set_off_are_a_warning():
    """Uncommenting every call ``npsim import`` proposed gives the load generator (a
    Deployment no Service selects) calls that no request ever makes: the run is silent
    about them, so validation says so, at the calls."""
    warned = [w for w in _with_loadgen(True).warnings if w.path == "workloads.loadgen.calls"]
    assert len(warned) == 1
    assert "never" in warned[0].message and "no Service selects" in warned[0].message
    # the frontend's calls are made (clients reach it): no such warning
    assert not [w for w in _with_loadgen(True).warnings if "never" in w.message
                and w.path != "workloads.loadgen.calls"]
    assert not [w for w in _with_loadgen(False).warnings if "never" in w.message]


def _slice_backed(d: dict[str, Any]) -> dict[str, Any]:
    """A selector-less Service db whose EndpointSlice lists the hand-placed pod of
    the workload db-backends, which calls backend."""
    d["manifests"] += [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
         "spec": {"type": "NodePort", "ports": [{"name": "sql", "port": 5432,
                                                 "nodePort": 30432}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
         "addressType": "IPv4", "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}],
         "endpoints": [{"addresses": ["10.244.0.50"], "nodeName": "node-1"}]}]
    d["workloads"]["db-backends"] = {"serviceTime": "1ms", "pods": [
        {"node": "node-1", "ip": "10.244.0.50"}],
        "calls": [{"service": "backend", "port": 9000}]}
    return d


def test_a_cycle_through_a_selector_less_service_is_found():
    d = _slice_backed(two_tier(nodes=1))
    d["workloads"]["backend"]["calls"] = [{"service": "db", "port": 5432}]
    with pytest.raises(ScenarioError, match="cycle .*: backend -> db-backends -> backend"):
        npsim.scenario_from_dict(d)


def test_pods_behind_a_selector_less_services_slice_make_their_calls_without_warning():
    """Hand-placed pods reached through a selector-less Service's EndpointSlice are
    reached: their calls are made (and validation does not call them unmade)."""
    d = _slice_backed(two_tier(nodes=1))
    d["clients"].append({"name": "sql", "service": "db", "arrival": {"rate": "50/s"}})
    scenario = npsim.scenario_from_dict(d)
    assert not [w for w in scenario.warnings if "never made" in w.message]
    req = npsim.run(scenario).requests
    assert (req["population"] == "db-backends>backend:9000").sum() > 10


def test_a_step_that_is_no_mapping_names_no_python_class():
    """``- backend`` (a bare name for a call) said "Input should be a valid dictionary
    or instance of CallSpec": the class is npsim's, not the user's."""
    d = two_tier(nodes=1)
    d["workloads"]["web"]["calls"] = ["backend"]
    with pytest.raises(ScenarioError) as info:
        npsim.scenario_from_dict(d)
    text = str(info.value)
    assert "workloads.web.calls[0]: Input should be a valid dictionary" in text
    assert "instance of" not in text and "CallSpec" not in text


@pytest.mark.parametrize("field", ["timeout", "connectTimeout"])
def test_a_zero_deadline_is_refused_with_what_to_write_instead(field: str) -> None:
    """0 would fail every call at once (gRPC's deadline); some HTTP clients read 0 as no
    timeout. Either way the user meant something else: no deadline is no field."""
    text = error({field: "0s"})
    assert f"{field}: must be more than 0s" in text and "leave the field out" in text


@pytest.mark.parametrize("field", ["requestTimeout", "connectTimeout"])
def test_a_clients_zero_deadline_is_refused_too(field: str) -> None:
    d = two_tier(nodes=1)
    d["clients"][0][field] = "0s"
    with pytest.raises(ScenarioError, match=f"clients\\[0\\].{field}: must be more than 0s"):
        npsim.scenario_from_dict(d)
