"""A sweep on a Dask LocalCluster gives byte-identical results to the local pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from click.testing import CliRunner
from conftest import client, exponential, scenario_dict

import npsim
from npsim.cli import main
from npsim.sweep import store
from npsim.sweep.runner import sweep

pytestmark = pytest.mark.slow  # starts a Dask LocalCluster of two worker processes

distributed = pytest.importorskip("dask.distributed")


@pytest.fixture(scope="module")
def dask_client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as dask_client:
        yield dask_client
    cluster.close()
    # The client's offload thread (distributed.utils' module-wide executor, for large
    # messages) outlives every client and cluster: left, it made this test worker
    # multi-threaded, so npsim would no longer fork there (npsim/parallel/forked.py) for
    # the rest of the session. A fresh executor starts its thread only when used.
    from distributed import utils
    utils._offload_executor.shutdown(wait=True)
    utils._offload_executor = ThreadPoolExecutor(1, thread_name_prefix="Dask-Offload")


def grid_dict() -> dict:
    data = scenario_dict(nodes=2, replicas=2, workers=2, service_time=exponential(4e-3),
                         clients=[client(rate=300.0, source_ips=40)], duration=1.0,
                         replications=2)
    data["variants"] = {"grid": {"cluster.proxyMode": ["iptables", "ipvs"]}}
    data["cluster"]["costModel"] = {}
    return data


def test_sweeps_and_plans_on_dask_are_the_local_pools(dask_client, tmp_path) -> None:
    """One test, so one LocalCluster: pytest-xdist may give each test of a module to
    another worker, and each worker started a cluster of its own (4 processes, about
    5 s of CPU) for the module fixture."""
    scenario = npsim.scenario_from_dict(grid_dict())
    on_dask = sweep(scenario, tmp_path / "dask", client=dask_client)
    local = sweep(scenario, tmp_path / "pool", jobs=1)  # = jobs=2: test_sweep.py
    assert on_dask.computed == local.computed == 4
    for name in ("sweep.parquet", "summary.csv", "paired.csv"):
        assert (on_dask.folder / name).read_bytes() == (local.folder / name).read_bytes()
    run = store.run_folder(on_dask.folder, "proxyMode=ipvs", 1)  # written by a worker
    assert (run / "requests.parquet").read_bytes() == (
        store.run_folder(local.folder, "proxyMode=ipvs", 1) / "requests.parquet").read_bytes()

    # the CLI's sweep and plan take the scheduler's address
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid_dict()))
    address = dask_client.scheduler.address
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(tmp_path / "o"),
                                       "--dask", address])
    assert result.exit_code == 0, result.output
    assert "2 variants x 2 replications  4 runs made" in result.output
    result = CliRunner().invoke(main, ["plan", str(path), "--target", "throughput > 100/s",
                                       "--vary", "workloads.web.workers=1..2", "--replications",
                                       "2", "--dask", address])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "answer: workloads.web.workers = 1"
