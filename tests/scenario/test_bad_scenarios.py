"""Malformed scenario files: every problem is reported at once, placed and explained.

Each file in ``bad/`` is a small variation of the quick start. For each we expect the
exact set of problems, as (file, line, field path fragment, message fragment), from
``load_scenario``, and from the CLI: exit 2, no traceback, file and line named, nothing
written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from npsim.cli import main
from npsim.scenario.loader import load_scenario
from npsim.scenario.problems import ScenarioError

BAD = Path(__file__).parent / "bad"

# file -> every expected problem: (file the mark names, line, path fragment, message fragment)
# ``None`` as the file means the scenario file itself.
Expected = tuple[str | None, int, str, str]
CASES: dict[str, list[Expected]] = {
    "yaml_syntax.yaml": [
        (None, 7, "", "YAML syntax error: expected ',' or '}', but got ':' "
                      "(while parsing a flow mapping at line 6, column 7)"),
    ],
    "duplicate_key.yaml": [
        (None, 13, "workloads.nginx.workers", "duplicate key 'workers' (first at line 11)"),
    ],
    "unknown_key.yaml": [
        (None, 11, "workloads.nginx.workres", "unknown field (check the spelling"),
    ],
    "duration_no_unit.yaml": [
        (None, 18, "run.duration", "a duration needs a unit: write '60s' or '60ms'"),
    ],
    "bad_rate.yaml": [
        (None, 17, "clients[0].arrival.rate", "expected a rate such as '500/s'"),
    ],
    "unknown_dist.yaml": [
        (None, 12, "workloads.nginx.serviceTime", "unknown distribution 'gamma'; known: "
                                                  "exponential, constant"),
    ],
    "missing_clients.yaml": [
        (None, 2, "clients", "Field required"),
    ],
    "placement_unknown_node.yaml": [
        (None, 15, "workloads.nginx.placement.node-9", "unknown node 'node-9'"),
    ],
    "bad_events.yaml": [
        (None, 18, "events[0].nodeCrash.node", "unknown node 'node-9' (nodes: node-1, node-2)"),
        (None, 19, "events[1].podHang.pod", "no pod named 'nginx-7' at the start of the run"),
    ],
    "bad_event_kind.yaml": [
        (None, 18, "events[0]", "'until' must be later than 'at'"),
        (None, 19, "events[1]", "give exactly one event kind"),
    ],
    "placement_sum.yaml": [
        (None, 13, "workloads.nginx.placement",
         "placement puts 3 pods but Deployment 'nginx' has replicas: 4"),
    ],
    "client_unknown_service.yaml": [
        (None, 15, "clients[0].service",
         "no Service named 'nginx-svc' among the manifests (known: nginx-nodeport)"),
    ],
    "manifest_not_found.yaml": [
        (None, 8, "manifests[0]", "manifest file not found: "),
    ],
    "manifest_file_error.yaml": [
        ("manifests/broken-service.yaml", 12, "spec.ports[0].protocol",
         'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ],
    "nodeport_range.yaml": [
        (None, 19, "manifests[0].spec.ports[0].nodePort",
         "Invalid value: 80: provided port is not in the valid range. "
         "The range of valid ports is 30000-32767"),
    ],
    "unnamed_ports.yaml": [
        (None, 17, "manifests[0].spec.ports[0].name", "Required value"),
        (None, 20, "manifests[0].spec.ports[1].name", "Required value"),
    ],
    "duration_and_requests.yaml": [
        (None, 19, "run.requests", "give either 'duration' or 'requests', not both"),
    ],
    "warmup_too_long.yaml": [
        (None, 19, "run.warmup", "warmup (1m) must be shorter than duration (1m)"),
    ],
    "empirical_file_missing.yaml": [
        (None, 17, "clients[0].rtt.file", "samples file not found: "),
    ],
    "multiple_problems.yaml": [
        (None, 18, "manifests[1].spec.ports[0].nodePort",
         "provided port is not in the valid range"),
        (None, 21, "workloads.nginx.workres", "unknown field"),
        (None, 22, "workloads.nginx.serviceTime.mean", "write '5s' or '5ms'"),
        (None, 26, "clients[0].arrival.rate", "got 'fast'"),
        (None, 28, "run.duration", "a duration needs a unit"),
    ],
}


def test_every_bad_file_has_a_case() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(CASES)
    assert len(CASES) >= 12


def _marked_file(scenario: Path, expected_file: str | None) -> Path:
    return scenario if expected_file is None else scenario.parent / expected_file


@pytest.mark.parametrize("name", sorted(CASES))
def test_load_scenario_reports_every_problem(name: str) -> None:
    path = BAD / name
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    problems = info.value.problems
    expected = CASES[name]
    shown = "\n".join(str(p) for p in problems)
    # all of them at once, and nothing else (no follow-on noise)
    assert len(problems) == len(expected), shown
    for (file, line, field, message), problem in zip(expected, problems, strict=True):
        assert problem.mark is not None, shown
        assert Path(problem.mark.file) == _marked_file(path, file), shown
        assert problem.mark.line == line, shown
        assert problem.mark.column >= 1
        assert field in problem.path, shown
        assert message in problem.message, shown
    # the report lists them in file order, each as file:line:column: path: message
    report = info.value.report()
    assert report.startswith(f"{len(expected)} problem")
    assert "nothing was run" in report
    for problem in problems:
        assert f"{problem.mark.file}:{problem.mark.line}:{problem.mark.column}: " in report


def test_multiple_problems_are_in_file_order() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(BAD / "multiple_problems.yaml")
    lines = [p.mark.line for p in info.value.problems]
    assert lines == sorted(lines)


def _cli(args: list[str]) -> tuple[int, str]:
    """Exit code and terminal output (stdout and stderr) of ``npsim ARGS``."""
    result = CliRunner().invoke(main, args)
    # an exception escaping the command would be a traceback for a real user
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result.exit_code, result.output


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_validate_and_run_exit_2_and_write_nothing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # so a default results/ folder would land here
    path = BAD / name
    out = tmp_path / "out"
    for args in (["validate", str(path)], ["run", str(path), "--out", str(out)]):
        code, output = _cli(args)
        assert code == 2, output
        assert "Traceback" not in output
        for file, line, field, message in CASES[name]:
            assert f"{_marked_file(path, file)}:{line}:" in output, output
            assert field in output
            assert message in output
        assert not out.exists()
        assert list(tmp_path.iterdir()) == [], "nothing may be written"


@pytest.mark.parametrize("name", ["multiple_problems.yaml", "yaml_syntax.yaml"])
def test_cli_process_prints_no_traceback(name: str, tmp_path: Path) -> None:
    """The real console script, in a process of its own (what a user sees)."""
    npsim = Path(sys.executable).parent / "npsim"
    out = tmp_path / "out"
    proc = subprocess.run([str(npsim), "run", str(BAD / name), "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert f"{BAD / name}:" in proc.stderr
    assert proc.stdout == ""
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_scenario_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(missing)
    assert str(info.value.problems[0]) == f"{missing}: no such scenario file"
    code, output = _cli(["validate", str(missing)])
    assert code == 2
    assert "no such scenario file" in output
    assert "Traceback" not in output
