"""``npsim`` command line: run, validate, explain, import, sweep, plan, compare.

Bad input (scenario, manifests, flags) prints every problem, with file, line, column and
field, and exits 2 without writing anything. Only this module reads argv.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from npsim.scenario.problems import ScenarioError  # light: yaml only
from npsim.version import __version__

if TYPE_CHECKING:  # heavy modules are imported by the command that needs them
    from npsim.scenario.scenario import Scenario

EXIT_BAD_INPUT = 2


def _load(path: str, allow_outside_files: bool = False) -> Scenario:
    from npsim.scenario.loader import load_scenario
    from npsim.scenario.problems import ScenarioError

    try:
        scenario = load_scenario(path, allow_outside_files=allow_outside_files)
    except ScenarioError as exc:
        click.echo(exc.report(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    for warning in scenario.warnings:
        click.echo(f"warning: {warning}", err=True)
    return scenario


def _preflight(scenario: Scenario, max_requests: int | None, max_memory: int | None) -> Any:
    """The checks a run needs before it starts (limits, addresses): exit 2 if any fails."""
    from npsim.preflight import preflight
    from npsim.scenario.problems import ScenarioError

    try:
        return preflight(scenario, max_requests, max_memory)
    except ScenarioError as exc:
        click.echo(exc.report(), err=True)
        sys.exit(EXIT_BAD_INPUT)


class _Size(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from npsim.units import parse_size

        try:
            size = parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size <= 0:
            self.fail("must be > 0", param, ctx)
        return size


def _limit_options(command: Any) -> Any:
    """--max-requests, --max-memory and --allow-outside-files (run and validate)."""
    command = click.option(
        "--allow-outside-files", is_flag=True,
        help="Read manifest and sample files outside the scenario's folder too.")(command)
    command = click.option(
        "--max-memory", type=_Size(), default=None,
        help="Refuse runs estimated to need more memory (e.g. 16GiB; default: half of "
             "this machine's; also run.limits.maxMemory).")(command)
    return click.option(
        "--max-requests", type=click.IntRange(min=1), default=None,
        help="Refuse runs estimated to generate more requests, all replications "
             "together (default 100,000,000; also run.limits.maxRequests).")(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="npsim")
def main() -> None:
    """Simulate Kubernetes NodePort traffic request by request."""


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@_limit_options
def validate(scenario: str, max_requests: int | None, max_memory: int | None,
             allow_outside_files: bool) -> None:
    """Check SCENARIO and report every problem at once (exit 2 if any)."""
    from npsim.units import format_size

    loaded = _load(scenario, allow_outside_files)
    estimate = _preflight(loaded, max_requests, max_memory)
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
            click.echo(exc.report(), err=True)
            sys.exit(EXIT_BAD_INPUT)
    click.echo(
        f"{scenario}: ok - {len(spec.cluster.nodes)} nodes, {len(loaded.services)} services, "
        f"{len(loaded.deployments)} deployments, {len(spec.clients)} client populations"
        + variants + (f", {len(loaded.warnings)} warnings" if loaded.warnings else "")
        + f"; about {estimate.requests:,.0f} requests, {format_size(estimate.memory)}"
    )


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Result folder (default results/<scenario-name>/seed-<seed>).")
@click.option("--force", is_flag=True, help="Replace an existing result folder.")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Override run.seed.")
@click.option("--replications", type=click.IntRange(min=1), default=None,
              help="Override run.replications.")
@click.option("--no-save", is_flag=True, help="Print the summary only; write nothing.")
@click.option("--no-report", is_flag=True,
              help="Skip figures/*.png and report.html in the result folder.")
@click.option("--set", "settings", multiple=True, metavar="PATH=VALUE",
              help="Change a scenario key, e.g. --set workloads.nginx.workers=8 "
                   "(YAML key path and value; repeatable).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run replications on this many processes (same results for any N).")
@_limit_options
def run(scenario: str, out: str | None, force: bool, seed: int | None,
        replications: int | None, no_save: bool, settings: tuple[str, ...], jobs: int,
        max_requests: int | None, max_memory: int | None, allow_outside_files: bool,
        no_report: bool) -> None:
    """Run SCENARIO, print a summary and write the result folder."""
    from npsim.api import run as run_scenario
    from npsim.results.store import ResultExistsError, ResultLockedError, check_target
    from npsim.scenario.problems import ScenarioError

    if out is not None and not out.strip():
        _usage("--out needs a folder name (it was empty)")
    loaded = _with_settings(_load(scenario, allow_outside_files), settings)
    if seed is not None:
        loaded.spec.run.seed = seed
    if replications is not None:
        loaded.spec.run.replications = replications
    _preflight(loaded, max_requests, max_memory)
    default = Path("results") / loaded.spec.name / f"seed-{loaded.spec.run.seed}"
    target = Path(out) if out is not None else default
    if not no_save:
        try:
            check_target(target, force)
        except FileExistsError as exc:
            _usage(str(exc))
        _check_writable(target)
    total = loaded.spec.run.replications
    steps = 1000
    with click.progressbar(length=steps, label="simulating", file=sys.stderr,
                           hidden=not sys.stderr.isatty()) as bar:

        def advance(fraction: float) -> None:
            bar.update(int(fraction * steps) - bar.pos)

        try:
            result = run_scenario(loaded, progress=advance, jobs=jobs,
                                  max_requests=max_requests, max_memory=max_memory)
        except ScenarioError as exc:
            click.echo(exc.report(), err=True)
            sys.exit(EXIT_BAD_INPUT)
    click.echo(f"npsim {__version__}  scenario {loaded.spec.name}  seed {loaded.spec.run.seed}"
               f"  replications {total}  simulated {result.end_time:g}s"
               f" in {result.wall_seconds:.2f}s wall")
    click.echo(result.report())
    if no_save:
        return
    try:
        written = result.save(target, overwrite=force, report=not no_report)
    except (ResultExistsError, ResultLockedError, FileExistsError) as exc:
        _usage(str(exc))
    except OSError as exc:
        _usage(f"could not write {target}: {exc.strerror or exc}")
    click.echo(f"results    {written}/")
    if not no_report:
        click.echo(f"report     {written / 'report.html'}")


@main.command()
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(file_okay=False, exists=True))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Folder for compare.html and figures/ (default: print the table only).")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def compare(folders: tuple[str, ...], out: str | None, force: bool) -> None:
    """Compare result FOLDERS side by side: key metrics with CIs, overlaid latency CDFs."""
    from npsim.api import load_result
    from npsim.report import compare_table, write_compare_report
    from npsim.results.store import write_atomically

    target = Path(out) if out is not None else None
    if target is not None:  # refuse before loading and printing anything
        if target.exists() and not force:
            _usage(f"{target} already exists; npsim does not overwrite results. "
                   "Pass another --out DIR, or --force to replace it.")
        _check_writable(target)
    labels = _compare_labels(folders)
    results = {}
    for label, folder in zip(labels, folders, strict=True):
        try:
            results[label] = load_result(folder)
        except FileNotFoundError as exc:
            _usage(str(exc))
        except ScenarioError as exc:
            click.echo(exc.report(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        except (OSError, ValueError) as exc:  # a damaged file (pyarrow's errors are these)
            _usage(f"{folder}: not a readable npsim result folder ({_first_line(exc)})")
    try:
        table = compare_table(results)
    except (KeyError, ValueError, TypeError) as exc:  # a summary.csv edited out of shape
        _usage(f"the result folders cannot be compared: a summary.csv is not npsim's "
               f"({_first_line(exc)})")
    click.echo(table.to_string())
    if target is None:
        return
    sources = dict(zip(labels, folders, strict=True))
    try:
        write_atomically(target, lambda tmp: write_compare_report(results, tmp, sources),
                         overwrite=force)
    except OSError as exc:
        _usage(f"could not write {target}: {exc.strerror or exc}")
    click.echo(f"report     {target / 'compare.html'}")


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _compare_labels(folders: tuple[str, ...]) -> list[str]:
    """Short labels: the folders' paths without their common prefix."""
    parts = [Path(f).resolve().parts for f in folders]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    labels = ["/".join(p[common:]) for p in parts]
    if len(set(labels)) < len(labels):  # the same folder twice
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--service", default=None, help="Only this Service (default: all).")
@click.option("--node", default=None, help="Node whose kube-proxy to show (default: first).")
@click.option("--trace", "trace_from", default=None, metavar="SRC_IP[:PORT]",
              help="Walk one new connection from this client address through the rules.")
@click.option("--at", "at_time", default=None, metavar="TIME",
              help="Run the scenario to this time first (e.g. 90s) and show the rules then.")
@click.option("--allow-outside-files", is_flag=True,
              help="Read manifest and sample files outside the scenario's folder too.")
def explain(scenario: str, service: str | None, node: str | None,
            trace_from: str | None, at_time: str | None, allow_outside_files: bool) -> None:
    """Print what kube-proxy programs on a node (iptables-save, nft, ipvsadm style)."""
    from npsim.explain import firewall_rules, render, trace
    from npsim.sim.engine import Simulation
    from npsim.units import parse_duration

    loaded = _load(scenario, allow_outside_files)
    at = None
    if at_time is not None:
        try:
            at = parse_duration(at_time)
        except ValueError as exc:
            _usage(f"--at {at_time!r}: {exc}")
        duration = loaded.spec.run.duration
        if at < 0:
            _usage(f"--at {at_time!r}: must not be negative")
        if duration is not None and at > duration:
            _usage(f"--at {at_time!r}: after the end of the run ({duration:g}s in {scenario})")
    client_ip, src_port = _parse_trace(trace_from) if trace_from is not None else (0, 0)
    sim = Simulation(loaded)
    # names are checked before simulating up to --at, so a typo costs nothing
    names = [n.name for n in sim.cluster.nodes]
    if node is not None and node not in names:
        _usage(f"--node {node!r}: no such node in {scenario} (nodes: {', '.join(names)})")
    services = sorted({sp.service.name for sp in sim.cluster.service_ports})
    if service is not None and service not in services:
        _usage(f"--service {service!r}: no such NodePort Service in {scenario} "
               f"(services: {', '.join(services)})")
    if at is not None:
        sim.advance(at)
    proxy = sim.proxies[names.index(node) if node else 0]
    when = f", at {at:g}s" if at is not None else ""
    click.echo(f"# node {proxy.node.name}, kube-proxy mode {proxy.mode}{when}")
    click.echo(render(proxy, sim.cluster, service))
    if sim.guard is not None:
        click.echo("")
        click.echo(firewall_rules(sim.guard, proxy.node.index))
    if trace_from is None:
        return
    targets = [sp for sp in sim.cluster.service_ports if service in (None, sp.service.name)]
    click.echo("")
    click.echo("# trace of one new connection")
    for step in trace(proxy, sim.cluster, targets[0], client_ip, src_port,
                      loaded.spec.cluster.other_services.count, sim.guard):
        click.echo(step)


_JOBS_OPTION = click.option("--jobs", type=click.IntRange(min=1), default=None,
                            help="Processes to use (default: every core).")


def _with_settings(scenario: Scenario, settings: tuple[str, ...]) -> Scenario:
    """``--set PATH=VALUE`` changes, validated like the file (exit 2 naming the path)."""
    if not settings:
        return scenario
    from npsim.scenario.changes import ChangeError, parse_assignment

    changes = {}
    for text in settings:
        try:
            path, value = parse_assignment(text)
        except ChangeError as exc:
            _usage(str(exc))
        changes[path] = value
    try:
        changed = scenario.with_changes(changes)
    except ScenarioError as exc:
        click.echo(exc.report().replace("in the scenario", "in the --set changes", 1),
                   err=True)
        sys.exit(EXIT_BAD_INPUT)
    known = {w.message for w in scenario.warnings}
    for warning in changed.warnings:  # what the changes brought (e.g. a key ignored)
        if warning.message not in known:
            click.echo(f"warning: --set: {warning.path}: {warning.message}", err=True)
    return changed


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False), default=None,
              help="Sweep folder (default results/<scenario-name>/sweep-seed-<seed>); "
                   "a rerun into it resumes, recomputing nothing that finished.")
@_JOBS_OPTION
@click.option("--dask", "dask_address", default=None, metavar="tcp://HOST:PORT",
              help="Run on this Dask scheduler instead (its workers must see --out).")
@click.option("--replications", type=click.IntRange(min=1), default=None,
              help="Override run.replications.")
@click.option("--set", "settings", multiple=True, metavar="PATH=VALUE",
              help="Change a key in every variant (repeatable).")
def sweep(scenario: str, out: str | None, jobs: int | None, dask_address: str | None,
          replications: int | None, settings: tuple[str, ...]) -> None:
    """Run every variant x replication of SCENARIO and compare the variants.

    Writes OUT/sweep.parquet (variant, replication, metric, value), summary.csv (mean and
    95% CI per variant), paired.csv (differences against the baseline variant),
    report.md, and one result folder per run under OUT/runs/. Exit 1 if a run failed.
    """
    from npsim.sweep.pool import WorkerDied
    from npsim.sweep.runner import sweep as run_sweep
    from npsim.sweep.store import SweepMismatch

    loaded = _with_settings(_load(scenario), settings)
    if replications is not None:
        loaded = _with_settings(loaded, (f"run.replications={replications}",))
    target = Path(out) if out else (Path("results") / loaded.spec.name
                                    / f"sweep-seed-{loaded.spec.run.seed}")
    _check_writable(target)
    client = _dask_client(dask_address) if dask_address else None
    bar = _RunsBar()
    try:
        result = run_sweep(loaded, target, jobs=jobs, client=client, progress=bar.update)
    except ScenarioError as exc:
        click.echo(exc.report(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    except SweepMismatch as exc:
        _usage(str(exc))
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
    click.echo(f"npsim {__version__}  sweep {loaded.spec.name}  {n} variant{'s' * (n != 1)} x "
               f"{loaded.spec.run.replications} replications  {result.computed} runs made "
               f"in {result.wall_seconds:.1f}s wall")
    click.echo(result.report())
    click.echo(f"results    {result.folder}/")
    if not result.failures.empty:
        sys.exit(1)


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--target", required=True, metavar='"METRIC < VALUE"',
              help='What must hold, e.g. "latency_p99 < 50ms" or "throughput >= 900/s".')
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
@_JOBS_OPTION
@click.option("--dask", "dask_address", default=None, metavar="tcp://HOST:PORT",
              help="Run the probes on this Dask scheduler instead.")
@click.option("--set", "settings", multiple=True, metavar="PATH=VALUE",
              help="Change a scenario key first (repeatable).")
def plan(scenario: str, target: str, vary: str, largest: bool, replications: int | None,
         max_replications: int | None, jobs: int | None, dask_address: str | None,
         settings: tuple[str, ...]) -> None:
    """Find the smallest (or largest) value of a key that meets a target, with 95%
    confidence, by bisection (assumes the metric moves one way with the value)."""
    from npsim.sweep.planner import PlanError, parse_target, parse_vary, plan_search

    try:  # the flags first: a typo costs neither a load nor a probe
        parse_target(target)
        parse_vary(vary)
    except PlanError as exc:
        _usage(str(exc))
    loaded = _with_settings(_load(scenario), settings)
    client = _dask_client(dask_address) if dask_address else None
    try:
        outcome = plan_search(loaded, target, vary, largest=largest,
                              replications=replications, max_replications=max_replications,
                              jobs=jobs, client=client, log=click.echo)
    except PlanError as exc:
        _usage(str(exc))
    except ScenarioError as exc:
        click.echo(exc.report(), err=True)
        sys.exit(EXIT_BAD_INPUT)
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
    from npsim.sweep.on_dask import connect

    try:
        return connect(address)
    except ImportError:
        _usage("--dask needs Dask: pip install 'npsim[dask]'")
    except (OSError, TimeoutError, ValueError) as exc:
        _usage(f"--dask {address}: cannot reach the scheduler ({exc})")


@main.command("import")
@click.argument("dumps", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario file to write.")
@click.option("--namespace", default=None, help="Only objects of this namespace.")
@click.option("--service", default=None, help="Only this Service and what backs it.")
@click.option("--rates", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV service,namespace,rate_per_s (requests per second per Service).")
@click.option("--service-times", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="CSV deployment,namespace,service_time[,workers].")
@click.option("--force", is_flag=True, help="Replace a scenario npsim import wrote before.")
def import_(dumps: tuple[Path, ...], out: Path, namespace: str | None, service: str | None,
            rates: Path | None, service_times: Path | None, force: bool) -> None:
    """Turn kubectl dumps or manifest folders (DUMPS) into a scenario file."""
    from npsim.importer import DumpError, OutputExistsError, import_cluster

    try:
        summary = import_cluster(list(dumps), out, namespace, service, rates, service_times,
                                 force)
    except DumpError as exc:
        click.echo(exc.report(), err=True)
        sys.exit(EXIT_BAD_INPUT)
    except OutputExistsError as exc:
        _usage(str(exc))
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(summary.report())
    click.echo(f"next: npsim validate {out} && npsim run {out}")


@main.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--churn", "churn_rate", default=None, metavar="RATE",
              help="What-if: Services created at this rate (e.g. 20/h) until the range is full.")
@click.option("--lifetime", default=None, metavar="DURATION",
              help="Churn: mean lifetime of a Service (e.g. 720h; default: never deleted).")
@click.option("--explicit", "explicit_share", type=click.FloatRange(0, 1), default=0.3,
              show_default=True, help="Churn: share of new Services asking for a nodePort.")
@click.option("--horizon", default=None, metavar="DURATION",
              help="Churn: stop after this long (default: when the range is full).")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Override run.seed.")
@click.option("--allow-outside-files", is_flag=True,
              help="Read manifest and sample files outside the scenario's folder too.")
def ports(scenario: str, churn_rate: str | None, lifetime: str | None, explicit_share: float,
          horizon: str | None, seed: int | None, allow_outside_files: bool) -> None:
    """Print the NodePorts the API server gives SCENARIO's Services and check its port
    plan (exit 1 if the plan is broken); --churn adds a what-if of Services coming and
    going until the range is full."""
    from npsim.scenario.nodeports import allocate_scenario, scenario_range
    from npsim.scenario.portplan import allocation_table, check_plan, format_table
    from npsim.units import parse_duration, parse_rate

    churn_args = None
    if churn_rate is not None:  # check the flags before printing anything
        churn_args = (_flag_value("--churn", churn_rate, parse_rate),
                      _flag_value("--lifetime", lifetime, parse_duration, float("inf")),
                      _flag_value("--horizon", horizon, parse_duration, float("inf")))
    loaded = _load(scenario, allow_outside_files)
    if seed is not None:
        loaded.spec.run.seed = seed
    spec = loaded.spec
    port_range = scenario_range(spec.cluster)
    services = list(loaded.services.values())
    allocation = allocate_scenario(services, spec.cluster, spec.run.seed)
    bands = port_range.bands()
    static = bands["static"]
    click.echo(f"# NodePort range {port_range} ({port_range.size} ports): "
               + (f"static band {static[0]}-{static[1]} ({port_range.offset} ports), "
                  if static else "no static band, ")
               + f"dynamic band {bands['dynamic'][0]}-{bands['dynamic'][1]} "
               f"({port_range.size - port_range.offset} ports); seed {spec.run.seed}")
    plan = _plan(spec)
    rows = allocation_table(services, allocation, plan)
    click.echo(format_table(rows))
    problems = check_plan(plan, port_range) + [
        f"{r.namespace}/{r.service} {r.port_name or r.port}: nodePort {r.node_port} {r.violation}"
        for r in rows if r.violation]
    if plan:
        click.echo("")
        click.echo("# port plan: " + ", ".join(str(b) for b in plan))
        click.echo("\n".join(f"violation: {x}" for x in problems) if problems else
                   "no violations")
    if churn_args is not None:
        rate, life, until = churn_args
        click.echo("")
        click.echo(_churn_report(port_range, rate, life, explicit_share, plan, until,
                                 spec.run.seed))
    if plan and problems:
        sys.exit(1)


def _flag_value(flag: str, text: str | None, parse: object, default: float = 0.0) -> float:
    """A flag's parsed value, or the usage error naming that flag."""
    if not text:
        return default
    try:
        return float(parse(text))  # type: ignore[operator]
    except ValueError as exc:
        _usage(f"{flag} {text!r}: {exc}")
        raise  # unreachable: _usage exits


def _plan(spec: object) -> list:
    from npsim.scenario.nodeports import PortRange
    from npsim.scenario.portplan import Band

    out = []
    for band in spec.port_plan:  # type: ignore[attr-defined]
        r = PortRange.parse(band.range)
        out.append(Band(band.name, r.base, r.last, tuple(band.services)))
    return out


def _churn_report(port_range: object, rate: float, lifetime: float, share: float,
                  plan: list, horizon: float, seed: int) -> str:
    from npsim.scenario.portplan import churn
    from npsim.streams import Streams
    from npsim.units import format_duration, format_rate

    result = churn(port_range, Streams(seed).generator("churn"), rate, lifetime,  # type: ignore[arg-type]
                   share, plan, horizon)
    where = "a plan band (uniformly)" if plan else "the whole range"
    lines = [f"# churn: Services created at {format_rate(rate)} ({rate * 3600:.4g}/h), "
             + (f"mean lifetime {format_duration(lifetime)}" if lifetime != float("inf")
                else "never deleted")
             + f"; {share:.0%} ask for an explicit nodePort from {where}"]
    if result.full_at is not None:
        lines.append(f"first 'failed to allocate a nodePort: range is full' after "
                     f"{format_duration(result.full_at)} ({result.full_at / 86400:.3g} days), "
                     f"with {result.alive_at_full} ports in use, {result.created} Services "
                     f"created, {result.deleted} deleted")
    else:
        lines.append(f"the range was never full within {format_duration(result.end)}: "
                     f"{result.created} Services created, {result.deleted} deleted")
    lines.append(f"explicit requests: {result.explicit}, of which {result.collisions} "
                 f"({result.collision_rate:.1%}) found their port taken: "
                 f"{result.with_automatic} by an automatic allocation, {result.with_explicit} "
                 f"by another explicit request; {result.gave_up} gave up after 10 retries")
    for name, (asked, collided) in result.per_band.items():
        if plan and asked:
            lines.append(f"  band {name}: {asked} requests, {collided} collisions "
                         f"({collided / asked:.1%})")
    return "\n".join(lines)


MAX_OUT_NAME = 255 - len(".npsim-12345678.tmp") - 1  # NAME_MAX less npsim's own additions


def _check_writable(target: Path) -> None:
    """Fail before a long run, not after it, when the result folder cannot be made."""
    too_long = [part for part in Path(os.path.abspath(target)).parts
                if len(part.encode()) > MAX_OUT_NAME]
    if too_long:  # the hidden temporary folder beside it (.NAME.npsim-*.tmp) must fit too
        _usage(f"--out {str(target)[:80]}...: a folder name of {len(too_long[0].encode())} "
               f"bytes; at most {MAX_OUT_NAME}")
    parent = Path(os.path.abspath(target)).parent
    try:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    except OSError as exc:
        _usage(f"--out {target}: {exc.strerror or exc}")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        _usage(f"--out {target}: cannot create a folder under {parent} (not a writable "
               "directory)")


def _parse_trace(text: str) -> tuple[int, int]:
    import ipaddress

    address, _, port_text = text.partition(":")
    try:
        client_ip = int(ipaddress.IPv4Address(address))
        src_port = int(port_text) if port_text else 40000
        if not 1 <= src_port <= 65535:
            raise ValueError(src_port)
    except ValueError:
        _usage(f"--trace {text!r}: expected SRC_IP[:PORT] such as 203.0.113.7:40000")
    return client_ip, src_port


def _usage(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":  # pragma: no cover
    main()
