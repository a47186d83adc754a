"""``--connections N`` and the trace's word on its choice: one draw from the rules,
and where N new connections go beside the rules' shares (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .helpers import BUNDLED, npsim, web_scenario

ROW = re.compile(r"^(?P<key>10\.244\.[\d.]+:\d+)\s+(?P<pod>\S+)\s+(?P<node>\S+)\s+"
                 r"(?P<rule>[\d.]+%|-)\s+(?P<count>[\d,]+) \((?P<share>[\d.]+)%\)\s+"
                 r"(?P<sees>.*)$")


def split_rows(text: str) -> list[re.Match]:
    return [m for line in text.splitlines() if (m := ROW.match(line))]


def test_iptables_split_is_close_to_the_rule_probabilities_and_seeded() -> None:
    args = ("explain", str(BUNDLED / "quickstart.yaml"), "--connections", "4000")
    code, out, _ = npsim(*args)
    assert code == 0
    rows = split_rows(out)
    assert len(rows) >= 2
    n = len(rows)
    for row in rows:
        assert row["rule"] == f"{1 / n:.1%}"
        # binomial sd at 4000 and p = 1/n is under 0.8 points: 3 points is > 4 sd
        assert abs(float(row["share"]) / 100 - 1 / n) < 0.03
        assert row["sees"] == "served"
    assert sum(int(r["count"].replace(",", "")) for r in rows) == 4000
    assert npsim(*args)[1] == out  # the same seed, the same split
    other = npsim(*args, "--set", "run.seed=2")[1]
    assert split_rows(other) != rows
    assert "from addresses in 198.18.0.0/16" in out


def test_the_trace_says_its_choice_is_one_seeded_draw() -> None:
    _, out, _ = npsim("explain", str(BUNDLED / "quickstart.yaml"), "--trace",
                      "203.0.113.7:40000", "--connections", "100")
    assert ("(one draw from the rules' probabilities, 1/" in out
            and "random stream at seed 1: the same command picks the same endpoint" in out)
    assert "from addresses in 203.0.0.0/16" in out


def test_the_dead_pods_share_times_out_at_61s() -> None:
    """node-failure at 61 s on node-1: 1 of 4 endpoints is nginx-1 on the dead node."""
    _, out, _ = npsim("explain", str(BUNDLED / "node-failure.yaml"), "--node", "node-1",
                      "--at", "61s", "--connections", "4000")
    rows = {r["pod"]: r for r in split_rows(out)}
    assert rows["nginx-1"]["sees"] == "connect_timeout after 3 s"
    share = float(rows["nginx-1"]["share"]) / 100
    assert abs(share - 0.25) < 0.03
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("# ") and "connect_timeout after 3 s" in summary


@pytest.mark.parametrize("scheduler", ["rr", "lc"])
def test_ipvs_round_robin_and_least_connections_split_evenly(tmp_path: Path,
                                                             scheduler: str) -> None:
    path = web_scenario(tmp_path, [], mode="ipvs",
                        extra_cluster={"ipvs": {"scheduler": scheduler}})
    _, out, _ = npsim("explain", path, "--connections", "400", "--trace", "198.51.100.1:1")
    rows = split_rows(out)
    assert [r["count"] for r in rows] == ["100"] * 4  # in turn / fewest open: exactly even
    if scheduler == "rr":
        assert all(r["rule"] == "25.0%" for r in rows)
        assert "the next in node-1's round robin" in out
    else:
        assert all(r["rule"] == "-" for r in rows)
        assert "IPVS lc: the real server with the fewest connections" in out


def test_ipvs_source_hashing_follows_its_bucket_shares(tmp_path: Path) -> None:
    path = web_scenario(tmp_path, [], mode="ipvs", extra_cluster={"ipvs": {"scheduler": "sh"}})
    _, out, _ = npsim("explain", path, "--connections", "5000")
    rows = split_rows(out)
    assert sum(float(r["rule"].rstrip("%")) for r in rows) == pytest.approx(100, abs=0.2)
    for row in rows:
        assert abs(float(row["share"]) - float(row["rule"].rstrip("%"))) < 3


def test_connections_out_of_range_exit_2() -> None:
    code, _, err = npsim("explain", str(BUNDLED / "quickstart.yaml"), "--connections", "0")
    assert code == 2 and "--connections" in err
