"""``npsim sweep``: every variant x replication of a scenario, in parallel, resumable."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from npsim.parallel.pool import run_tasks
from npsim.preflight import preflight_variants
from npsim.results.store import resolve_target, result_lock
from npsim.results.text import fit_width
from npsim.scenario.loader import load_scenario
from npsim.scenario.scenario import Scenario
from npsim.sweep.down import down_variants, worst_per_variant, worst_table
from npsim.sweep.folder import check_sweep_target, open_staging, publish
from npsim.sweep.store import (
    METRIC_COLUMNS,
    RunRecord,
    RunTask,
    SweepMismatch,
    execute,
    finished,
    read_metrics,
    run_folder,
    write_file,
)
from npsim.sweep.tables import (
    REPORT_METRICS,
    comparison_table,
    difference_table,
    mean_table,
    paired_differences,
    report_columns,
    variant_summary,
)
from npsim.sweep.targets import (
    Target,
    check_metric,
    judge_variants,
    parse_targets,
    verdict_table,
    with_guard,
)
from npsim.sweep.variants import change_text, expand
from npsim.version import __version__

SweepProgress = Callable[[int, int], None]  # (runs finished, runs to do) in this call
LOCK_WAIT = 1.0  # seconds to wait for another sweep into the same folder (it may take hours)
WIDTH = 100  # the terminal tables' width


@dataclass
class SweepResult:
    """The tables of a sweep (also written to ``folder``)."""

    folder: Path
    baseline: str
    runs: pd.DataFrame  # tidy: variant, replication, metric, value
    summary: pd.DataFrame  # variant, metric, runs, mean, ci_low, ci_high
    paired: pd.DataFrame  # variant - baseline per metric, paired and unpaired CIs
    failures: pd.DataFrame  # variant, replication, error
    computed: int  # runs made by this call (the rest were already finished)
    wall_seconds: float
    variants: list[str] = field(default_factory=list)
    report_metrics: list[str] = field(default_factory=lambda: list(REPORT_METRICS))
    changes: dict[str, str] = field(default_factory=dict)  # variant -> its change-set
    scenario: Scenario | None = field(default=None, repr=False)
    each: str | None = None  # "node"/"zone": every variant ran once per node (zone) down
    worst: pd.DataFrame | None = None  # with each: per variant and metric, the worst case
    targets: list[Target] = field(default_factory=list)
    verdicts: pd.DataFrame | None = None  # with targets: per variant, meets or not

    def mean_table(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Variants by metrics: mean [95% CI] in the unit the column header names."""
        return mean_table(self.summary, self.baseline, metrics or self.report_metrics)

    def difference_table(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Variants by metrics: the paired difference from the baseline +- the paired 95%
        CI half-width (the unpaired half-width in parentheses)."""
        return difference_table(self.paired, metrics or self.report_metrics)

    def report(self, width: int = WIDTH) -> str:
        """The comparison as text no wider than ``width``: the means with their CIs, the
        paired differences, and failures if any."""
        parts = ([f"mean [95% CI] per variant (* baseline {self.baseline})",
                  fit_width(self.mean_table(), width)] if not self.summary.empty
                 else ["no run finished"])
        if not self.paired.empty:
            parts += ["", f"difference from {self.baseline} +- paired 95% CI "
                      "(unpaired, without common random numbers)",
                      fit_width(self.difference_table(), width)]
        if self.worst is not None and self.each is not None:
            parts += ["", worst_table(self.worst, self.each, self.report_metrics)]
        if self.verdicts is not None:
            parts += ["", verdict_table(self.verdicts, self.targets)]
        if not self.failures.empty:
            parts += ["", "failed runs (runs/VARIANT/rep-R.failed/error.txt):"]
            parts += [f"  {r.variant} rep {r.replication}: {r.error}"[:width]
                      for r in self.failures.itertuples()]
        return "\n".join(parts)

    def markdown(self) -> str:
        """The comparison as Markdown tables (``report.md``), with failures if any."""
        text = comparison_table(self.summary, self.paired, self.baseline, self.report_metrics)
        if self.worst is not None and self.each is not None:
            text += "\n\n" + worst_table(self.worst, self.each, self.report_metrics)
        if self.verdicts is not None:
            text += "\n\n" + verdict_table(self.verdicts, self.targets)
        if not self.failures.empty:
            text += "\n\nFailed runs (see runs/<variant>/rep-<r>.failed/error.txt):\n" + "\n".join(
                f"  {r.variant} rep {r.replication}: {r.error}"
                for r in self.failures.itertuples())
        return text


def sweep(scenario: Scenario | str | Path, out: str | Path, *, jobs: int | None = None,
          client: Any = None, changes: dict[str, Any] | None = None,
          replications: int | None = None, progress: SweepProgress | None = None,
          overwrite: bool = False,
          extra: Callable[[SweepResult, Path], object] | None = None,
          targets: Sequence[str] = (), each: str | None = None) -> SweepResult:
    """Run every variant x replication of ``scenario`` into the folder ``out``.

    ``jobs`` processes (default: every core), or the Dask cluster of ``client`` (a
    ``dask.distributed.Client``; its workers must see ``out``). Runs already finished
    in ``out`` (or in an interrupted sweep into it) are not recomputed; a run that
    raises is recorded and the rest go on. ``changes`` (path -> value) apply to every
    variant, like ``npsim run --set``. ``out`` must be new or a sweep folder; an
    existing folder npsim did not write is refused (``FileExistsError``), and
    ``overwrite`` starts over, replacing only npsim's own folder. ``extra(result,
    folder)`` adds files before the folder appears, e.g. ``sweep.html``:
    ``extra=npsim.report.write_sweep_report``. ``targets`` (``latency_p99 < 50ms``, ...)
    judge each variant; ``each="node"`` (``"zone"``) runs every variant once per node
    (zone) down and reports the worst.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    if replications is not None:
        scenario = scenario.with_changes({"run.replications": replications})
    goals = with_guard(parse_targets(targets)) if targets else []
    for goal in goals:
        check_metric(goal, scenario)
    variants, baseline = expand(scenario, changes)
    groups = {v.name: {"": v.name} for v in variants}
    if each is not None:
        variants, baseline, groups = down_variants(variants, baseline, each)
    # every variant must pass the run's pre-flight checks before any runs: one over a
    # limit or out of pod addresses is refused up front (exit 2), not recorded as failed
    preflight_variants(variants)
    out = resolve_target(out)
    check_sweep_target(out, overwrite)  # before the lock: nothing is made for a refusal
    with result_lock(out, wait=LOCK_WAIT):
        work = open_staging(out, overwrite)
        result = _run(scenario, variants, baseline, work, jobs, client, progress)
        result.folder = out
        result.changes = {v.name: change_text({**(changes or {}), **v.changes})
                          for v in variants}
        if each is not None:
            result.each, result.worst = each, worst_per_variant(result.summary, groups)
        if goals:
            result.targets, result.verdicts = goals, judge_variants(result.runs, goals, groups)
        _write_tables(result, scenario, work)
        if extra is not None:
            extra(result, work)
        publish(work, out)
    return result


def _run(scenario: Scenario, variants: list[Any], baseline: str, work: Path, jobs: int | None,
         client: Any, progress: SweepProgress | None) -> SweepResult:
    """The runs not yet in ``work``, then the tables of every run there."""
    reps = scenario.spec.run.replications
    tasks = [RunTask(v.name, r, v.scenario, run_folder(work, v.name, r))
             for r in range(reps) for v in variants]
    try:
        todo = [t for t in tasks if not finished(t)]
    except SweepMismatch as exc:
        raise SweepMismatch(
            f"{exc.args[0]}; npsim does not overwrite results. Pass --out DIR for a new "
            "sweep, or --force to start this one over.") from None
    started = time.perf_counter()
    records: dict[tuple[str, int], RunRecord] = {}
    if progress is not None:
        progress(0, len(todo))
    for i, record in run_tasks(execute, todo, jobs, client):
        records[(todo[i].variant, todo[i].replication)] = record
        if progress is not None:
            progress(len(records), len(todo))
    order = [v.name for v in variants]
    parts, failures = [], []
    for task in sorted(tasks, key=lambda t: (order.index(t.variant), t.replication)):
        record = records.get((task.variant, task.replication))
        if record is not None and record.error is not None:
            failures.append({"variant": task.variant, "replication": task.replication,
                             "error": record.error})
        elif task.folder is not None and task.folder.exists():
            parts.append(read_metrics(task))
    runs = (pd.concat(parts, ignore_index=True) if parts
            else pd.DataFrame({c: [] for c in METRIC_COLUMNS}))
    summary = variant_summary(runs, order)
    paired = paired_differences(runs, order, baseline)
    failed = pd.DataFrame(failures, columns=["variant", "replication", "error"])
    result = SweepResult(work, baseline, runs, summary, paired, failed, len(todo),
                         time.perf_counter() - started, order, scenario=scenario)
    if scenario.spec.variants is not None and scenario.spec.variants.report:
        result.report_metrics = report_columns(scenario.spec.variants.report)
    return result


def _write_tables(result: SweepResult, scenario: Scenario, out: Path) -> None:
    """The sweep's own files in ``out`` (each replaced by rename: ``out`` may hold hard
    links to the files of the sweep it extends)."""
    write_file(out / "sweep.parquet", lambda p: result.runs.to_parquet(p, index=False))
    write_file(out / "summary.csv", lambda p: result.summary.to_csv(p, index=False))
    write_file(out / "paired.csv", lambda p: result.paired.to_csv(p, index=False))
    write_file(out / "failures.csv", lambda p: result.failures.to_csv(p, index=False))
    variants = pd.DataFrame({"variant": result.variants,
                             "baseline": [v == result.baseline for v in result.variants],
                             "changes": [result.changes.get(v, "") for v in result.variants]})
    write_file(out / "variants.csv", lambda p: variants.to_csv(p, index=False))
    for name, table in (("worst.csv", result.worst), ("targets.csv", result.verdicts)):
        if table is not None:
            write_file(out / name, lambda p, t=table: t.to_csv(p, index=False))
    spec = scenario.spec
    header = (f"# {spec.name}: {len(result.variants)} variants x {spec.run.replications} "
              f"replications\n\nGenerated by npsim {__version__}: `npsim sweep "
              f"{scenario.source}`; seed {spec.run.seed}, common random numbers across "
              "variants. Each cell is the mean over replications [95% CI].\n\n"
              + (f"{spec.description.strip()}\n\n" if spec.description.strip() else ""))
    figure = ""
    if not result.summary.empty:
        from npsim.sweep.figure import comparison_figure

        fig = comparison_figure(result.summary, result.baseline, result.report_metrics)
        write_file(out / "comparison.png", lambda p: fig.savefig(p, format="png", dpi=90))
        figure = "![mean and 95% CI per variant](comparison.png)\n\n"
    write_file(out / "report.md",
               lambda p: p.write_text(header + figure + result.markdown() + "\n"))
