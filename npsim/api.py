"""Running a scenario: every replication, on this process or several, into a Result.

Below the sweeps (which run many scenarios through :func:`run`) and the CLI; above the
simulation and the frame builders. ``npsim.run`` is this module's :func:`run`.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from npsim.cluster.model import Cluster, ServicePortModel
from npsim.preflight import preflight
from npsim.results.alerts import record_alerts
from npsim.results.callframe import call_frame, call_services, entry_rows, held_utilisation
from npsim.results.events import event_frame, stack_events
from npsim.results.frames import concat_frames, node_frame, pod_frame, request_frame
from npsim.results.result import Result
from npsim.results.summary import (
    PerReplication,
    add_incident_rows,
    incident_metrics,
    replication_statistics,
    summarise,
)
from npsim.results.timeseries import (
    node_timeseries_frame,
    pod_timeseries_frame,
    timeseries_frame,
)
from npsim.scenario.loader import load_scenario, revalidate
from npsim.scenario.scenario import Scenario
from npsim.scenario.schema import ScenarioSpec
from npsim.scenario.series import series_bucket
from npsim.sim.engine import Simulation
from npsim.sim.output import RunOutput
from npsim.sim.records import MMAP_THRESHOLD, set_mmap_threshold, trim_heap
from npsim.version import __version__

ProgressFn = Callable[[float], None]

# What npsim.run imports (pandas with pyarrow, the simulator, the frame builders) lives as
# long as the process: frozen, the cyclic collector leaves it alone. Each replication's
# gc.collect() then walks only what the run made (0.05 CPU-s less at 500,000 requests)
# and the interpreter's exit no longer walks and frees it (0.24 -> 0.03 CPU-s; issue 23).
gc.freeze()


def reachable_pods(cluster: Cluster, spec: ScenarioSpec, start: float,
                   end: float, services: dict[str, str] | None = None
                   ) -> dict[str, list[tuple[str, str]]]:
    """Per summary scope, the (pod, node) pairs its Services select and that existed
    during [start, end]: the pods whose shares are compared (a pod of another Service,
    or one deleted before the measurement began, is not 'unfairly idle'). In kube-proxy's
    endpoint order; when the pods of the window are those the cluster was built with,
    the Service ports' own endpoints say it, and none are made again. ``services``
    (pods call Services: population -> Service) adds the call edges' populations and
    the ``service:<name>`` scopes."""
    alive = [p for p in cluster.pods if p.alive_during(start, end)]
    selected: dict[int, dict[str, str]] = {}  # per Service port: pod -> node
    out: dict[str, list[tuple[str, str]]] = {}
    every: dict[str, str] = {}
    by_service: dict[str, dict[str, str]] = {}

    def pods_of(sp: ServicePortModel) -> dict[str, str]:
        pods = selected.get(sp.index)
        if pods is None:
            endpoints = cluster.endpoints_of(sp, alive)
            pods = selected[sp.index] = {cluster.pods[e.pod].name: cluster.nodes[e.node].name
                                         for e in endpoints}
        return pods

    for client in spec.clients:
        pods = pods_of(cluster.service_port_for(client.service, client.port))
        out[f"population:{client.name}"] = list(pods.items())
        by_service.setdefault(client.service, {}).update(pods)
        every.update(pods)
    out["all"] = list(every.items())
    if services:  # call edges: the pods of their Service (every port of it)
        clients = {c.name for c in spec.clients}
        for name, service in services.items():
            if service not in by_service:
                by_service[service] = {}
                for sp in cluster.service_ports:
                    if sp.service.name == service:
                        by_service[service].update(pods_of(sp))
            if name not in clients:
                out[f"population:{name}"] = list(by_service[service].items())
        out.update({f"service:{s}": list(pods.items()) for s, pods in by_service.items()
                    if s in services.values()})
    return out


@dataclass
class _Replication:
    """The frames of one replication, as a worker process sends them back."""

    requests: pd.DataFrame
    pods: pd.DataFrame
    nodes: pd.DataFrame
    wall_seconds: float
    end_time: float
    window: float
    statistics: PerReplication  # computed here, in the worker, not again in the parent
    events: pd.DataFrame
    timeseries: pd.DataFrame
    incidents: dict[str, float]
    pod_timeseries: pd.DataFrame
    node_timeseries: pd.DataFrame
    bucket: float  # the time series' bucket (request-count runs: per replication)
    calls: pd.DataFrame | None = None  # pods' calls (npsim/results/callframe.py)
    services: dict[str, str] | None = None  # population -> its Service, when pods call


#: glibc's mmap threshold while the frames and statistics are built. The simulation's
#: (256 KiB, npsim/sim/records.py) put every temporary of a block of rows (512 KiB of
#: float64) on pages of its own, mapped, faulted in and unmapped each time: the
#: post-run steps took four times their CPU. Below this, freed temporaries are reused
#: from the heap; larger ones (whole columns) still go back at once, and trim_heap()
#: between the steps returns what the heap keeps free.
POST_RUN_MMAP_THRESHOLD = 4 << 20

#: the share of a replication's progress that is the simulation; serving quiet pods,
#: the frames and the statistics follow (at 10M requests on 1000 nodes, about 20 s)
SIMULATING = 0.9


def _replication(scenario: Scenario, rep: int,
                 progress: ProgressFn | None = None) -> _Replication:
    spec = scenario.spec
    simulating = None if progress is None else (
        lambda fraction: progress(fraction * SIMULATING))
    out = Simulation(scenario, replication=rep).run(simulating)
    # The simulation itself goes by reference counting (tests/sim/test_release.py), but
    # what it leaves in reference cycles (SimPy's environment holds itself through its
    # bound methods, the control plane and its kubelets hold each other, and what they
    # reach) goes only when the cyclic collector runs: at 10,000 pods, 14 MB resident
    # while the frames were built. Then the free heap goes back before the frames.
    gc.collect()
    trim_heap()
    set_mmap_threshold(POST_RUN_MMAP_THRESHOLD)
    try:
        return _frames(out, spec, rep, progress)
    finally:  # the next replication's log grows in mappings again
        set_mmap_threshold(MMAP_THRESHOLD)


def _frames(out: RunOutput, spec: ScenarioSpec, rep: int,
            progress: ProgressFn | None) -> _Replication:
    """One replication's frames and statistics from its simulation's output."""
    record_alerts(out, spec.monitoring)
    calls = call_frame(out)  # before the log goes (None: no pod makes calls)
    frame = request_frame(out, consume=True)
    if progress is not None:
        progress((1 + SIMULATING) / 2)
    out.log.release()  # the frame keeps the columns it shares; the others go now
    bucket = series_bucket(spec.run, out.end_time)
    entry = (entry_rows(frame, [c.name for c in spec.clients]) if calls is not None
             else None)  # pods call Services: "all" is the clients' own requests
    series = timeseries_frame(out, frame, bucket, entry)  # the same rows as "all"
    trim_heap()  # and the time series' before the statistics
    window = out.end_time - out.warmup
    # Each step's freed temporaries go back to the system before the next one's: freed
    # chunks inside the heap stay resident until trimmed, under the next step's own
    # temporaries (at 10,000 pods and 1M requests, 4-5 MB more at the peak).
    services = call_services(frame, out.calls) if out.calls is not None else None
    reachable = reachable_pods(out.cluster, spec, spec.run.warmup, out.end_time, services)
    trim_heap()
    statistics = replication_statistics(frame, {rep: window}, reachable, entry, services)
    del entry
    trim_heap()
    incidents = incident_metrics(out.events.time, out.events.kind, series,
                                 spec.monitoring.slo if spec.monitoring else None, out.end_time,
                                 out.warmup, float(statistics["all"]["error_ratio"].iloc[0]),
                                 float(statistics["all"]["requests_unanswered"].iloc[0]))
    pods = pod_frame(out, frame)
    if calls is not None:  # blocking callers hold workers beyond their own work
        pods = held_utilisation(pods, out, frame)
    trim_heap()
    nodes = node_frame(out, frame)
    trim_heap()
    # per pod and node series last: not alive at the statistics' peak
    pod_series = pod_timeseries_frame(out, frame, bucket)
    trim_heap()
    return _Replication(frame, pods, nodes, out.wall_seconds,
                        out.end_time, window, statistics, event_frame(out.events, rep), series,
                        incidents, pod_series, node_timeseries_frame(out, bucket), bucket,
                        calls, services)


def _replication_indexes(replications: Sequence[int]) -> list[int]:
    """The replication indexes asked for, checked: at least one, distinct whole numbers
    that fit the frames' 32-bit ``replication`` column."""
    reps = list(replications)
    bad = [r for r in reps if isinstance(r, bool) or not isinstance(r, int)
           or not 0 <= r < 2**31]
    if not reps or bad or len(set(reps)) != len(reps):
        raise ValueError("replications must be distinct whole numbers from 0 to 2**31 - 1, "
                         f"at least one; got {reps[:10]!r}" + (" ..." if len(reps) > 10 else ""))
    return reps


def _replication_task(task: tuple[Scenario, int]) -> _Replication:
    return _replication(*task)


def run(scenario: Scenario | str | Path, progress: ProgressFn | None = None, *,
        jobs: int = 1, replications: Sequence[int] | None = None,
        max_requests: int | None = None, max_memory: int | None = None) -> Result:
    """Run every replication of a scenario and build the frames.

    ``scenario`` may be a loaded :class:`Scenario` or a path. ``progress(fraction)`` is
    called about a hundred times per replication with the fraction of all work done
    (with ``jobs > 1``, once per finished replication). ``jobs`` runs replications on
    that many processes; the result is the same whatever the number.
    ``replications`` picks replication indexes to run (default ``range(run.replications)``);
    replication ``r`` draws the same random numbers whichever others run with it.
    A run estimated to exceed ``max_requests`` (all replications) or ``max_memory``
    (bytes), or the scenario's ``run.limits``, is refused with a ScenarioError before
    anything runs (:mod:`npsim.preflight`).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a whole number of processes, at least 1; got {jobs!r}")
    reps = None if replications is None else _replication_indexes(replications)
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    revalidate(scenario)
    preflight(scenario, max_requests, max_memory, None if reps is None else len(reps))
    spec = scenario.spec
    if reps is None:
        reps = list(range(spec.run.replications))
    total = len(reps)
    done: dict[int, _Replication] = {}
    if jobs > 1 and total > 1:
        # multiprocessing and concurrent.futures load only for a parallel run (5 ms)
        from npsim.parallel.pool import run_tasks

        for i, rep_out in run_tasks(_replication_task, [(scenario, r) for r in reps], jobs):
            done[i] = rep_out
            if progress is not None:
                progress(len(done) / total)
    else:
        for i, rep in enumerate(reps):
            report = None
            if progress is not None:
                def report(fraction: float, i: int = i) -> None:
                    progress((i + fraction) / total)
            done[i] = _replication(scenario, rep, report)
            if progress is not None:
                progress((i + 1) / total)
    parts = [done[i] for i in range(total)]
    req = concat_frames([p.requests for p in parts], consume=True)
    pod = concat_frames([p.pods for p in parts])
    node = concat_frames([p.nodes for p in parts])
    windows = {rep: p.window for rep, p in zip(reps, parts, strict=True)}
    statistics = {scope: pd.concat([p.statistics[scope] for p in parts], ignore_index=True)
                  for scope in parts[0].statistics}
    calls = concat_frames([p.calls for p in parts]) if parts[0].calls is not None else None
    entry = (entry_rows(req, [c.name for c in spec.clients]) if calls is not None
             else None)
    summary = summarise(req, pod, windows, per_replication=statistics, entry=entry,
                        services=parts[0].services)
    del entry
    summary = add_incident_rows(summary, [p.incidents for p in parts])
    meta: dict[str, object] = {"npsim_version": __version__, "seed": spec.run.seed}
    buckets = {p.bucket for p in parts}
    if len(buckets) == 1:  # scenario.resolved.yaml writes it (else each derives its own)
        meta["timeseries_bucket"] = buckets.pop()
    return Result(scenario, req, pod, node, summary, sum(p.wall_seconds for p in parts),
                  max(p.end_time for p in parts), meta,
                  stack_events([p.events for p in parts]),
                  timeseries=concat_frames([p.timeseries for p in parts]),
                  pod_timeseries=concat_frames([p.pod_timeseries for p in parts]),
                  node_timeseries=concat_frames([p.node_timeseries for p in parts]),
                  calls=calls)
