"""Changing a scenario by YAML key path (``with_changes``, ``--set``) and by attribute:
validated like the file, errors naming the path, never a raw pydantic or Python error."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import npsim
from npsim.cli import main
from npsim.scenario.changes import parse_assignment, parse_path

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


@pytest.fixture(scope="module")
def base() -> npsim.Scenario:
    return npsim.load_scenario(QUICKSTART)


def report(exc: pytest.ExceptionInfo[npsim.ScenarioError]) -> str:
    return exc.value.report()


def test_paths_read_keys_indexes_and_names() -> None:
    assert parse_path("clients[0].arrival.rate") == ["clients", 0, "arrival", "rate"]
    assert parse_path("cluster.nodes[node-1].cpu") == ["cluster", "nodes", "node-1", "cpu"]
    assert parse_path('metadata.annotations["a.b/c"]') == ["metadata", "annotations", "a.b/c"]
    assert parse_assignment("clients[0].arrival.rate=3000/s") == ("clients[0].arrival.rate",
                                                                   "3000/s")
    assert parse_assignment("cluster.ipvs={scheduler: lc}") == ("cluster.ipvs",
                                                               {"scheduler": "lc"})


def test_with_changes_applies_yaml_paths_and_leaves_the_original(base) -> None:
    changed = base.with_changes({"cluster.proxyMode": "ipvs", "deployments.nginx.replicas": 6,
                                 "clients[users].arrival.rate": "3000/s",
                                 "workloads.nginx.workers": 8, "cluster.nodes": 5})
    assert changed.cluster.proxy_mode == "ipvs"
    assert changed.deployments["nginx"].replicas == 6
    assert changed.clients[0].arrival.rate == 3000.0
    assert changed.workloads["nginx"].workers == 8
    assert [n.name for n in changed.cluster.nodes][-2:] == ["node-4", "node-5"]
    assert changed.cluster.nodes[-1].zone == base.cluster.nodes[-1].zone
    assert base.cluster.proxy_mode == "iptables" and base.deployments["nginx"].replicas == 4


def test_an_unchanged_copy_runs_exactly_like_the_original(base) -> None:
    small = base.with_changes({"run.duration": "1s", "run.warmup": 0,
                               "clients[0].arrival.rate": "300/s"})
    same = small.with_changes({})
    a, b = npsim.run(small), npsim.run(same)
    assert a.requests.equals(b.requests)


def test_with_changes_errors_name_the_changed_paths(base) -> None:
    with pytest.raises(npsim.ScenarioError) as exc:
        base.with_changes({"deployments.nginx.replicas": -3, "workloads.nginx.workers": "x",
                           "cluster.proxymode": "ipvs", "clients[bob].arrival.rate": "1/s"})
    text = report(exc)
    assert "deployments.nginx.replicas (set to -3): Invalid value: -3" in text
    assert "workloads.nginx.workers (set to 'x')" in text
    assert "did you mean proxyMode?" in text
    assert "no item named 'bob' in clients (names: users)" in text
    assert "Traceback" not in text and "pydantic" not in text


# the three bugs of issue 9


def test_assigning_a_yaml_key_works_and_a_typo_gets_a_hint(base) -> None:
    scenario = base.copy()
    scenario.cluster.proxyMode = "ipvs"
    assert scenario.cluster.proxy_mode == "ipvs"
    with pytest.raises(npsim.ScenarioError) as exc:
        scenario.cluster.proxymode = "ipvs"
    assert "cluster.proxymode: no such field; did you mean" in report(exc)
    with pytest.raises(npsim.ScenarioError) as exc:
        scenario.clients[0].arrival.rate = "fast"
    assert "clients[0].arrival.rate: expected a rate such as '500/s'" in report(exc)


def test_assigning_a_whole_section_reaches_the_spec(base) -> None:
    scenario = base.copy()
    scenario.run = {"duration": "2s", "seed": 5}
    assert scenario.spec.run.seed == 5 and scenario.spec.run.duration == 2.0
    with pytest.raises(npsim.ScenarioError) as exc:
        scenario.run = {"duration": "soon"}
    assert report(exc).splitlines()[1].startswith("  run.duration")
    with pytest.raises(npsim.ScenarioError, match=r"\n  run.seed: "):
        scenario.run.seed = -1  # the new section knows where it sits


@pytest.mark.parametrize("value", ["x", -3, 2.5, True])
def test_manifest_assignments_are_validated_like_the_manifest(base, value) -> None:
    scenario = base.copy()
    with pytest.raises(npsim.ScenarioError) as exc:
        scenario.deployments["nginx"].replicas = value
    assert report(exc).splitlines()[1].startswith("  deployments.nginx.replicas")
    assert scenario.deployments["nginx"].replicas == 4  # left as it was
    scenario.deployments["nginx"].replicas = 2
    assert scenario.deployments["nginx"].replicas == 2


def test_service_assignments_are_validated(base) -> None:
    scenario = base.copy()
    with pytest.raises(npsim.ScenarioError) as exc:
        scenario.services["nginx-nodeport"].external_traffic_policy = "Sometimes"
    assert "services.nginx-nodeport.external_traffic_policy" in report(exc)
    assert 'Unsupported value: "Sometimes"' in report(exc)


def test_cli_set_changes_the_run_and_reports_bad_paths(tmp_path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["run", str(QUICKSTART), "--no-save", "--set", "run.duration=1s",
                              "--set", "run.warmup=0", "--set",
                              "clients[0].arrival.rate=200/s"])
    assert ok.exit_code == 0, ok.output
    assert "simulated 1s" in ok.output
    typo = runner.invoke(main, ["run", str(QUICKSTART), "--no-save", "--set", "run.duration=1s",
                                "--set", "run.warmup=0", "--set", "deployments.nginx.replicaz=3"])
    assert "warning: --set: deployments.nginx.replicaz (set to 3): not modelled by npsim; " \
           "ignored; did you mean replicas?" in typo.output
    bad = runner.invoke(main, ["run", str(QUICKSTART), "--no-save", "--set",
                               "workloads.nginx.workers=x", "--set", "nope"])
    assert bad.exit_code == 2
    assert "--set 'nope': expected PATH=VALUE" in bad.output
    bad = runner.invoke(main, ["run", str(QUICKSTART), "--no-save", "--set",
                               "workloads.nginx.workers=x"])
    assert bad.exit_code == 2
    assert "workloads.nginx.workers (set to 'x'): Input should be a valid integer" in bad.output
    assert "Traceback" not in bad.output


def test_set_values_are_read_with_the_bounded_yaml_reader() -> None:
    """An alias bomb hung ``--set``, a 500-deep list raised RecursionError, a 44-digit
    count reached a SystemError."""
    from npsim.scenario.changes import ChangeError

    bomb = ["a: &a [1,1,1,1,1,1,1,1,1,1]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]"
        for i in range(6)]
    for value, words in (("{" + ", ".join(bomb) + "}", "alias bomb"),
                         ("[" * 500 + "]" * 500, "nested more than 100 levels"),
                         ("9" * 44, "more than 40 digits")):
        with pytest.raises(ChangeError, match=words):
            parse_assignment(f"run={value}")
    assert parse_assignment("name=null") == ("name", None)


def test_a_node_count_past_the_limit_is_refused_before_the_nodes_are_made(base) -> None:
    with pytest.raises(npsim.ScenarioError, match="10,000,000,000 nodes is more than the "
                                                  "limit of 5,000"):
        base.with_changes({"cluster.nodes": 10**10})
    with pytest.raises(npsim.ScenarioError, match="12 nodes is more than the limit of 10"):
        base.with_changes({"run.limits": {"maxNodes": 10}, "cluster.nodes": 12})
    assert len(base.with_changes({"cluster.nodes": 8}).cluster.nodes) == 8


def test_limits_on_a_changed_scenario_point_at_the_user_s_file(tmp_path) -> None:
    """A --set run over a limit named 'quickstart.yaml (changed):165:1', a line of
    generated text; now the line of the key in the file the user wrote."""
    result = CliRunner().invoke(main, ["validate", str(QUICKSTART), "--max-requests", "10"])
    assert result.exit_code == 2
    line = next(x for x in result.output.splitlines() if "run.duration" in x)
    result = CliRunner().invoke(main, ["run", str(QUICKSTART), "--no-save", "--max-requests",
                                       "10", "--set", "workloads.nginx.workers=8"])
    assert result.exit_code == 2 and line in result.output and "(changed)" not in result.output


def test_yaml_keys_read_as_attributes_too() -> None:
    """README: YAML keys work as attribute names, for reading as for assigning."""
    scenario = npsim.load_scenario(QUICKSTART)
    assert scenario.cluster.proxyMode == scenario.cluster.proxy_mode == "iptables"
    assert scenario.clients[0].requestsPerConnection == 1
    scenario.cluster.proxyMode = "ipvs"
    assert scenario.cluster.proxyMode == "ipvs"
    with pytest.raises(AttributeError, match="cluster.proxyMod: no such field; did you mean "
                                             "proxyMode"):
        _ = scenario.cluster.proxyMod
    assert not hasattr(scenario.cluster, "noSuchKey")
