"""Who calls whom: ``calls:`` proposed from the pods' environment, or set by ``--calls``.

A dump says which Services exist but not which pods call them. The pods' environment
often does (:mod:`npsim.importer.envrefs`): each address that names another Service of
the dump, at a port it has, becomes a proposed call, written commented out under the
caller's workload for the user to confirm (the environment says a pod *can* call a
Service, not how often or in what order). ``--calls FILE.csv`` (``caller,service,port
[,count]``) sets a workload's calls outright, in row order, and replaces what its
environment proposed. Either way the calls are checked here as the scenario loader
checks them (the Service and port exist, the call graph has no cycle), so the written
file validates as it is and with every proposal uncommented.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from npsim.importer.callgraph import CallGraph
from npsim.importer.envrefs import DEFAULT_PORTS, EnvRef, env_refs, strong_address_var
from npsim.importer.inventory import Inventory
from npsim.importer.load import CallRow
from npsim.importer.plan import CallLine, ScenarioPlan, WorkloadPlan
from npsim.scenario.objects import Service, ServicePort
from npsim.scenario.problems import Problem, Problems

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
MAX_LISTED = 8  # addresses listed per kind in the summary; the rest are counted
UNCALLED = ("no Service selects these pods, so nothing calls them and these calls would "
            "never run (a load generator is a clients: population)")


@dataclass
class CallsReport:
    """What the import did with calls, for the summary it prints."""

    proposed: int = 0
    proposing: list[str] = field(default_factory=list)  # workloads with proposals
    missing: list[str] = field(default_factory=list)  # "frontend VAR=value"
    unproxied: list[str] = field(default_factory=list)  # headless or ExternalName
    ambiguous: list[str] = field(default_factory=list)
    unknown_port: list[str] = field(default_factory=list)
    cycles: list[str] = field(default_factory=list)
    set_calls: int = 0
    set_for: list[str] = field(default_factory=list)
    source: str | None = None  # the --calls file

    def lines(self) -> list[str]:
        out = []
        if self.proposed:
            n = len(self.proposing)
            out += [f"calls: {self.proposed} proposed from the pods' env for {n} workload"
                    f"{'s' if n != 1 else ''} ({_listed(self.proposing)}), written commented "
                    "out (# calls:) under each",
                    "  to confirm: delete the '# ' before calls: and before each call you "
                    "keep, or set calls with --calls FILE.csv (caller,service,port,count)"]
        for what, items in (("of Services not in the dump (ignored)", self.missing),
                            ("of headless or ExternalName Services (no ClusterIP for "
                             "kube-proxy to program; not proposed)", self.unproxied),
                            ("naming no port of a Service that has several (add the call "
                             "by hand)", self.ambiguous),
                            ("naming a port the Service does not have", self.unknown_port),
                            ("left out: they would close a call cycle", self.cycles)):
            if items:
                out.append(f"  env addresses {what}: {_listed(items)}")
        if self.set_calls:
            out.append(f"calls: {self.set_calls} set from --calls {self.source} for "
                       f"{_listed(self.set_for)}")
        return out


def _listed(items: list[str]) -> str:
    more = len(items) - MAX_LISTED
    return ", ".join(items[:MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def plan_calls(plan: ScenarioPlan, inv: Inventory, rows: list[CallRow],
               source: Path | None, p: Problems) -> CallsReport:
    """Set ``--calls`` rows (problems into ``p``) and propose calls from the env of every
    other Deployment or StatefulSet."""
    report = CallsReport(source=str(source) if source is not None else None)
    graph = CallGraph(plan)
    by_name = {w.name: w for w in plan.workloads}
    _set_rows(rows, plan, by_name, graph, report, p)
    selected = {name for s in plan.services for name in graph.backing(s)}
    plan.warnings += [f"--calls: workload {name}: {UNCALLED}" for name in report.set_for
                      if name not in selected]
    services: dict[tuple[str, str], Service] = {(s.namespace, s.name): s
                                                for s in plan.services}
    services.update({("", s.cluster_ip): s for s in plan.services if s.cluster_ip})
    namespaces = {s.namespace for s in plan.services}
    links = _service_links(plan.services)
    env_of = {(w.deployment.namespace, w.deployment.name): w.env for w in inv.workloads}
    for dep in plan.deployments:
        w = by_name.get(dep.name)
        env = env_of.get((dep.namespace, dep.name), [])
        if w is None or w.calls or not env:
            continue
        env = _expanded(env, dep.namespace, links)
        _propose(w, dep.namespace, env, services, namespaces, inv.unproxied, graph,
                 report)
        if w.proposed:
            report.proposed += len(w.proposed)
            report.proposing.append(w.name)
            if w.name not in selected:
                w.call_notes.append(UNCALLED)
    return report


def _set_rows(rows: list[CallRow], plan: ScenarioPlan, by_name: dict[str, WorkloadPlan],
              graph: CallGraph, report: CallsReport, p: Problems) -> None:
    services = {s.name: s for s in plan.services}
    for row in rows:
        w = by_name.get(row.caller)
        if w is None:
            p.errors.append(Problem(row.marks["caller"], "caller", f"no workload "
                                    f"{row.caller!r} among the imported objects (workloads: "
                                    f"{_known(by_name)})"))
            continue
        svc = services.get(row.service)
        if svc is None:
            p.errors.append(Problem(row.marks["service"], "service", f"no Service "
                                    f"{row.service!r} among the imported objects (Services: "
                                    f"{_known(services)})"))
            continue
        port = _port(svc, row.port) if row.port is not None else (
            svc.ports[0] if len(svc.ports) == 1 else None)
        if port is None:
            got = (f"no port {row.port!r}" if row.port is not None
                   else "several ports, and the cell is empty")
            p.errors.append(Problem(row.marks["port"], "port", f"Service {svc.name!r} has "
                                    f"{got} (ports: {_ports(svc)}): name one by number or name"))
            continue
        cycle = graph.add(w.name, svc)
        if cycle is not None:
            p.errors.append(Problem(row.marks["caller"], "caller", f"the call {w.name} -> "
                                    f"{svc.name} closes a cycle in the call graph (a request "
                                    f"would call itself without end): {' -> '.join(cycle)}"))
            continue
        line = row.marks["caller"].line
        w.calls.append(CallLine(svc.name, row.port if row.port is not None else port.port,
                                row.count, f"--calls {Path(report.source or '').name} "
                                f"line {line}"))
        report.set_calls += 1
        if w.name not in report.set_for:
            report.set_for.append(w.name)


def _propose(w: WorkloadPlan, namespace: str, env: list[tuple[str, str, str]],
             services: dict[tuple[str, str], Service], namespaces: set[str],
             unproxied: set[tuple[str, str]], graph: CallGraph,
             report: CallsReport) -> None:
    """The workload's proposals, in env order, one per Service port (the variables that
    name the same port are listed together); what is left out goes to ``report``, once
    per variable."""
    values = {(c, v): value for c, v, value in env}
    lines: dict[tuple[str, int], CallLine] = {}
    named: dict[tuple[str, int], list[str]] = {}  # the variables behind each line
    ambiguous: dict[str, tuple[str, Service]] = {}
    left_out: dict[str, None] = {}  # report entries, in order, without repeats
    for container, var, value in env:
        shown = f"{var}={_clip(value)}"
        for ref in env_refs(var, value):
            ref = _paired_port(ref, container, var, values)
            svc = services.get(("", ref.name) if ref.ip else (ref.namespace or namespace,
                                                               ref.name))
            if svc is None:
                if not ref.ip and (ref.namespace or namespace, ref.name) in unproxied:
                    left_out.setdefault(f"unproxied:{w.name} {shown}")
                elif _looks_like_service(ref, var, namespaces):
                    left_out.setdefault(f"missing:{w.name} {shown}")
                continue
            if w.name in graph.backing(svc):
                continue  # the pod's own Service
            port = _resolve_port(svc, ref)
            if port is None:
                if isinstance(ref.port, int):
                    left_out.setdefault(f"port:{w.name} {shown} (ports: {_ports(svc)})")
                elif ref.port is None:
                    ambiguous.setdefault(svc.name, (shown, svc))
                continue
            key = (svc.name, port.port)
            if key in named:
                if var not in named[key]:
                    named[key].append(var)
                continue
            named[key] = [var]
            cycle = graph.add(w.name, svc)
            if cycle is not None:
                path = " -> ".join(cycle)
                left_out.setdefault(f"cycle:{w.name} {shown} ({path})")
                w.call_notes.append(f"{shown}: a call to {svc.name} would close the cycle "
                                    f"{path}; left out")
                continue
            lines[key] = CallLine(svc.name, port.port, 1, f"env {shown}")
    for key, line in lines.items():
        line.note += "".join(f", {var}" for var in named[key][1:])
    called = {service for service, _ in lines}
    for service, (shown, svc) in ambiguous.items():
        if service not in called:
            w.call_notes.append(f"{shown} names Service {service}, which has ports "
                                f"{_ports(svc)}: add the call by hand")
            left_out.setdefault(f"ambiguous:{w.name} {shown}")
    lists = {"missing": report.missing, "unproxied": report.unproxied,
             "port": report.unknown_port,
             "cycle": report.cycles, "ambiguous": report.ambiguous}
    for entry in left_out:
        kind, text = entry.split(":", 1)
        lists[kind].append(text)
    w.proposed = list(lines.values())


def _service_links(services: list[Service]) -> dict[tuple[str, str], str]:
    """The variables the kubelet gives every container for each Service of its namespace
    (``enableServiceLinks``, on by default; pkg/kubelet/envvars ``FromServices``):
    ``<NAME>_SERVICE_HOST``, ``<NAME>_SERVICE_PORT`` (the first port) and
    ``<NAME>_SERVICE_PORT_<PORT NAME>``, name upper-cased with ``-`` as ``_``. ``$(VAR)``
    in an env value may name them. The host is given as the Service's name (the kubelet
    gives its clusterIP, which a dump of manifests may not carry)."""
    out: dict[tuple[str, str], str] = {}
    for svc in services:
        if not svc.ports:
            continue
        base = svc.name.upper().replace("-", "_") + "_SERVICE_"
        out[(svc.namespace, base + "HOST")] = svc.name
        out[(svc.namespace, base + "PORT")] = str(svc.ports[0].port)
        for sp in svc.ports:
            if sp.name:
                out[(svc.namespace, base + "PORT_" + sp.name.upper().replace("-", "_"))] = (
                    str(sp.port))
    return out


def _expanded(env: list[tuple[str, str, str]], namespace: str,
              links: dict[tuple[str, str], str]) -> list[tuple[str, str, str]]:
    """The values as the container sees them: ``$(VAR)`` replaced by an earlier variable
    of the same container or else a Service variable of the pod's namespace, ``$$`` by
    ``$``, other references left as written (the kubelet's expansion,
    third_party/forked/golang/expansion)."""
    out = []
    seen: dict[str, str] = {}
    container = None
    for name, var, value in env:
        if name != container:
            container, seen = name, {}

        def one(m: re.Match[str], known: dict[str, str] = seen) -> str:
            if m[0] == "$$":
                return "$"
            return known.get(m[1], links.get((namespace, m[1]), m[0]))

        expanded = _REF.sub(one, value) if "$" in value else value
        seen[var] = expanded
        out.append((name, var, expanded))
    return out


def _paired_port(ref: EnvRef, container: str, var: str,
                 values: dict[tuple[str, str], str]) -> EnvRef:
    """``CART_HOST=cart`` with ``CART_PORT=7070`` beside it: the port is that one."""
    if ref.port is not None or ref.scheme is not None:
        return ref
    base = re.sub(r"_(?:ADDR|ADDRESS|HOST|HOSTNAME|SERVER)$", "", var.upper())
    if base == var.upper():
        return ref
    port = values.get((container, f"{base}_PORT"), "").strip()
    if not port.isdigit():
        return ref
    return EnvRef(ref.name, ref.namespace, int(port), None, ref.qualified, ref.text)


def _looks_like_service(ref: EnvRef, var: str, namespaces: set[str]) -> bool:
    """An address that names no Service of the dump but is written as one would be:
    a cluster DNS name (``.svc``), ``name.namespace`` of a namespace in the dump, a
    single-label host with a port or scheme, or a bare name in an address variable."""
    if ref.ip:
        return False  # an address outside the Services' clusterIPs: a pod, a VM, a host
    if ref.qualified or ref.namespace in namespaces:
        return True
    if ref.namespace is not None:
        return False
    return ref.port is not None or ref.scheme is not None or strong_address_var(var)


def _resolve_port(svc: Service, ref: EnvRef) -> ServicePort | None:
    """The TCP port an address means (a call is a TCP request and its answer; a UDP
    port of the same number is another port)."""
    tcp = [sp for sp in svc.ports if sp.protocol == "TCP"]
    if ref.port is not None:
        return next((sp for sp in tcp if ref.port in (sp.port, sp.name)), None)
    default = DEFAULT_PORTS.get(ref.scheme or "")
    return next((sp for sp in tcp if sp.port == default),
                tcp[0] if len(tcp) == 1 else None)


def _port(svc: Service, wanted: int | str) -> ServicePort | None:
    """The Service port by number or name (a caller dials the ClusterIP's port; a
    nodePort or targetPort would not reach it there)."""
    return next((sp for sp in svc.ports if wanted in (sp.port, sp.name) and wanted != ""),
                None)


def _ports(svc: Service) -> str:
    return ", ".join((f"{sp.port} ({sp.name})" if sp.name else str(sp.port))
                     + ("" if sp.protocol == "TCP" else f"/{sp.protocol}")
                     for sp in svc.ports) or "none"


def _known(names: dict[str, object]) -> str:
    listed = sorted(names)
    return ", ".join(listed[:10]) + (", ..." if len(listed) > 10 else "") or "none"


def _clip(value: str, width: int = 60) -> str:
    """An env value fit for a one-line comment: printable, at most ``width`` chars."""
    if len(value) <= width and value.isprintable():
        return value
    text = "".join(c if c.isprintable() else "?" for c in value)
    return text if len(text) <= width else text[:width - 3] + "..."
