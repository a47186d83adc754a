"""A sweep's folder: one result folder per finished run, written atomically by the
process that ran it, so an interrupted sweep resumes where it stopped.

    OUT/runs/<variant>/rep-<r>/          a normal npsim result folder (frames,
                                         summary.csv, scenario.resolved.yaml) plus
                                         metrics.parquet (variant, replication, metric, value)
    OUT/runs/<variant>/rep-<r>.failed/   error.txt and the resolved scenario of a run
                                         that raised (retried by the next sweep)
    OUT/sweep.parquet, summary.csv, paired.csv, failures.csv, variants.csv, report.md,
        comparison.png, sweep.html (``npsim sweep``)

The sweep is built in a hidden folder beside OUT and renamed to OUT when complete
(``sweep/folder.py``). A run folder that exists is finished (it appears by rename).
Resuming checks that a finished run was made from the same resolved scenario; a
different one is refused, not replaced.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from npsim.api import run as run_scenario
from npsim.results.result import Result, resolved_yaml
from npsim.results.store import write_atomically
from npsim.scenario.scenario import Scenario
from npsim.sweep.targets import scoped_key

METRIC_COLUMNS = ["variant", "replication", "metric", "value"]


@dataclass
class RunTask:
    """One replication of one variant; ``folder`` None keeps nothing on disk (planner)."""

    variant: str
    replication: int
    scenario: Scenario
    folder: Path | None


@dataclass
class RunRecord:
    variant: str
    replication: int
    metrics: pd.DataFrame | None  # tidy rows, None when the run raised
    error: str | None
    wall_seconds: float


def run_folder(out: Path, variant: str, replication: int) -> Path:
    return out / "runs" / variant / f"rep-{replication}"


def failed_folder(folder: Path) -> Path:
    return folder.with_name(folder.name + ".failed")


def tidy_metrics(variant: str, replication: int, result: Result) -> pd.DataFrame:
    """One run as (variant, replication, metric, value): the ``all``-scope summary, the
    other scopes' figures named ``latency_p99{service=cart}`` (``scoped_key``), plus
    ``first_packet_p50``/``_p99``, kube-proxy's part of a new connection's latency after
    the warm-up (what grows with the number of Services in iptables mode)."""
    summary = result.summary
    rows = summary[summary["scope"] == "all"]
    metrics = list(rows["metric"])
    values = list(rows["value"].to_numpy(dtype=float))
    scoped = summary[summary["scope"] != "all"]  # per Service, per population: for targets
    metrics += [scoped_key(m, s) for s, m in zip(scoped["scope"], scoped["metric"],
                                                 strict=True)]
    values += list(scoped["value"].to_numpy(dtype=float))
    req = result.requests
    new = req.loc[(~req["warmup"] & req["new_connection"] & req["pod"].notna()).to_numpy(),
                  "proxy"].to_numpy(dtype=float)
    for name, q in (("first_packet_p50", 0.5), ("first_packet_p99", 0.99)):
        metrics.append(name)
        values.append(float(np.quantile(new, q)) if len(new) else math.nan)
    return pd.DataFrame({"variant": variant, "replication": replication, "metric": metrics,
                         "value": np.asarray(values, dtype=float)})[METRIC_COLUMNS]


def execute(task: RunTask) -> RunRecord:
    """Run one task (in a worker process) and write its folder; never raises for a run
    that fails: the error is recorded and the sweep goes on."""
    try:
        result = run_scenario(task.scenario, replications=[task.replication])
    except Exception:  # noqa: BLE001 - any failure of a run is recorded, not fatal
        error = traceback.format_exc()
        if task.folder is not None:
            def write_error(tmp: Path) -> None:
                (tmp / "error.txt").write_text(error)
                (tmp / "scenario.resolved.yaml").write_text(resolved_yaml(task.scenario))

            write_atomically(failed_folder(task.folder), write_error, overwrite=True)
        return RunRecord(task.variant, task.replication, None, error.strip().splitlines()[-1],
                         0.0)
    metrics = tidy_metrics(task.variant, task.replication, result)
    if task.folder is not None:
        def write(tmp: Path) -> None:
            result.write_files(tmp)
            metrics.to_parquet(tmp / "metrics.parquet", index=False)

        write_atomically(task.folder, write)
        stale = failed_folder(task.folder)
        if stale.is_dir() and (stale / "error.txt").is_file():  # ours: an earlier failure
            shutil.rmtree(stale, ignore_errors=True)
    return RunRecord(task.variant, task.replication, metrics, None, result.wall_seconds)


class SweepMismatch(ValueError):
    """The output folder holds runs of a different scenario."""


def _same_run(kept: str, wanted: str) -> bool:
    """Whether two resolved scenarios make the same run of one replication: the number
    of replications does not change replication r (so a sweep can be extended)."""
    if kept == wanted:
        return True
    try:
        a, b = yaml.safe_load(kept), yaml.safe_load(wanted)
        a["run"].pop("replications", None)
        b["run"].pop("replications", None)
        if "timeseriesBucket" not in b["run"]:  # a request-count run's, known after it
            a["run"].pop("timeseriesBucket", None)
    except (yaml.YAMLError, TypeError, KeyError, AttributeError):
        return False
    return a == b


def finished(task: RunTask) -> bool:
    """True when the task's run folder exists and was made from the same scenario."""
    assert task.folder is not None
    if not task.folder.exists():
        return False
    kept = task.folder / "scenario.resolved.yaml"
    if not kept.is_file() or not _same_run(kept.read_text(), resolved_yaml(task.scenario)):
        raise SweepMismatch(
            f"the sweep folder holds a run of a different scenario (or another npsim "
            f"version) as {task.variant} replication {task.replication}")
    return True


def read_metrics(task: RunTask) -> pd.DataFrame:
    assert task.folder is not None
    return pd.read_parquet(task.folder / "metrics.parquet")


def write_file(path: Path, write: callable) -> None:  # type: ignore[valid-type]
    """Write one file atomically (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
