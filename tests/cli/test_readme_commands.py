"""README's "Command line" table and its sweep example, held to the code a user runs.

A new user copies from the README: a flag the table leaves out is one they never find,
and an example the loader refuses is the first thing they try (the variants block named
a baseline, `iptables`, that its own grid renamed to `iptables,workers=2`)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

import npsim
from npsim.cli import COMMANDS, main
from npsim.sweep.variants import expand

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def command_table() -> str:
    start = README.index("## Command line")
    return README[start:README.index("\n\n", README.index("| command |", start))]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_command_table_names_every_flag_of_each_command(name: str) -> None:
    table = command_table()
    rows = [line for line in table.splitlines()
            if f"npsim {name} " in line or re.search(rf"\(([a-z, ]*\b{name}\b[a-z, ]*)\)", line)]
    assert rows, f"npsim {name} has no row in README's command table"
    command = main.get_command(click.Context(main), name)
    assert command is not None
    flags = {opt for param in command.params if isinstance(param, click.Option)
             for opt in param.opts if opt.startswith("--") and opt != "--help"}
    missing = {flag for flag in flags if not any(flag in row for row in rows)}
    assert not missing, f"npsim {name}: {sorted(missing)} not in README's command table"


def test_the_sweep_example_validates_with_the_variants_it_names() -> None:
    section = README[README.index("**Variants and sweeps.**"):]
    start = section.index("```yaml\n") + 8
    block = section[start:section.index("```\n", start)]
    example = yaml.safe_load(block)
    data = yaml.safe_load((ROOT / "scenarios" / "quickstart.yaml").read_text())
    data.update(example)
    scenario = npsim.scenario_from_dict(data, base_dir=ROOT / "scenarios")
    variants, baseline = expand(scenario)
    assert [v.name for v in variants] == ["iptables,workers=2", "iptables,workers=4",
                                          "ipvs-lc,workers=2", "ipvs-lc,workers=4"]
    assert baseline == example["variants"]["baseline"]
