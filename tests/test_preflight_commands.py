"""Every command that simulates makes the checks ``npsim run`` and ``validate`` make,
under the same limits: ``explain --at`` ran a scenario with none (a rate of 1e12/s
hung) and showed a ScenarioError traceback where ``validate`` printed the problem;
``plan`` took a STEP of 0 (issue 22)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from conftest import scenario_file
from scenario_files import scenario_text

from npsim.cli import main

NODES = ("{name: n1, zone: a, podCIDR: 10.1.1.0/29}",  # 5 pods each
         "{name: n2, zone: a, podCIDR: 10.1.2.0/29}")


def write(tmp_path: Path, rate: str = "50/s", replicas: int = 2) -> Path:
    return scenario_file(tmp_path, scenario_text(
        name="robust", nodes=NODES, replicas=replicas, run="{duration: 10s}",
        clients=[f"{{name: users, service: web, arrival: {{rate: {rate}}}}}"]))


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_explain_at_refuses_a_run_validate_refuses(tmp_path: Path) -> None:
    path = write(tmp_path, rate="1e12/s")
    for args in (["validate", str(path)], ["explain", str(path), "--at", "1s"]):
        code, output = cli(*args)
        assert code == 2, output
        assert "scenario.yaml:" in output and "more than the limit of 100,000,000" in output
    # the estimate covers what explain simulates (1 s of 10 s), not the whole run
    code, output = cli("explain", str(write(tmp_path, rate="2e8/s")), "--at", "1s")
    assert code == 2
    assert "would generate 200,000,000 requests" in output


def test_explain_reports_a_problem_as_validate_does(tmp_path: Path) -> None:
    """Pods the nodes' pod CIDRs cannot hold: a placed problem, not a traceback."""
    path = write(tmp_path, replicas=30)
    outputs = []
    for args in (["validate", str(path)], ["explain", str(path)],
                 ["explain", str(path), "--at", "1s"]):
        code, output = cli(*args)
        assert code == 2, output
        assert "Traceback" not in output
        outputs.append(output)
    assert "has room for 5 pods" in outputs[0]
    assert outputs[1] == outputs[2] == outputs[0]


def test_plan_refuses_a_step_of_zero(tmp_path: Path) -> None:
    path = write(tmp_path)
    for vary in ("deployments.web.replicas=1..4:0", "clients[0].arrival.rate=10/s..20/s:0/s"):
        code, output = cli("plan", str(path), "--target", "latency_p99 < 50ms",
                           "--vary", vary)
        assert code == 2
        assert "STEP must be > 0" in output
