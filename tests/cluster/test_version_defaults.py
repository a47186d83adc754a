"""Every default npsim takes from ``kubernetesVersion`` comes from one table
(npsim/cluster/lifecycle.py VERSION_DEFAULTS), and the README shows that same table."""

from __future__ import annotations

from pathlib import Path

import pytest

from npsim.cluster.lifecycle import VERSION_DEFAULTS, timing_for, version_default, version_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_table_is_the_code_table() -> None:
    assert version_table() in README.read_text(encoding="utf-8")


@pytest.mark.parametrize(("version", "fallback"), [
    ("1.22", False), ("1.25", False), ("1.26", True), ("1.28", True), ("1.35", True)])
def test_serving_terminating_fallback_per_version(version: str, fallback: bool) -> None:
    """ProxyTerminatingEndpoints (KEP-1669): alpha (off) from v1.22, on by default from
    v1.26 (beta), GA v1.28."""
    assert version_default("cluster.kubeProxy.terminatingFallback", version) is fallback


@pytest.mark.parametrize(("version", "grace"), [("1.28", 40.0), ("1.31", 40.0),
                                                ("1.32", 50.0), ("1.35", 50.0)])
def test_grace_period_comes_from_the_table(version: str, grace: float) -> None:
    assert timing_for(version).grace_period == grace == version_default(
        "cluster.controlPlane.nodeMonitorGracePeriod", version)


def test_every_row_names_its_source_and_starts_at_the_oldest_version() -> None:
    for d in VERSION_DEFAULTS.values():
        assert d.source and d.values[0][0] == 0
        assert [since for since, _ in d.values] == sorted(since for since, _ in d.values)
