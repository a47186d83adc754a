"""The README's capacity-planning section answers its question in one command; this
runs that command, as the README writes it, and checks what it prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from npsim.cli import main

ROOT = Path(__file__).resolve().parents[2]


def readme_section() -> tuple[list[str], list[str]]:
    """The command (argv after ``npsim``) and the printed lines the section quotes."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("### Capacity planning with a node down"):]
    command, printed = re.findall(r"```(?:sh)?\n(.*?)```", section, re.S)[:2]
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[0] == "npsim"
    lines = [line for line in printed.splitlines() if line.strip() and line.strip() != "..."]
    return argv[1:], lines


def test_the_readme_quotes_one_command_and_its_answer() -> None:
    argv, lines = readme_section()
    assert argv[:2] == ["plan", "scenarios/capacity-n-minus-1.yaml"]
    assert "--each-node-down" in argv
    assert lines[-1] == "answer: deployments.nginx.replicas = 12"


@pytest.mark.slow
def test_the_readme_capacity_command_prints_what_the_readme_says(monkeypatch) -> None:
    """About 90 runs of 10 s at 2,000 req/s (20 s of CPU)."""
    monkeypatch.chdir(ROOT)
    argv, lines = readme_section()
    result = CliRunner().invoke(main, [*argv, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    printed = result.output.splitlines()
    for line in lines:  # every line the README shows, verbatim
        assert line in printed, line
    assert max(len(line) for line in printed) <= 100
