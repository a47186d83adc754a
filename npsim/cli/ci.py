"""``npsim run`` for scripts and CI: ``--check`` (exit 1 when one fails), ``--json`` (the
summary on stdout), and ``--each-node-down`` / ``--each-zone-down`` (one run per node or
zone down, the worst case reported).

Exit codes: 0 every check passed (or none given), 1 a check failed, 2 bad input (a
malformed ``--check``, a scenario problem), before anything runs.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from npsim.cli.common import usage
from npsim.version import __version__

if TYPE_CHECKING:
    import pandas as pd

    from npsim.cli.request import RunRequest
    from npsim.scenario.scenario import Scenario
    from npsim.sweep.targets import CheckResult, Target


def check_options(command: Any) -> Any:
    """--check (repeatable) and --json."""
    command = click.option(
        "--json", "as_json", is_flag=True,
        help="Write the summary (values, 95% CIs, checks) as JSON to stdout; the readable "
             "summary goes to stderr.")(command)
    return click.option(
        "--check", "checks", multiple=True, metavar='"METRIC < VALUE"',
        help='Exit 1 unless this holds, e.g. "latency_p99 < 50ms" or "error_ratio < 0.01" '
             "(repeatable: every check must hold).")(command)


def parse_checks(texts: Sequence[str]) -> list[Target]:
    """The checks, read before anything is loaded (exit 2 on a malformed one). A latency
    check without a failure check brings ``error_ratio < 1%``, as ``plan``'s targets do:
    shedding load lowers the served requests' latency, so it alone could pass a run
    that failed a third of its requests."""
    from npsim.sweep.targets import PlanError, parse_target, with_guard

    try:
        return with_guard([parse_target(text, "--check") for text in texts])
    except PlanError as exc:
        usage(str(exc))


def checks_fit(targets: Sequence[Target], scenario: Scenario) -> None:
    """What a check's metric needs of the scenario (an SLO for the error budget's)."""
    from npsim.sweep.targets import PlanError, check_metric

    try:
        for target in targets:
            check_metric(target, scenario, "--check")
    except PlanError as exc:
        usage(str(exc))


def evaluate(targets: Sequence[Target], results: dict[str | None, Any]) -> list[CheckResult]:
    """The checks against each case's result (its ``all`` figures, and kube-proxy's
    ``first_packet_*`` as a sweep records them)."""
    from npsim.sweep.store import tidy_metrics
    from npsim.sweep.targets import as_rows, evaluate_checks

    if not targets:
        return []
    return evaluate_checks(targets, {case: as_rows(tidy_metrics("", 0, result))
                                     for case, result in results.items()})


def _number(value: Any) -> float | None:
    """JSON has no NaN: a value a run could not measure is null."""
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _metrics(summary: pd.DataFrame, scope: str = "all") -> dict[str, dict[str, Any]]:
    part = summary[summary["scope"] == scope]
    return {str(r.metric): {"value": _number(r.value), "ci_low": _number(r.ci_low),
                            "ci_high": _number(r.ci_high)}
            for r in part.itertuples(index=False)}


def _populations(summary: pd.DataFrame, prefix: str = "population:"
                 ) -> dict[str, dict[str, dict[str, Any]]]:
    scopes = [s for s in dict.fromkeys(summary["scope"]) if s.startswith(prefix)]
    return {s.split(":", 1)[1]: _metrics(summary, s) for s in scopes}


def document(scenario: Scenario, checks: list[CheckResult], *,
             summary: pd.DataFrame | None = None, folder: Path | None = None,
             each: str | None = None, cases: dict[str, pd.DataFrame] | None = None,
             case_folders: dict[str, Path] | None = None,
             worst: pd.DataFrame | None = None) -> dict[str, Any]:
    """The ``--json`` document (README "npsim run --json")."""
    spec = scenario.spec
    doc: dict[str, Any] = {"npsim": __version__, "scenario": spec.name,
                           "seed": spec.run.seed, "replications": spec.run.replications}
    if summary is not None:
        doc["metrics"] = _metrics(summary)
        doc["populations"] = _populations(summary)
        services = _populations(summary, "service:")  # pods call Services
        if services:
            doc["services"] = services
    if each is not None and cases is not None and worst is not None:
        doc["each"] = each
        doc["cases"] = {case: {"metrics": _metrics(s), "folder": (
            str(case_folders[case]) if case_folders else None)} for case, s in cases.items()}
        doc["worst"] = {str(r.metric): {"value": _number(r.value), "ci_low": _number(r.ci_low),
                                        "ci_high": _number(r.ci_high), "down": r.case,
                                        "best": _number(r.best), "best_down": r.best_case}
                        for r in worst.itertuples(index=False)}
    doc["checks"] = [{"check": str(c.target), "metric": c.target.metric,
                      "scope": c.target.scope or "all", "op": c.target.op,
                      "threshold": c.target.threshold, "value": _number(c.value),
                      "passed": c.passed, "down": c.case, "implied": c.target.implied}
                     for c in checks]
    doc["passed"] = all(c.passed for c in checks)
    doc["folder"] = str(folder) if folder is not None else None
    return doc


def finish(checks: list[CheckResult], doc: dict[str, Any] | None) -> None:
    """Print the checks (stderr under --json), the JSON document, and exit 1 if a check
    failed."""
    for check in checks:
        click.echo(check.line(), err=doc is not None)
    if doc is not None:
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
    if not all(c.passed for c in checks):
        sys.exit(1)


def case_folder(case: str, each: str) -> str:
    """A case's folder name: ``<node>-down`` (zone names are free text: made safe)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", case) + "-down"


def run_each_down(loaded: Scenario, each: str, target: Path | None, request: RunRequest,
                  *, run: Callable[..., Any], progress: Callable[[float], None],
                  checks: list[Target], limits: Callable[[Scenario], None]) -> None:
    """``npsim run --each-node-down``: one run per case into ``target/<case>-down/``
    (written together, atomically; None: nothing written), the cases' figures and the
    worst case, the checks against the worst. ``request`` says ``--force``,
    ``--no-report`` and ``--json``."""
    force, no_report, as_json = request.force, request.no_report, request.as_json
    from npsim.results.store import ResultExistsError, ResultLockedError, write_atomically
    from npsim.sweep.down import DownError, DownRuns, down_cases

    try:
        cases = down_cases(loaded, each)
    except DownError as exc:
        usage(str(exc))
    scenarios = {case.name: case.apply(loaded) for case in cases}
    for changed in scenarios.values():
        limits(changed)
    results = {}
    for i, (name, scenario) in enumerate(scenarios.items()):
        results[name] = run(scenario, progress=lambda f, i=i: progress((i + f) / len(cases)))
    runs = DownRuns(each, results)
    spec = loaded.spec
    click.echo(f"npsim {__version__}  scenario {spec.name}  seed {spec.run.seed}  "
               f"replications {spec.run.replications}  {len(cases)} runs with each {each} "
               f"down in {sum(r.wall_seconds for r in results.values()):.2f}s wall",
               err=as_json)
    click.echo(runs.report(), err=as_json)
    folders: dict[str, Path] = {}
    written = None
    if target is not None:
        def write(tmp: Path) -> None:
            for name, result in results.items():
                sub = tmp / case_folder(name, each)
                sub.mkdir()
                result.write_files(sub)
                if not no_report:
                    from npsim.report import write_run_report

                    write_run_report(result, sub)
            runs.worst.to_csv(tmp / "worst.csv", index=False)

        try:
            written = write_atomically(target, write, overwrite=force)
        except (ResultExistsError, ResultLockedError, FileExistsError) as exc:
            usage(str(exc))
        except OSError as exc:
            usage(f"could not write {target}: {exc.strerror or exc}")
        folders = {name: written / case_folder(name, each) for name in results}
        click.echo(f"results    {written}/  (one folder per {each} down, worst.csv)",
                   err=as_json)
    summaries = {name: r.summary for name, r in results.items()}
    outcome = evaluate(checks, dict(results))
    doc = document(loaded, outcome, folder=written, each=each, cases=summaries,
                   case_folders=folders or None, worst=runs.worst) if as_json else None
    finish(outcome, doc)

