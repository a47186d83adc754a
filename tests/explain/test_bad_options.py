"""``npsim explain``'s walk and split follow a new connection to a NodePort: a Service
without one is refused (exit 2, the option and the Service named, nothing printed), and
without --service the walk takes the first Service that has a NodePort."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from npsim.cli import main

GOLDEN = Path(__file__).resolve().parents[1] / "proxy" / "golden" / "overall.yaml"


def explain(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["explain", str(GOLDEN), "--node", "node-1", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("option", [("--trace", "203.0.113.7"), ("--connections", "5")])
def test_a_service_without_a_node_port_is_refused(option: tuple[str, str]) -> None:
    """ns1/svc1 is a ClusterIP Service: there is no KUBE-NODEPORTS rule to walk (the walk
    printed "192.168.0.2:0" and "--dport 0 matches -> KUBE-EXT-..." for it)."""
    code, out, err = explain("--service", "svc1", *option)
    assert code == 2 and out == ""
    assert option[0] in err and "svc1" in err and "NodePort" in err
    assert "Traceback" not in err


def test_without_service_the_walk_takes_the_first_node_port_service() -> None:
    code, out, _ = explain("--trace", "203.0.113.7")
    assert code == 0
    assert "packet 203.0.113.7:40000 -> 192.168.0.2:3001 (TCP)" in out
