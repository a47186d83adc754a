"""``npsim ports``: the NodePorts the API server gives a scenario's Services, its port
plan checked, and a what-if of Services coming and going until the range is full."""

from __future__ import annotations

import sys

import click

from npsim.cli.common import load_or_exit, usage


@click.command()
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
        _check_churn(*churn_args, explicit_share)
    loaded = load_or_exit(scenario, allow_outside_files)
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


# Services a churn what-if may create (rate x horizon): a few seconds of simulation
MAX_CHURN_SERVICES = 10_000_000


def _check_churn(rate: float, lifetime: float, horizon: float, explicit_share: float) -> None:
    """The churn flags a simulation can finish with, or the usage error naming them."""
    if not rate > 0:
        usage("--churn must be a rate above 0 (e.g. 20/h)")
    if horizon == float("inf") and (lifetime != float("inf") or explicit_share >= 1):
        usage("--lifetime (or --explicit 1) needs --horizon: Services that are deleted, or "
              "only explicit requests, may never fill the range")
    if horizon != float("inf") and rate * horizon > MAX_CHURN_SERVICES:
        usage(f"--churn over --horizon would create about {rate * horizon:.3g} Services; "
              f"npsim simulates at most {MAX_CHURN_SERVICES:,}: shorten the horizon")


def _flag_value(flag: str, text: str | None, parse: object, default: float = 0.0) -> float:
    """A flag's parsed value, or the usage error naming that flag."""
    if not text:
        return default
    try:
        return float(parse(text))  # type: ignore[operator]
    except ValueError as exc:
        usage(f"{flag} {text!r}: {exc}")


def _plan(spec: object) -> list:
    from npsim.scenario.nodeports import PortRange
    from npsim.scenario.portplan import Band

    out = []
    for band in spec.port_plan:  # type: ignore[attr-defined]
        r = PortRange.parse(band.range)
        out.append(Band(band.name, r.base, r.last, tuple(band.services)))
    return out


def readable_rate(per_second: float) -> str:
    """``20/h`` rather than ``0.00555556/s``: the first of /s, /m, /h, /d in which the
    rate is at least 1, to three significant digits."""
    for unit, scale in (("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if per_second * scale >= 1:
            return f"{per_second * scale:.3g}/{unit}"
    return f"{per_second * 86400:.3g}/d"


def _churn_report(port_range: object, rate: float, lifetime: float, share: float,
                  plan: list, horizon: float, seed: int) -> str:
    from npsim.scenario.portplan import churn
    from npsim.streams import Streams
    from npsim.units import format_duration

    result = churn(port_range, Streams(seed).generator("churn"), rate, lifetime,  # type: ignore[arg-type]
                   share, plan, horizon)
    where = "a plan band (uniformly)" if plan else "the whole range"
    lines = [f"# churn: Services created at {readable_rate(rate)}"
             + (f" (one every {format_duration(1 / rate, 3)}), " if rate > 0 else ", ")
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
