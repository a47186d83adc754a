"""``--allow-outside-files`` on every command that loads a scenario: a sweep or a plan of a
scenario whose sample file sits beside its folder (a team's shared measurements) is
refused without the flag, as run and validate refuse it, and works with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from npsim.cli import main

NGINX = Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "nginx.yaml"

SCENARIO = """\
name: shared-samples
cluster:
  nodes: [{name: node-1}, {name: node-2}]
manifests: [nginx.yaml]
workloads:
  nginx: {serviceTime: {dist: empirical, file: ../measured.txt}, placement: spread}
clients:
  - {name: users, service: nginx-nodeport, arrival: {rate: 200/s}}
run: {duration: 1s, replications: 2}
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    (tmp_path / "measured.txt").write_text("0.001\n0.002\n0.0015\n", "utf-8")
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "nginx.yaml").write_text(NGINX.read_text("utf-8"), "utf-8")
    path = folder / "scenario.yaml"
    path.write_text(SCENARIO, "utf-8")
    return path


COMMANDS = {
    "sweep": lambda path, out: ["sweep", str(path), "--out", str(out), "--jobs", "1"],
    "plan": lambda path, out: ["plan", str(path), "--target", "latency_p99 < 1s",
                               "--vary", "deployments.nginx.replicas=1..2",
                               "--replications", "2", "--jobs", "1"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_outside_files_need_the_flag(command: str, scenario: Path, tmp_path: Path) -> None:
    args = COMMANDS[command](scenario, tmp_path / "out")
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 2, refused.output
    assert "outside the scenario's folder" in refused.output
    assert "--allow-outside-files" in refused.output
    assert not (tmp_path / "out").exists()
    allowed = CliRunner().invoke(main, [*args, "--allow-outside-files"])
    assert allowed.exit_code == 0, allowed.output
    if command == "sweep":
        assert (tmp_path / "out" / "sweep.html").is_file()
    else:
        assert "replicas = 1" in allowed.output
