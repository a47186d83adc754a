"""``npsim validate``, ``run`` and ``compare``: one scenario checked or run into a result
folder, and result folders side by side."""

from __future__ import annotations

import contextlib
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click

from npsim.cli.ci import (
    check_options,
    checks_fit,
    document,
    evaluate,
    finish,
    parse_checks,
    run_each_down,
)
from npsim.cli.common import (
    EACH_DOWN_OPTIONS,
    SET_OPTION,
    check_writable,
    each_down,
    limit_options,
    load_or_exit,
    preflight_or_exit,
    refuse,
    settings_folder,
    usage,
    with_settings,
)
from npsim.cli.request import RunRequest
from npsim.scenario.problems import ScenarioError
from npsim.version import __version__


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@SET_OPTION
@limit_options
def validate(scenario: str, settings: tuple[str, ...], max_requests: int | None,
             max_memory: int | None, allow_outside_files: bool) -> None:
    """Check SCENARIO and report every problem at once (exit 2 if any)."""
    from npsim.units import format_size

    loaded = with_settings(load_or_exit(scenario, allow_outside_files), settings)
    estimate = preflight_or_exit(loaded, max_requests, max_memory)
    spec = loaded.spec
    variants = ""
    if spec.variants is not None:  # every variant must be valid before a sweep starts
        from npsim.preflight import preflight_variants
        from npsim.sweep.variants import expand

        try:
            expanded = expand(loaded)[0]
            preflight_variants(expanded, max_requests, max_memory)  # each runs on its own
            variants = f", {len(expanded)} variants"
        except ScenarioError as exc:
            refuse(exc.report())
    click.echo(
        f"{scenario}: ok - {len(spec.cluster.nodes)} nodes, {len(loaded.services)} services, "
        f"{len(loaded.deployments)} deployments, {len(spec.clients)} client populations"
        + variants + (f", {len(loaded.warnings)} warnings" if loaded.warnings else "")
        + f"; about {estimate.requests:,.0f} requests, {format_size(estimate.memory)}"
    )


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Result folder (default results/<scenario-name>/seed-<seed>; with "
                   "--set, results/<scenario-name>--set-<path>=<value>/seed-<seed>).")
@click.option("--force", is_flag=True, help="Replace an existing result folder.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Override run.seed.")
@click.option("--replications", type=click.IntRange(min=1), default=None,
              help="Override run.replications.")
@click.option("--no-save", is_flag=True, help="Print the summary only; write nothing.")
@click.option("--no-report", is_flag=True,
              help="Skip figures/*.png and report.html in the result folder.")
@SET_OPTION
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Run replications, and draw the report's figures, on this many "
                   "processes (same results and report for any N). Default: the "
                   "replications here, the figures on every core this process may use.")
@check_options
@EACH_DOWN_OPTIONS
@limit_options
def run(**options: Any) -> None:
    """Run SCENARIO, print a summary and write the result folder. With --check: exit 1
    when a check fails (2 on bad input)."""
    request = RunRequest(**options)
    drawers = _drawers(request.jobs, request.draws_no_figures)
    # started first: matplotlib's import overlaps the scenario's loading and the run
    with _standby(drawers) as standby:
        _run(request, drawers, standby)


def _run(request: RunRequest, drawers: int, standby: Any) -> None:
    """:func:`run`'s checks, then the run itself (:func:`_run_and_save`)."""
    from npsim.results.store import check_target

    out, settings = request.out, request.settings
    if out is not None and not out.strip():
        usage("--out needs a folder name (it was empty)")
    targets = parse_checks(request.checks)  # before the scenario: a typo costs no load
    each = each_down(request.each_node_down, request.each_zone_down)
    base = load_or_exit(request.scenario, request.allow_outside_files)
    name = base.spec.name  # the folder is named before --set (which may change the name)
    loaded = with_settings(base, settings)
    if request.seed is not None:
        loaded.spec.run.seed = request.seed
    if request.replications is not None:
        loaded.spec.run.replications = request.replications
    checks_fit(targets, loaded)
    preflight_or_exit(loaded, request.max_requests, request.max_memory)
    # a changed scenario never writes into (nor, with --force, over) the baseline's folder
    folder = settings_folder(name, settings) if settings else name
    default = Path("results") / folder / f"seed-{loaded.spec.run.seed}"
    if each is not None:
        default = default.with_name(f"{default.name}-each-{each}-down")
    target = Path(out) if out is not None else default
    if not request.no_save:
        try:
            check_target(target, request.force)
        except FileExistsError as exc:
            usage(str(exc))
        check_writable(target)
    _run_and_save(request, loaded, each, target, targets, drawers, standby)


def _run_and_save(request: RunRequest, loaded: Any, each: str | None, target: Path,
                  targets: list, drawers: int, standby: Any) -> None:
    """The run itself, its printout and its folder (see :func:`run`): ``loaded`` with
    the request's changes made, ``each`` and ``targets`` read from it, ``target`` the
    folder checked."""
    from npsim.api import run as run_scenario
    from npsim.results.store import ResultExistsError, ResultLockedError

    as_json, no_save, no_report = request.as_json, request.no_save, request.no_report
    limits = {"max_requests": request.max_requests, "max_memory": request.max_memory}
    total = loaded.spec.run.replications
    steps = 1000
    with click.progressbar(length=steps, label="simulating", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:

        def advance(fraction: float) -> None:
            bar.update(int(fraction * steps) - bar.pos)

        try:
            if each is not None:  # one run per node (zone) down, the worst reported
                return run_each_down(
                    loaded, each, None if no_save else target, request, progress=advance,
                    run=partial(run_scenario, jobs=request.jobs or 1, **limits),
                    checks=targets,
                    limits=lambda s: preflight_or_exit(s, **limits))
            result = run_scenario(loaded, progress=advance, jobs=request.jobs or 1,
                                  **limits)
        except ScenarioError as exc:
            refuse(exc.report())
    from npsim.results.text import wrap

    click.echo("\n".join(wrap(f"npsim {__version__}  scenario {loaded.spec.name}  ", [
        f"seed {loaded.spec.run.seed}", f"replications {total}",
        f"simulated {result.end_time:g}s in {result.wall_seconds:.2f}s wall"], indent="  ")),
        err=as_json)
    click.echo(result.report(), err=as_json)
    outcome = evaluate(targets, {None: result})
    if no_save:
        return finish(outcome, document(loaded, outcome, summary=result.summary)
                      if as_json else None)
    report = None
    if not no_report:  # the report is drawn into the folder before it appears
        report = _report(result, drawers, standby)
    try:
        written = result.save(target, overwrite=request.force, extra=report)
    except (ResultExistsError, ResultLockedError, FileExistsError) as exc:
        usage(str(exc))
    except OSError as exc:
        usage(f"could not write {target}: {exc.strerror or exc}")
    click.echo(f"results    {written}/", err=as_json)
    if not no_report:
        click.echo(f"report     {written / 'report.html'}", err=as_json)
    finish(outcome, document(loaded, outcome, summary=result.summary, folder=written)
           if as_json else None)


# frames up to this size go to the standby drawer through a pipe (the quick start's: 12
# MB, 25 ms); bigger ones are shared by forking after the run instead of copied
STANDBY_BYTES = 64 << 20


def _drawers(jobs: int | None, no_figures: bool) -> int:
    """How many processes draw the report's figures: ``--jobs``, or by default every
    core this process may use."""
    if no_figures:
        return 1
    if jobs is not None:
        return jobs
    from npsim.parallel.pool import default_jobs

    return default_jobs()


@contextlib.contextmanager
def _standby(drawers: int) -> Any:
    """A drawing process started now (matplotlib imported while the scenario loads and
    the run simulates), or None with one drawer; ended on the way out if not used."""
    if drawers <= 1:
        yield None
        return
    import pandas  # noqa: F401 - loaded once, before the fork: the drawer reads frames too

    from npsim.parallel.standby import Standby
    from npsim.report.drawing import prepare

    standby = Standby(prepare)
    try:
        yield standby
    finally:
        standby.close()


def _report(result: Any, drawers: int, standby: Any) -> Any:
    """``extra`` for ``result.save``: the report. With more than one drawer its figures
    are drawn on that many forked processes from now on (by the standby process when
    the frames are small), while this one writes the frames."""
    from npsim.report.drawing import start_drawing
    from npsim.report.run_report import write_run_report

    fork = None
    if drawers > 1:
        from npsim.parallel.forked import fork_calls as fork

        if standby is not None and _frames_bytes(result) <= STANDBY_BYTES:
            fork = standby
        elif standby is not None:  # big frames: shared by forking now, not copied
            standby.close()
    return partial(write_run_report, result, drawn=start_drawing(result, drawers, fork))


def _frames_bytes(result: Any) -> int:
    """The memory of the frames the figures read (what the standby would be sent)."""
    frames = [result.requests, result.pods, result.nodes, result.timeseries,
              result.pod_timeseries, result.node_timeseries, result.events]
    if result.calls is not None:
        frames.append(result.calls)
    return int(sum(f.memory_usage(index=True, deep=False).sum() for f in frames))


@click.command()
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for compare.html and figures/ (default: print the table only).")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def compare(folders: tuple[str, ...], out: str | None, force: bool) -> None:
    """Compare result FOLDERS side by side: key metrics with CIs, overlaid latency CDFs.
    A sweep's folder adds a column per variant (its mean and CI over replications)."""
    from npsim.report import compare_table, write_compare_report
    from npsim.results.store import check_target, write_atomically
    from npsim.results.text import fit_width

    target = Path(out) if out is not None else None
    if target is not None:  # refuse before loading and printing anything
        for folder in folders:  # --force would replace (or write into) what it reads
            if _overlaps(target, Path(folder)):
                usage(f"--out {target} is (or holds, or lies inside) the input folder "
                      f"{folder}; npsim never replaces a folder it compares. Pass another "
                      "--out DIR.")
        try:  # --force replaces only a folder npsim wrote
            check_target(target, force)
        except FileExistsError as exc:
            usage(str(exc))
        check_writable(target)
    columns, results, sources = _load_compared(folders)
    try:
        table = compare_table(columns)
    except (KeyError, ValueError, TypeError) as exc:  # a summary.csv edited out of shape
        usage(f"the result folders cannot be compared: a summary.csv is not npsim's "
               f"({_first_line(exc)})")
    click.echo(fit_width(table))  # blocks of columns within 100 characters, as sweeps
    if target is None:
        return
    try:
        write_atomically(target, lambda tmp: write_compare_report(results, tmp, sources,
                                                                  columns),
                         overwrite=force, kind="compare")
    except OSError as exc:
        usage(f"could not write {target}: {exc.strerror or exc}")
    click.echo(f"report     {target / 'compare.html'}")


def _load_compared(folders: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """The table's columns (a run's Result, or a sweep variant's summary), the Results
    the figures draw (a variant's first finished run) and each column's source."""
    from npsim.results.result import load_result
    from npsim.sweep.folder import is_sweep_folder, read_sweep

    def load(folder: str | Path) -> Any:
        try:
            return load_result(folder)
        except FileNotFoundError as exc:
            usage(str(exc))
        except ScenarioError as exc:
            refuse(exc.report())
        except (OSError, ValueError) as exc:  # a damaged file (pyarrow's errors are these)
            usage(f"{folder}: not a readable npsim result folder ({_first_line(exc)})")

    columns: dict[str, Any] = {}
    results: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for label, folder in zip(_compare_labels(folders), folders, strict=True):
        if not is_sweep_folder(Path(folder)):
            columns[label] = results[label] = load(folder)
            sources[label] = folder
            continue
        try:
            variants = read_sweep(Path(folder))
        except (OSError, ValueError, KeyError) as exc:
            usage(f"{folder}: not a readable npsim sweep folder ({_first_line(exc)})")
        for name, (summary, first_run) in variants.items():
            key = name if len(folders) == 1 else f"{label}:{name}"
            columns[key] = summary
            sources[key] = (f"{folder}, variant {name}: mean over replications"
                            + (f"; figures from {first_run.name}" if first_run else ""))
            if first_run is not None:
                results[key] = load(first_run)
    return columns, results, sources


def _overlaps(a: Path, b: Path) -> bool:
    """Whether one of two folders is the other or lies inside it (symlinks resolved)."""
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _compare_labels(folders: tuple[str, ...]) -> list[str]:
    """Short labels: the folders' paths as typed (relative to the working folder when
    they lie inside it), without their common leading folders."""
    parts = []
    for folder in folders:
        path = Path(folder).resolve()
        with contextlib.suppress(ValueError):  # outside the working folder: kept absolute
            path = path.relative_to(Path.cwd().resolve())
        parts.append(path.parts or (".",))
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    labels = [Path(*p[common:]).as_posix() for p in parts]
    if len(set(labels)) < len(labels):  # the same folder twice
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels
