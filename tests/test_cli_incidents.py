"""``npsim run`` prints an "incidents" block when the run had events, none otherwise."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from npsim.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_incidents_block_follows_the_summary():
    out = CliRunner().invoke(main, ["run", str(SCENARIOS / "node-failure-local.yaml"),
                                    "--no-save"])
    assert out.exit_code == 0, out.output
    block = out.output[out.output.index("incidents  "):]
    assert "65.00s  lb_mark_down       node-2" in block
    assert "90.00s  alert_firing       NodePortDown{node=node-2}" in block
    assert "detected after 15s; recovered after 8s; error budget burn rate 8.78x" in block


def test_no_incidents_block_without_events():
    out = CliRunner().invoke(main, ["run", str(SCENARIOS / "local-vs-cluster.yaml"),
                                    "--no-save"])
    assert out.exit_code == 0 and "incidents" not in out.output
