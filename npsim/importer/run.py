"""``import_cluster``: dump files in, a validated scenario file out (atomically).

The scenario text is validated by npsim's own loader before it replaces anything, so a
file ``npsim import`` writes is one ``npsim validate`` accepts. An existing file is
replaced only with ``force`` and only when npsim import wrote it (its first line).
"""

from __future__ import annotations

import gc
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from npsim.importer.calls import CallsReport, plan_calls
from npsim.importer.dump import DumpError, lean_load, raise_problems, read_paths
from npsim.importer.inventory import Inventory, sort_objects
from npsim.importer.load import read_calls, read_rates, read_service_times
from npsim.importer.plan import ScenarioPlan, plan_scenario
from npsim.importer.scenario_text import MARKER, render
from npsim.scenario.loader import scenario_from_dict
from npsim.scenario.problems import Problem, Problems, ScenarioError
from npsim.scenario.scenario import Scenario
from npsim.scenario.yamlio import MarkedDict, MarkedList


class OutputExistsError(Exception):
    """The output file exists and may not be replaced."""


@dataclass
class ImportSummary:
    out: Path
    nodes: int
    services: int
    workloads: int
    pods: int
    clients: int
    network_policies: int
    kube_proxy: str | None
    ignored: dict[str, int]
    filtered: int
    warnings: list[str] = field(default_factory=list)
    scenario: Scenario | None = None  # the scenario written, as validated
    calls: CallsReport = field(default_factory=CallsReport)

    def report(self) -> str:
        lines = [f"wrote {self.out}: {self.nodes} nodes, {self.services} Services, "
                 f"{self.workloads} workloads ({self.pods} pods placed from EndpointSlices), "
                 f"{self.clients} client populations, {self.network_policies} "
                 "NetworkPolicies",
                 f"kube-proxy: {self.kube_proxy or 'no ConfigMap in the dump; defaults'}"]
        if self.ignored:
            lines.append("ignored (not copied): " + ", ".join(
                f"{n} {kind}" for kind, n in sorted(self.ignored.items())))
        if self.filtered:
            lines.append(f"left out by --namespace/--service: {self.filtered} objects")
        lines += self.calls.lines()
        return "\n".join(lines)


def import_cluster(
    paths: list[Path],
    out: Path,
    namespace: str | None = None,
    service: str | None = None,
    rates: Path | None = None,
    service_times: Path | None = None,
    force: bool = False,
    calls: Path | None = None,
) -> ImportSummary:
    """Read the dumps, write the scenario ``out``; raises :class:`DumpError` (every
    problem, located) or :class:`OutputExistsError`, and then writes nothing.

    The cyclic garbage collector is paused meanwhile: a large dump is millions of live
    objects (trees with their marks) and none of them forms a cycle, so each collection
    would only rescan them (it took a third of the time of a 1000-node import).

    ``calls`` is a CSV ``caller,service,port[,count]`` that sets workloads' ``calls:``;
    without it, calls are only proposed (commented out) from the pods' env."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _import(paths, out, namespace, service, rates, service_times, force, calls)
    finally:
        if paused:
            gc.enable()


def _import(paths: list[Path], out: Path, namespace: str | None, service: str | None,
            rates: Path | None, service_times: Path | None, force: bool,
            calls: Path | None = None) -> ImportSummary:
    _check_target(out, force)
    p = Problems()
    objects = list(read_paths(paths, p))
    inv = sort_objects(objects, namespace, service, p)
    if not p.errors:  # otherwise "no Node" and the like would be noise
        _check_contents(inv, paths, namespace, service, p)
    raise_problems(p)
    rate_rows = read_rates(rates, p) if rates else []
    time_rows = read_service_times(service_times, p) if service_times else []
    call_rows = read_calls(calls, p) if calls else []
    plan = plan_scenario(inv, rate_rows, time_rows, p)
    calls_report = plan_calls(plan, inv, call_rows, calls, p)
    raise_problems(p)
    _check_runnable(plan, paths)
    text, skeleton = render(_scenario_name(out), [str(x) for x in paths], inv, plan)
    scenario = _validate(out, skeleton, plan)
    _write(out, text, force)
    summary = _summary(out, inv, plan)
    summary.calls = calls_report
    summary.scenario = scenario  # `npsim import` warns of pods the scheduler cannot place
    return summary


def _check_target(out: Path, force: bool) -> None:
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputExistsError(f"{out} already exists; npsim import does not overwrite. "
                                    "Choose another --out, or pass --force to replace a "
                                    "scenario npsim import wrote.")
        if not out.is_file() or not _written_by_import(out):
            raise OutputExistsError(f"{out} was not written by npsim import (its first line "
                                    f"is not '{MARKER} ...'); --force replaces only such files")
    if not out.parent.exists() or not os.access(out.parent, os.W_OK | os.X_OK):
        raise OutputExistsError(f"--out {out}: {out.parent} is not a writable folder")


def _written_by_import(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            return f.readline().startswith(MARKER)
    except (OSError, UnicodeDecodeError):
        return False


def _check_contents(inv: Inventory, paths: list[Path], namespace: str | None,
                    service: str | None, p: Problems) -> None:
    where = ", ".join(str(x) for x in paths)
    if not inv.nodes:
        p.errors.append(Problem(None, where, "no Node in the dump: add them with `kubectl "
                                "get nodes -o yaml` (npsim places pods on the real nodes)"))
    if service is not None and not inv.services:
        scope = f" in namespace {namespace!r}" if namespace else ""
        p.errors.append(Problem(None, where, f"--service {service!r}: no Service of that "
                                f"name{scope} in the dump"))
    elif not inv.services:
        scope = f" in namespace {namespace!r}" if namespace else ""
        p.errors.append(Problem(None, where, f"no Service{scope} in the dump: nothing to "
                                "simulate"))


def _check_runnable(plan: ScenarioPlan, paths: list[Path]) -> None:
    where = ", ".join(str(x) for x in paths)
    if not plan.workloads or not plan.clients:
        raise DumpError([Problem(None, where, "no Service with endpoints to send traffic to: "
                                 "a NodePort or LoadBalancer Service backed by pods (or a "
                                 "ClusterIP Service with a --rates row) is needed")])


def _scenario_name(out: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", out.stem).lstrip("-_.") or "imported"
    return stem


def _validate(out: Path, skeleton: str, plan: ScenarioPlan) -> Scenario:
    """Check the scenario before writing it: the hand-written sections read back from
    their text, the manifests (emitted by libyaml) as data; re-reading all the text would
    double the time of a large import. A problem with a manifest the dump holds (two
    Services asking for one nodePort) is the dump's, placed at its line there; any other
    is an importer bug, and says so."""
    try:
        tree = lean_load(skeleton, str(out))[0]
        tree["manifests"] = marked(plan.manifests)
        return scenario_from_dict(tree, out.parent, str(out))
    except ScenarioError as exc:
        placed = [_in_dump(x, plan) for x in exc.problems]
        if all(x is not None for x in placed):
            raise DumpError(placed) from None  # type: ignore[arg-type]
        raise DumpError([Problem(None, str(out), "the imported scenario does not validate "
                                 "(please report this): " + "; ".join(
                                     str(x) for x in exc.problems[:5]))]) from None


def _in_dump(problem: Problem, plan: ScenarioPlan) -> Problem | None:
    """``problem`` (at ``manifests[i]...`` of the scenario) at the dump's own line."""
    found = re.fullmatch(r"manifests\[(\d+)\]\.?(.*)", problem.path)
    if found is None or int(found[1]) >= len(plan.sources):
        return None
    source = plan.sources[int(found[1])]
    if source is None:
        return None
    doc, prefix = source
    loc = [int(step) if step.isdigit() else step
           for step in re.split(r"[.\[\]]+", found[2]) if step]
    return Problems.problem(doc, loc, problem.message, prefix)


def _write(out: Path, text: str, force: bool) -> None:
    """Write to a temporary file beside ``out``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        _check_target(out, force)  # nothing appeared meanwhile
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def marked(data: Any) -> Any:
    """Plain data as the marked tree the scenario loader takes (no positions)."""
    if isinstance(data, dict):
        out = MarkedDict()
        for key, value in data.items():
            out[key] = marked(value)
        return out
    if isinstance(data, list):
        items = MarkedList(marked(v) for v in data)
        items.item_marks = [None] * len(items)  # type: ignore[list-item]
        return items
    return data


def _summary(out: Path, inv: Inventory, plan: ScenarioPlan) -> ImportSummary:
    return ImportSummary(
        out, len(plan.nodes), sum(1 for m in plan.manifests if m["kind"] == "Service"),
        len(plan.workloads), sum(len(w.pods or []) for w in plan.workloads),
        len(plan.clients), len(inv.network_policies), inv.kube_proxy.source,
        dict(inv.ignored), inv.filtered, plan.warnings)


__all__ = ["DumpError", "ImportSummary", "OutputExistsError", "import_cluster"]
