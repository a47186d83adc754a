"""``npsim explain``: the rules kube-proxy programs on a node, and one connection's walk
through them."""

from __future__ import annotations

import click

from npsim.cli.common import SET_OPTION, load_or_exit, preflight_or_exit, usage, with_settings


@click.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--service", default=None, help="Only this Service (default: all).")
@click.option("--node", default=None, help="Node whose kube-proxy to show (default: first).")
@click.option("--trace", "trace_from", default=None, metavar="SRC_IP[:PORT]",
              help="Walk one new connection from this client address through the rules.")
@click.option("--at", "at_time", default=None, metavar="TIME",
              help="Run the scenario to this time first (e.g. 90s) and show the rules, "
                   "the node, its kube-proxy and the pods as they are then.")
@click.option("--connections", type=click.IntRange(1, 100_000), default=None, metavar="N",
              help="Open N new connections (seeded sources) and show their split over "
                   "the endpoints beside the rules' probabilities.")
@SET_OPTION
@click.option("--allow-outside-files", is_flag=True,
              help="Read manifest and sample files outside the scenario's folder too.")
def explain(scenario: str, service: str | None, node: str | None,
            trace_from: str | None, at_time: str | None, connections: int | None,
            settings: tuple[str, ...], allow_outside_files: bool) -> None:
    """Print what kube-proxy programs on a node (iptables-save, nft, ipvsadm style)."""
    from npsim.explain import firewall_rules, render, trace
    from npsim.explain.connections import split
    from npsim.explain.state import StateAt
    from npsim.sim.engine import Simulation
    from npsim.units import parse_duration

    loaded = with_settings(load_or_exit(scenario, allow_outside_files), settings)
    at = None
    if at_time is not None:
        try:
            at = parse_duration(at_time)
        except ValueError as exc:
            usage(f"--at {at_time!r}: {exc}")
        duration = loaded.spec.run.duration
        if at < 0:
            usage(f"--at {at_time!r}: must not be negative")
        if duration is not None and at > duration:
            usage(f"--at {at_time!r}: after the end of the run ({duration:g}s in {scenario})")
    client_ip, src_port = _parse_trace(trace_from) if trace_from is not None else (0, 0)
    preflight_or_exit(loaded, None, None, until=at or 0.0)  # run's checks, up to --at
    sim = Simulation(loaded)
    # names are checked before simulating up to --at, so a typo costs nothing
    names = [n.name for n in sim.cluster.nodes]
    if node is not None and node not in names:
        usage(f"--node {node!r}: no such node in {scenario} (nodes: {', '.join(names)})")
    services = sorted({sp.service.name for sp in sim.cluster.service_ports})
    if service is not None and service not in services:
        usage(f"--service {service!r}: no such NodePort Service in {scenario} "
               f"(services: {', '.join(services)})")
    # a trace enters at a NodePort: a ClusterIP-only Service (a pod's call target) has
    # none to walk; without --service, the first Service that has one
    targets = [sp for sp in sim.cluster.service_ports
               if service in (None, sp.service.name) and sp.node_port]
    if not targets and (trace_from is not None or connections is not None):
        usage(f"--service {service!r} is a ClusterIP Service: it has no NodePort, and "
              "--trace and --connections walk a connection that enters a node at a "
              "NodePort (a pod's call to its ClusterIP is not traced yet; without "
              "--trace and --connections, explain prints its rules)" if service is not None
              else f"no Service in {scenario} has a NodePort for --trace or --connections "
              "to enter at")
    state = StateAt.advance(sim, at) if at is not None else None
    proxy = sim.proxies[names.index(node) if node else 0]
    when = f", at {at:g}s" if at is not None else ""
    click.echo(f"# node {proxy.node.name}, kube-proxy mode {proxy.mode}{when}")
    if state is not None:
        for line in state.node_lines(proxy, service):
            click.echo(line)
    click.echo(render(proxy, sim.cluster, service))
    if sim.guard is not None:
        click.echo("")
        click.echo(firewall_rules(sim.guard, proxy.node.index))
    if trace_from is None and connections is None:
        return
    seed = loaded.spec.run.seed
    if trace_from is not None:
        click.echo("")
        click.echo("# trace of one new connection")
        for step in trace(proxy, sim.cluster, targets[0], client_ip, src_port,
                          loaded.spec.cluster.other_services.count, sim.guard, state, seed):
            click.echo(step)
    if connections is not None:
        click.echo("")
        # without --at: the cluster as built, read the same way (its clients' timeouts)
        for line in split(proxy, sim.cluster, targets[0], connections, seed,
                          client_ip if trace_from is not None else None,
                          state or StateAt(sim, 0.0), sim.guard):
            click.echo(line)


def _parse_trace(text: str) -> tuple[int, int]:
    import ipaddress

    address, colon, port_text = text.partition(":")
    try:
        client_ip = int(ipaddress.IPv4Address(address))
        src_port = int(port_text) if colon else 40000  # "IP:" (no port) is refused
        if not 1 <= src_port <= 65535:
            raise ValueError(src_port)
    except ValueError:
        usage(f"--trace {text!r}: expected SRC_IP[:PORT] such as 203.0.113.7:40000")
    return client_ip, src_port
