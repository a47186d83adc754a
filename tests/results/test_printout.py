"""``npsim run``'s summary fits 100 columns (results/printout.py): confidence intervals
and a scope's failures continue on indented lines, the pods table shows a population's
share only where a pod serves more than one, and long names keep the columns aligned."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

import npsim
from npsim.cli import main
from npsim.results.printout import pod_table

ROOT = Path(__file__).resolve().parents[2]
LONG = ("shoppers-from-the-eu-west-region-through-the-public-lb-local",
        "shoppers-from-the-eu-west-region-through-the-public-lb-clstr")


def printed(tmp_path: Path, scenario: str, *changes: str) -> list[str]:
    args = ["run", str(ROOT / "scenarios" / scenario), "--no-report", "--out",
            str(tmp_path / "out")]
    for change in changes:
        args += ["--set", change]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_mode_comparison_with_three_replications_fits(tmp_path: Path) -> None:
    """Three replications: every latency carries its 95% CI (once 108 and 124 columns)."""
    lines = printed(tmp_path, "mode-comparison.yaml", "run.duration=3s", "run.warmup=1s")
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    text = "\n".join(lines)
    assert text.count("95% CI") == 7  # mean, p50, p95, p99 served; p50, p95, p99 users
    assert "(all 3 replications)" in text and "(completed requests)" in text
    users = next(i for i, line in enumerate(lines) if line.startswith("users see  p50 "))
    assert lines[users + 1].startswith(" " * 11 + "p99 ")  # the third CI: its own line
    assert "client stickiness" in text


def test_three_tier_shop_fits_and_drops_one_population_columns(tmp_path: Path) -> None:
    """Each pod serves only its own Service's population: no share-per-population
    columns (the pods table was 137 columns, the scope lines 112)."""
    lines = printed(tmp_path, "three-tier-shop.yaml", "run.duration=3s", "run.warmup=1s")
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    header = next(line for line in lines if line.startswith("pods "))
    assert header.split() == ["pods", "share", "util", "node"]
    scope = next(i for i, line in enumerate(lines) if line.startswith("  frontend>catalog"))
    assert "IP kept 100.0%" in lines[scope]
    assert lines[scope + 1].strip().startswith("failed ")  # continued under the figures
    under = {line.index("failed ") for line in lines if line.startswith("   ")
             and line.strip().startswith("failed ")}
    assert len(under) == 1 and under.pop() > len("  frontend>catalog:grpc")


def test_a_sixty_character_population_name_keeps_the_columns(tmp_path: Path) -> None:
    """Two 60-character populations sharing pods: the names are printed whole above
    their figures, and shortened in the middle as the pods table's headers."""
    assert {len(name) for name in LONG} == {60}
    result = npsim.run(npsim.bundled("local-vs-cluster").with_changes(
        {"run.duration": "3s", "run.warmup": "1s", "clients[0].name": LONG[0],
         "clients[1].name": LONG[1]}))
    lines = result.report().splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    for name in LONG:  # the whole name, then its figures, aligned with the other's
        i = lines.index(f"  {name}")
        assert "req/s" in lines[i + 1] and "IP kept" in lines[i + 1]
    starts = {line.index("req/s") for line in lines if "req/s  p50" in line}
    assert len(starts) == 1
    start = next(i for i, line in enumerate(lines) if line.startswith("pods "))
    header, rows = lines[start], lines[start + 1:start + 4]
    columns = header.split()
    assert columns[3] == "shoppers-f...ic-lb-local" and len(columns[3]) == 24
    for column in columns[1:5]:  # right-aligned values end where their header ends
        end = header.index(column) + len(column)
        assert all(row[end - 1] == "%" for row in rows), (column, header, rows)


def test_names_alike_but_in_the_middle_are_numbered() -> None:
    """Two long names that differ only in the middle would shorten to the same header:
    they are numbered, and a legend names them whole."""
    names = ["a" * 30 + "-eu-" + "b" * 30, "a" * 30 + "-us-" + "b" * 30]
    pods = pd.DataFrame({"pod": ["web-0", "web-1"], "node": ["node-1", "node-2"],
                         "share": [0.5, 0.5], "utilisation": [0.2, 0.3]})
    shares = pd.DataFrame({names[0]: [0.4, 0.6], names[1]: [0.7, 0.3]},
                          index=pd.Index(["web-0", "web-1"], name="pod"))
    lines = pod_table(pods, shares)
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split()[3].startswith("1:") and lines[0].split()[4].startswith("2:")
    assert lines[-2:] == [f"  1: {names[0]}", f"  2: {names[1]}"]


def test_the_first_line_of_a_long_named_scenario_fits(tmp_path: Path) -> None:
    """The run's first line (version, scenario, seed, replications, time) continues on an
    indented line when a long scenario name would pass 100 columns."""
    name = "capacity-what-if-for-the-checkout-service-behind-the-eu-west-public-lb"
    lines = printed(tmp_path, "quickstart.yaml", f"name={name}", "run.duration=1s",
                    "run.warmup=0s")
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    assert lines[0].startswith(f"npsim {npsim.__version__}  scenario {name}")
    assert lines[1].startswith("  ") and "simulated 1s in " in "".join(lines[:3])
    (tmp_path / "again").mkdir()
    short = printed(tmp_path / "again", "quickstart.yaml", "run.duration=1s", "run.warmup=0s")
    assert short[0].startswith(f"npsim {npsim.__version__}  scenario quickstart  seed 1  "
                               "replications 1  simulated 1s in ")
