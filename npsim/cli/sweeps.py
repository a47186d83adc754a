"""``npsim sweep`` and ``npsim plan``: many runs of a scenario's variants, locally or on
Dask, and the search for the value of a key that meets a target."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from npsim.cli.common import (
    EACH_DOWN_OPTIONS,
    JOBS_OPTION,
    OUTSIDE_FILES_OPTION,
    check_writable,
    each_down,
    load_or_exit,
    refuse,
    usage,
    with_settings,
)
from npsim.scenario.problems import ScenarioError
from npsim.version import __version__


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Sweep folder (default results/<scenario-name>/sweep-seed-<seed>); "
                   "a rerun into it resumes, recomputing nothing that finished.")
@click.option("--force", is_flag=True,
              help="Start over: discard finished runs and replace the folder (only one "
                   "npsim wrote).")
@JOBS_OPTION
@click.option("--dask", "dask_address", default=None, metavar="tcp://HOST:PORT",
              help="Run on this Dask scheduler instead (its workers must see --out).")
@click.option("--replications", type=click.IntRange(min=1), default=None,
              help="Override run.replications.")
@click.option("--set", "settings", multiple=True, metavar="PATH=VALUE",
              help="Change a key in every variant (repeatable).")
@click.option("--target", "targets", multiple=True, metavar='"METRIC < VALUE"',
              help='Judge each variant, e.g. "latency_p99 < 50ms" (repeatable: every '
                   "target must hold; 95% one-sided bound over the replications).")
@EACH_DOWN_OPTIONS
@OUTSIDE_FILES_OPTION
def sweep(scenario: str, out: str | None, force: bool, jobs: int | None,
          dask_address: str | None, replications: int | None,
          settings: tuple[str, ...], targets: tuple[str, ...],
          each_node_down: bool, each_zone_down: bool, allow_outside_files: bool) -> None:
    """Run every variant x replication of SCENARIO and compare the variants.

    Writes OUT/sweep.html (the comparison page), sweep.parquet (variant, replication,
    metric, value), summary.csv (mean and 95% CI per variant), paired.csv (differences
    against the baseline variant), variants.csv, failures.csv, report.md, comparison.png,
    and one result folder per run under OUT/runs/. OUT appears when the sweep is
    complete. Exit 1 if a run failed.
    """
    from npsim.parallel.pool import WorkerDied
    from npsim.report import write_sweep_report
    from npsim.results.store import ResultLockedError
    from npsim.sweep.down import DownError
    from npsim.sweep.runner import sweep as run_sweep
    from npsim.sweep.store import SweepMismatch
    from npsim.sweep.targets import PlanError, parse_targets

    each = each_down(each_node_down, each_zone_down)
    try:  # before the scenario: a typo costs no load
        parse_targets(targets) if targets else None
    except PlanError as exc:
        usage(str(exc))
    loaded = with_settings(load_or_exit(scenario, allow_outside_files), settings)
    if replications is not None:
        loaded = with_settings(loaded, (f"run.replications={replications}",))
    target = Path(out) if out else (Path("results") / loaded.spec.name
                                    / f"sweep-seed-{loaded.spec.run.seed}")
    check_writable(target)
    client = _dask_client(dask_address) if dask_address else None
    bar = _RunsBar()
    try:
        result = run_sweep(loaded, target, jobs=jobs, client=client, progress=bar.update,
                           overwrite=force, extra=write_sweep_report,
                           targets=targets, each=each)
    except ScenarioError as exc:
        refuse(exc.report())
    except (PlanError, DownError) as exc:
        usage(str(exc))
    except (SweepMismatch, FileExistsError, ResultLockedError) as exc:
        usage(str(exc))
    except WorkerDied as exc:
        bar.close()
        click.echo(f"error: {exc}. Finished runs are kept: run the same command again to "
                   "resume.", err=True)
        sys.exit(1)
    finally:
        bar.close()
        if client is not None:
            client.close()
    n = len(result.variants)
    reps = loaded.spec.run.replications
    click.echo(f"npsim {__version__}  sweep {loaded.spec.name}\n{n} variant{'s' * (n != 1)} x "
               f"{reps} replication{'s' * (reps != 1)}  {result.computed} runs made "
               f"in {result.wall_seconds:.1f}s wall")
    click.echo(result.report())
    click.echo(f"results    {target}/")
    click.echo(f"report     {target / 'sweep.html'}")
    if not result.failures.empty:
        sys.exit(1)


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--target", "targets", required=True, multiple=True, metavar='"METRIC < VALUE"',
              help='What must hold, e.g. "latency_p99 < 50ms" or "error_ratio < 0.1%" '
                   "(repeatable: every target must hold).")
@click.option("--vary", required=True, metavar="PATH=LOW..HIGH[:STEP]",
              help="The key to search, e.g. deployments.nginx.replicas=1..64 or "
                   "clients[0].arrival.rate=100/s..5000/s:100/s.")
@click.option("--largest", is_flag=True,
              help="Find the largest value that meets the target (default: smallest).")
@click.option("--replications", type=click.IntRange(min=2), default=None,
              help="Replications per value probed (default run.replications, at least 5).")
@click.option("--max-replications", type=click.IntRange(min=2), default=None,
              help="Add replications up to this many while a value is uncertain "
                   "(default 4x --replications).")
@EACH_DOWN_OPTIONS
@JOBS_OPTION
@click.option("--dask", "dask_address", default=None, metavar="tcp://HOST:PORT",
              help="Run the probes on this Dask scheduler instead.")
@click.option("--set", "settings", multiple=True, metavar="PATH=VALUE",
              help="Change a scenario key first (repeatable).")
@OUTSIDE_FILES_OPTION
def plan(scenario: str, targets: tuple[str, ...], vary: str, largest: bool,
         replications: int | None, max_replications: int | None, each_node_down: bool,
         each_zone_down: bool, jobs: int | None, dask_address: str | None,
         settings: tuple[str, ...], allow_outside_files: bool) -> None:
    """Find the smallest (or largest) value of a key that meets every target, with 95%
    confidence, by bisection (assumes the metrics move one way with the value)."""
    from npsim.sweep.planner import PlanError, parse_targets, parse_vary, plan_search

    each = each_down(each_node_down, each_zone_down)
    try:  # the flags first: a typo costs neither a load nor a probe
        parse_targets(targets)
        parse_vary(vary)
    except PlanError as exc:
        usage(str(exc))
    loaded = with_settings(load_or_exit(scenario, allow_outside_files), settings)
    client = _dask_client(dask_address) if dask_address else None
    try:
        outcome = plan_search(loaded, targets, vary, largest=largest,
                              replications=replications, max_replications=max_replications,
                              jobs=jobs, client=client, log=click.echo, each=each)
    except PlanError as exc:
        usage(str(exc))
    except ScenarioError as exc:  # an end of the --vary range the run would refuse
        refuse(exc.report().replace("in the scenario", "in the --vary range", 1))
    finally:
        if client is not None:
            client.close()
    click.echo(outcome.answer_line())


class _RunsBar:
    """Runs finished, with an ETA, on stderr; silent when stderr is not a terminal."""

    def __init__(self) -> None:
        self.bar: Any = None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            quiet = not sys.stderr.isatty() or bool(os.environ.get("CI"))
            self.bar = click.progressbar(length=max(total, 1), label="runs", file=sys.stderr,
                                         hidden=quiet, show_eta=True, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _dask_client(address: str) -> Any:
    from npsim.parallel.on_dask import connect

    try:
        return connect(address)
    except ImportError:
        usage("--dask needs Dask: pip install 'npsim[dask]'")
    except (OSError, TimeoutError, ValueError) as exc:
        usage(f"--dask {address}: cannot reach the scheduler ({exc})")
