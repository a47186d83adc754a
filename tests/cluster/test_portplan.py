"""Port plans, the allocation table, and the churn what-if (`npsim ports`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from npsim.cli import main
from npsim.scenario.nodeports import PortRange
from npsim.scenario.portplan import Band, check_plan, churn

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_plan_bands_in_the_dynamic_band_are_flagged() -> None:
    default = PortRange.parse("30000-32767")
    problems = check_plan([Band("web", 30000, 30099), Band("api", 30050, 30060),
                           Band("edge", 40000, 40010), Band("safe", 30070, 30085)], default)
    assert problems[0].startswith("band web 30000-30099: 30086-30099 lies in the dynamic band")
    assert "band api 30050-30060 overlaps band web 30000-30099" in problems
    assert "band edge 40000-40010 is not inside the NodePort range 30000-32767" in problems
    assert not any(p.startswith("band safe 30070-30085: ") for p in problems)  # static


def test_churn_fills_the_range_at_its_exact_size() -> None:
    out = churn(PortRange.parse("30000-30099"), np.random.default_rng(1), rate=1.0,
                lifetime=float("inf"), explicit_share=0.0)
    assert out.created == 100 and out.alive_at_full == 100 and out.full_at is not None
    assert out.explicit == out.collisions == 0


def test_explicit_requests_in_the_static_band_do_not_meet_automatic_ones() -> None:
    """KEP-3668's point, measured: while the dynamic band has room, requests inside the
    static band collide only with each other; inside the dynamic band they also meet
    automatic allocations."""
    port_range = PortRange.parse("30000-30999")  # static 30000-30030 (31 ports)
    common = dict(rate=1.0, lifetime=400.0, explicit_share=0.2, horizon=2000.0)
    static = churn(port_range, np.random.default_rng(5), bands=[Band("s", 30000, 30030)],
                   **common)
    dynamic = churn(port_range, np.random.default_rng(5), bands=[Band("d", 30500, 30530)],
                    **common)
    assert static.full_at is None and dynamic.full_at is None  # ~400 alive of 1000
    assert static.with_automatic == 0 and static.explicit > 300
    assert dynamic.with_automatic > 0
    assert dynamic.collision_rate > static.collision_rate


def test_ports_command_prints_the_table_and_checks_the_plan(tmp_path: Path) -> None:
    data = yaml.safe_load((SCENARIOS / "port-plan.yaml").read_text())
    data["manifests"] = [m if isinstance(m, dict) else str(SCENARIOS / m)
                         for m in data["manifests"]]
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["ports", str(path), "--churn", "20/h"])
    out = result.stdout
    assert result.exit_code == 1, out  # the tutorial's plan reaches into the dynamic band
    assert out.startswith("# NodePort range 30000-32767 (2768 ports): static band "
                          "30000-30085 (86 ports), dynamic band 30086-32767 (2682 ports)")
    lines = out.splitlines()
    assert lines[1].split() == ["NAMESPACE", "SERVICE", "PORT-NAME", "PROTOCOL", "PORT",
                                "TARGET", "NODEPORT", "BAND", "HOW", "PLAN", "VIOLATION"]
    assert any(line.split()[:9] == ["default", "nginx-web", "-", "TCP", "80", "80", "30080",
                                    "static", "requested"] for line in lines)
    assert "violation: band api 30100-30199: 30100-30199 lies in the dynamic band" in out
    assert "first 'failed to allocate a nodePort: range is full' after" in out
    assert "# churn: Services created at 20/h (one every 3m)" in out  # not 0.00555556/s


@pytest.mark.parametrize("per_second, text", [(0.5, "30/m"), (2.0, "2/s"), (1 / 180, "20/h"),
                                              (1 / 86400 / 2, "0.5/d")])
def test_churn_rates_are_printed_in_the_unit_that_reads(per_second, text) -> None:
    from npsim.cli.nodeports import readable_rate

    assert readable_rate(per_second) == text


def test_ports_bad_churn_flag_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ports", str(SCENARIOS / "port-plan.yaml"),
                                       "--churn", "fast"])
    assert result.exit_code == 2 and "--churn" in result.stderr


def test_ports_bad_lifetime_is_named_and_nothing_is_printed_first() -> None:
    result = CliRunner().invoke(main, ["ports", str(SCENARIOS / "port-plan.yaml"),
                                       "--churn", "20/h", "--lifetime", "5x"])
    assert result.exit_code == 2
    assert "--lifetime '5x'" in result.stderr and "--horizon" not in result.stderr
    assert result.stdout == ""  # no table, no violations before the error


@pytest.mark.parametrize("flags, words", [
    (["--churn", "0/h"], "--churn must be a rate above 0"),
    (["--churn", "2/h", "--lifetime", "1h"], "--lifetime (or --explicit 1) needs --horizon"),
    (["--churn", "2/h", "--explicit", "1"], "needs --horizon"),
    (["--churn", "2/h", "--lifetime", "1h", "--horizon", "1e12h"],
     "would create about 2e+12 Services"),
])
def test_churn_flags_it_cannot_finish_with_are_usage_errors(flags: list[str],
                                                            words: str) -> None:
    """A zero rate and a churn that never fills the range without a horizon were
    ValueError tracebacks; a horizon of 1e12 h never ended (issue 22)."""
    result = CliRunner().invoke(main, ["ports", str(SCENARIOS / "port-plan.yaml"), *flags])
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert result.stdout == ""
