"""``with_changes`` re-reads only what the user set plus the change (npsim/scenario/
userset.py): defaults stay defaults, so those derived from the run are derived again."""

from __future__ import annotations

import pytest
import yaml
from conftest import scenario_dict

import npsim
from npsim.results.result import resolved_yaml
from npsim.scenario.series import bucket_before_run


@pytest.mark.parametrize("name", npsim.bundled_names())
def test_an_unchanged_copy_is_the_same_scenario_with_the_same_keys_set(name) -> None:
    scenario = npsim.bundled(name)
    same = scenario.with_changes({})
    assert same.to_dict() == scenario.to_dict()
    assert same.spec.run.model_fields_set == scenario.spec.run.model_fields_set
    assert same.spec.model_fields_set == scenario.spec.model_fields_set


def test_a_set_run_length_derives_its_bucket_as_the_file_would() -> None:
    quick = npsim.bundled("quickstart")
    assert "timeseries_bucket" not in quick.spec.run.model_fields_set
    day = quick.with_changes({"run.duration": "24h"})
    # 86,400 s in at most 3,600 buckets: 24 s, the next 1-2-5 step is 50 s (was 1 s)
    assert bucket_before_run(day.spec.run) == 50.0
    assert bucket_before_run(quick.with_changes({"run.duration": "10s"}).spec.run) == 0.2
    fixed = quick.with_changes({"run.duration": "24h", "run.timeseriesBucket": "1s"})
    assert bucket_before_run(fixed.spec.run) == 1.0
    assert bucket_before_run(fixed.with_changes({"run.seed": 2}).spec.run) == 1.0


def test_a_default_section_changed_in_place_keeps_the_change() -> None:
    scenario = npsim.bundled("quickstart")
    scenario.run.limits.maxNodes = 50
    changed = scenario.with_changes({"cluster.nodes": 40})
    assert changed.run.limits.max_nodes == 50 and len(changed.cluster.nodes) == 40
    with pytest.raises(npsim.ScenarioError, match="limit of 50"):
        scenario.with_changes({"cluster.nodes": 60})


def test_a_change_inside_a_default_section_and_typo_hints_still_work() -> None:
    scenario = npsim.bundled("quickstart")
    changed = scenario.with_changes({"run.limits.maxPods": 100})
    assert changed.run.limits.max_pods == 100
    with pytest.raises(npsim.ScenarioError, match="did you mean timeseriesBucket"):
        scenario.with_changes({"run.timeseriesBuckt": "2s"})


def tls_in_pod() -> npsim.Scenario:
    data = scenario_dict(duration=2.0)
    data["clients"][0]["tls"] = {"terminate": "pod", "handshakeCpu": "1ms"}
    return npsim.scenario_from_dict(data)


def test_balancer_cores_left_out_stay_left_out_through_changes() -> None:
    changed = tls_in_pod().with_changes({"run.seed": 3})
    assert "balancer_cores" not in changed.clients[0].tls.model_fields_set
    with pytest.raises(npsim.ScenarioError, match="no effect: TLS is terminated in the pod"):
        tls_in_pod().with_changes({"clients[0].tls.balancerCores": 4})


def test_the_resolved_yaml_writing_every_default_is_read_back() -> None:
    # resolved YAML writes balancerCores: 2 (the default); it is no "no effect" error
    text = resolved_yaml(tls_in_pod())
    assert "balancerCores: 2" in text
    assert npsim.scenario_from_dict(yaml.safe_load(text)).clients[0].tls.terminate == "pod"
