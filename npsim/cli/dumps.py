"""``npsim import``: kubectl dumps or manifest folders turned into a scenario file."""

from __future__ import annotations

from pathlib import Path

import click

from npsim.cli.common import refuse, usage


@click.command("import")
@click.argument("dumps", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario file to write.")
@click.option("--namespace", default=None, help="Only objects of this namespace.")
@click.option("--service", default=None, help="Only this Service and what backs it.")
@click.option("--rates", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV service,namespace,rate_per_s (requests per second per Service).")
@click.option("--service-times", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="CSV deployment,namespace,service_time[,workers].")
@click.option("--calls", "calls", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="CSV caller,service,port[,count]: sets those workloads' "
              "calls: (replacing the ones proposed from their env).")
@click.option("--force", is_flag=True, help="Replace a scenario npsim import wrote before.")
def import_(dumps: tuple[Path, ...], out: Path, namespace: str | None, service: str | None,
            rates: Path | None, service_times: Path | None, calls: Path | None,
            force: bool) -> None:
    """Turn kubectl dumps or manifest folders (DUMPS) into a scenario file."""
    from npsim.importer import DumpError, OutputExistsError, import_cluster

    try:
        summary = import_cluster(list(dumps), out, namespace, service, rates, service_times,
                                 force, calls)
    except DumpError as exc:
        refuse(exc.report())
    except OutputExistsError as exc:
        usage(str(exc))
    from npsim.cluster.placement import pending_problems

    warnings = list(summary.warnings)
    if summary.scenario is not None:  # pods placement: scheduler would leave Pending
        warnings += [message for _, message in pending_problems(summary.scenario)]
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(summary.report())
    click.echo(f"next: npsim validate {out} && npsim run {out}")
