"""An imported application is placed as kube-scheduler would place it: a dozen
Deployments with CPU requests (1570m) on three nodes of 940m allocatable fit, each node
within its allocatable; on nodes too small for them the import warns which pods would
stay Pending. (``spread`` put all twelve, 1.57 CPU, on the first node.)"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from npsim.cli import main
from npsim.cluster.model import build_cluster
from npsim.cluster.placement import pending_problems
from npsim.importer import import_cluster
from npsim.scenario.loader import load_scenario

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "boutique.yaml"


def test_imported_app_fits_three_940m_nodes(tmp_path: Path) -> None:
    out = tmp_path / "shop.yaml"
    summary = import_cluster([FIXTURE], out)
    assert summary.scenario is not None and not pending_problems(summary.scenario)
    scenario = load_scenario(out)
    assert {w.placement for w in scenario.spec.workloads.values()} == {"scheduler"}
    nodes = scenario.spec.cluster.nodes
    assert [(n.cpu, n.memory, n.max_pods) for n in nodes] == [(0.94, 2883 << 20, 110)] * 3
    assert nodes[0].labels["kubernetes.io/os"] == "linux"
    cluster = build_cluster(scenario)
    assert len(cluster.pods) == 12 and not cluster.pending
    cpu = [0] * 3
    for pod in cluster.pods:
        cpu[pod.node] += scenario.deployments[pod.deployment].cpu_request
    assert sum(cpu) == 1570
    assert all(c <= 940 for c in cpu) and min(cpu) > 0, cpu


def test_nodes_too_small_warn_of_pending_pods(tmp_path: Path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text(FIXTURE.read_text().replace("cpu: 940m", "cpu: 400m"))
    result = CliRunner().invoke(main, ["import", str(small), "--out",
                                       str(tmp_path / "shop.yaml")])
    assert result.exit_code == 0, result.output
    pending = [line for line in result.output.splitlines() if "stay Pending" in line]
    why = "0/3 nodes are available: 3 Insufficient cpu."
    assert pending and all(w.startswith("warning: ") and why in w for w in pending)
    cluster = build_cluster(load_scenario(tmp_path / "shop.yaml"))
    assert len(cluster.pods) + sum(n for n, _ in cluster.pending.values()) == 12
