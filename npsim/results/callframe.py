"""The ``calls`` frame: one row per call a pod made while serving a request
(npsim/sim/rpc.py), so that any request's tree can be rebuilt, as a trace viewer
(Jaeger) shows spans with their parent.

``request`` and ``parent`` are rows of the requests frame (same replication); the
call's own timing, outcome and callee pod are on its requests-frame row, whose
population is the call edge (``caller>service:port``). ``depth`` is 1 for a call made
while serving a client's request, 2 for one made while serving such a call, and so on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from npsim.sim.output import RunOutput
from npsim.sim.rpc import CallRecords

if TYPE_CHECKING:
    import networkx as nx


def call_frame(out: RunOutput) -> pd.DataFrame | None:
    """The run's calls (None for a run whose pods make none). Read before the request
    log is released."""
    calls = out.calls
    if calls is None:
        return None
    rows = np.asarray(calls.row, dtype=np.int64)
    pods = [p.name for p in out.cluster.pods]
    callee = np.asarray(out.log.pod, dtype=np.int64)[rows] if len(rows) else rows
    caller = np.asarray(calls.caller, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    population = np.asarray(out.log.population, dtype=np.int64)
    services = sorted(set(calls.services))
    code = {name: i for i, name in enumerate(services)}
    by_population = np.asarray([code[s] for s in calls.services], dtype=np.int64)
    parents = np.asarray(calls.parent, dtype=np.int64)[order]
    return pd.DataFrame({
        "replication": np.full(len(rows), out.replication, dtype=np.int32),
        "request": rows[order],
        "parent": parents,
        "depth": np.asarray(calls.depth, dtype=np.int16)[order],
        "caller_pod": pd.Categorical.from_codes(caller[order], pods),
        "callee_pod": pd.Categorical.from_codes(callee[order], pods),  # -1: none reached
        # the Service the call went to, and the one whose request made it
        "service": pd.Categorical.from_codes(by_population[population[rows[order]]]
                                             if len(rows) else rows, services),
        "caller_service": pd.Categorical.from_codes(by_population[population[parents]]
                                                    if len(rows) else rows, services),
        # the callee is outside the cluster (an ``external:`` call; no callee pod)
        "external": np.isin(np.asarray(services, dtype=object)[
            by_population[population[rows[order]]]] if len(rows) else rows,
            sorted(calls.externals)),
    })


def held_utilisation(pods: pd.DataFrame, out: RunOutput,
                     requests: pd.DataFrame) -> pd.DataFrame:
    """The pods frame of a run whose pods call Services: ``utilisation`` becomes the
    share of worker time *held* (a blocking caller's worker waits for its calls, which is
    what exhausts a thread pool and queues requests at the caller), and
    ``cpu_utilisation`` keeps the share spent on the pod's own work (its service time:
    the CPU it burns). They differ only for blocking callers. ``requests`` is the same
    replication's requests frame, row ``i`` the log's row ``i``."""
    pods = pods.copy()
    pods["cpu_utilisation"] = pods["utilisation"]
    records = out.calls
    holding = [p for p in out.cluster.pods if p.deployment in records.holding]
    if not holding or not len(requests):
        return pods
    categories = requests["pod"].cat.categories
    index_of = {p.name: p.index for p in holding}
    pod_of_code = np.array([index_of.get(c, -1) for c in categories] + [-1], dtype=np.intp)
    pod = pod_of_code[requests["pod"].cat.codes.to_numpy()]  # code -1: the extra -1
    own_end = (requests["service_start"].to_numpy() + requests["service"].to_numpy())
    freed = np.full(len(requests), out.end_time)  # held still when the run ended
    freed[np.asarray(records.freed_row, dtype=np.intp)] = records.freed_at
    rows = (pod >= 0) & ~np.isnan(own_end)
    # worker time held after the own work, inside the measured window
    extra = np.clip(np.minimum(freed[rows], out.end_time) - np.maximum(own_end[rows],
                                                                       out.warmup), 0, None)
    held = np.bincount(pod[rows], weights=extra, minlength=len(out.cluster.pods))
    utilisation = pods["utilisation"].to_numpy(dtype=float, copy=True)
    for p in holding:  # over the pod's own lifetime in the window, as the frame's
        lo = max(out.warmup, p.created_at)
        hi = min(out.end_time, out.end_time if p.deleted_at is None else p.deleted_at)
        if hi > lo:
            utilisation[p.index] += held[p.index] / (p.workers * (hi - lo))
    pods["utilisation"] = utilisation
    return pods


def call_services(requests: pd.DataFrame, records: CallRecords) -> dict[str, str]:
    """Population name -> the Service of the cluster its requests go to, for clients and
    call edges alike (a dependency outside the cluster is left out): the summary's
    ``service:<name>`` scopes gather every population of one Service. ``records``
    lists the Service per population, in the order of the frame's categories."""
    names = requests["population"].cat.categories
    return {str(name): service for name, service in zip(names, records.services, strict=True)
            if service not in records.externals}


def service_scopes(requests: pd.DataFrame,
                   services: dict[str, str] | None) -> dict[str, np.ndarray]:
    """When pods call Services (``services``: population -> the Service it sends to,
    :func:`call_services`), each Service's rows as a boolean mask: every request
    that went to it, whoever sent it (clients or any calling workload), so
    ``service:cart`` is what the cart Service saw."""
    if not services:
        return {}
    population = requests["population"]
    by_service: dict[str, list[int]] = {}
    for i, name in enumerate(population.cat.categories):
        if name in services:
            by_service.setdefault(services[name], []).append(i)
    population_codes = population.cat.codes.to_numpy()
    out = {}
    for service in sorted(by_service):
        member = np.zeros(len(population.cat.categories) + 1, dtype=bool)  # [-1]: none
        member[by_service[service]] = True
        out[f"service:{service}"] = member[population_codes]
    return out


def entry_rows(requests: pd.DataFrame, clients: list[str]) -> np.ndarray:
    """The rows of the clients' own requests (not pods' calls): what the summary's
    ``all`` scope covers in a run whose pods call Services."""
    return requests["population"].isin(clients).to_numpy(dtype=bool)


def request_tree(requests: pd.DataFrame, calls: pd.DataFrame, request: int,
                 replication: int = 0) -> pd.DataFrame:
    """Request ``request`` and every call made for it, at any depth (its trace): the
    requests-frame rows with ``parent`` and ``depth`` added, in the order they were sent."""
    mine = calls[calls["replication"] == replication]
    children: dict[int, list[int]] = {}
    for row, parent in zip(mine["request"].tolist(), mine["parent"].tolist(), strict=True):
        children.setdefault(parent, []).append(row)
    found, todo = [request], [request]
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    reqs = requests[requests["replication"] == replication].set_index("request")
    tree = reqs.loc[sorted(found)].reset_index()
    links = mine.set_index("request")
    tree["parent"] = tree["request"].map(links["parent"]).fillna(-1).astype(np.int64)
    tree["depth"] = tree["request"].map(links["depth"]).fillna(0).astype(np.int16)
    return tree


def call_graph(requests: pd.DataFrame, calls: pd.DataFrame | None,
               entry_services: dict[str, str]) -> nx.DiGraph:
    """Services as vertices, an edge per caller -> callee pair; client populations are
    vertices too (``kind`` "client"), with an edge to the Service they send to, and so
    are dependencies outside the cluster (``kind`` "external", ``("external", name)``).

    Edge attributes, over measured rows (after warm-up) of every replication:
    ``requests`` (sent), ``per_second`` (sent per second of measured time, averaged over
    replications), ``mean``, ``p99`` (latency of completed calls, s) and
    ``error_ratio``. A Service vertex has the same five over everything it received,
    whoever sent it (two branches of one caller to the same Service are one edge)."""
    import networkx as nx

    graph = nx.DiGraph()
    measured = requests[~requests["warmup"]]
    span = _measured_span(requests)
    population = measured["population"].astype(str)
    received: dict[tuple[str, str], list[pd.DataFrame]] = {}
    # client requests: client -> its Service
    for client, service in entry_services.items():
        graph.add_node(("client", client), kind="client")
        graph.add_node(("service", service), kind="service")
        rows = measured[population.to_numpy() == client]
        received.setdefault(("service", service), []).append(rows)
        _edge(graph, ("client", client), ("service", service), rows, span)
    if calls is not None and len(calls):
        keyed = calls.set_index(["replication", "request"])
        index = pd.MultiIndex.from_arrays([measured["replication"], measured["request"]])
        is_call = index.isin(keyed.index)
        rows = measured[is_call]
        link = keyed.loc[index[is_call]]
        pairs = pd.DataFrame({"caller": link["caller_service"].astype(str).to_numpy(),
                              "service": link["service"].astype(str).to_numpy()})
        outside = (set(link.loc[link["external"].to_numpy(dtype=bool), "service"].astype(str))
                   if "external" in link else set())
        for (caller, service), group in pairs.groupby(["caller", "service"]):
            graph.add_node(("service", caller), kind="service")
            callee = ("external", service) if service in outside else ("service", service)
            graph.add_node(callee, kind=callee[0])
            edge_rows = rows.iloc[group.index.to_numpy()]
            received.setdefault(callee, []).append(edge_rows)
            _edge(graph, ("service", caller), callee, edge_rows, span)
    for vertex in graph:
        parts = received.get(vertex)
        if parts:
            graph.nodes[vertex].update(_stats(pd.concat(parts), span))
        else:  # a client, or a Service nothing reached
            graph.nodes[vertex]["requests"] = 0
    return graph


def _measured_span(requests: pd.DataFrame) -> float:
    """Measured seconds per replication (first measured send to last send), averaged."""
    measured = requests[~requests["warmup"]]
    if not len(measured):
        return float("nan")
    by = measured.groupby("replication")["t_start"]
    return float((by.max() - by.min()).mean())


def _edge(graph: nx.DiGraph, a: tuple[str, str], b: tuple[str, str], rows: pd.DataFrame,
          span: float) -> None:
    graph.add_edge(a, b, **_stats(rows, span))


def _stats(rows: pd.DataFrame, span: float) -> dict[str, float]:
    done = rows[rows["outcome"] == "completed"]["latency"]
    n_reps = max(rows["replication"].nunique(), 1)
    return {"requests": len(rows),
            "per_second": len(rows) / n_reps / span if span > 0 else float("nan"),
            "mean": float(done.mean()) if len(done) else float("nan"),
            "p99": float(done.quantile(0.99)) if len(done) else float("nan"),
            "error_ratio": float((rows["outcome"] == "failed").mean())
            if len(rows) else float("nan")}


def latency_breakdown(requests: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """Each request that made calls (at any depth), its latency split: ``network``
    (client link, hop and kube-proxy), ``queue_wait``, ``own_work`` (its service time)
    and, per called Service, the time its calls to that Service held the request on the
    critical path: walking back from the call that ended last, each step takes the call
    that ended last before the previous one started, so of parallel calls only the
    longest counts (the critical path a trace view such as Jaeger's marks). A call that
    failed counts as well, until its error or deadline (with ``onFailure: continue`` the
    request went on after it: a timed-out span on the critical path). ``other`` is what
    is left (the caller's wait between calls, a retry's backoff, responses on their way
    back)."""
    done = requests[requests["outcome"] == "completed"]
    ended = requests[requests["outcome"] != "in_flight"]
    links = calls.merge(ended[["replication", "request", "t_start", "t_end"]],
                        on=["replication", "request"])
    services = sorted(set(calls["service"].astype(str)))
    code = {name: i for i, name in enumerate(services)}
    # one pass over plain arrays (a pandas lookup per request took seconds a run):
    # each parent's calls ordered by end, then start, then Service, as a trace is read
    rep = links["replication"].to_numpy(np.int64)
    parent = links["parent"].to_numpy(np.int64)
    end = links["t_end"].to_numpy(float)
    start = links["t_start"].to_numpy(float)
    service = np.asarray([code[s] for s in links["service"].astype(str)], dtype=np.int64)
    order = np.lexsort((service, start, end, parent, rep))
    rep, parent = rep[order], parent[order]
    ends, starts, codes = end[order].tolist(), start[order].tolist(), service[order].tolist()
    cuts = np.flatnonzero((np.diff(rep) != 0) | (np.diff(parent) != 0)) + 1
    bounds = zip([0, *cuts.tolist()], [*cuts.tolist(), len(order)], strict=True) if len(
        order) else iter(())
    rows = {(r, q): i for i, (r, q) in enumerate(zip(
        done["replication"].tolist(), done["request"].tolist(), strict=True))}
    keys: list[tuple[int, int]] = []
    on_path: list[list[float]] = []
    for first, stop in bounds:
        key = (int(rep[first]), int(parent[first]))
        if key not in rows:
            continue
        times = [0.0] * len(services)
        cursor = float("inf")
        for i in range(stop - 1, first - 1, -1):  # back from the call that ended last
            if ends[i] <= cursor:
                times[codes[i]] += ends[i] - starts[i]
                cursor = starts[i]
        keys.append(key)
        on_path.append(times)
    at = [rows[key] for key in keys]
    frame = pd.DataFrame({
        "replication": np.asarray([k[0] for k in keys], dtype=np.int64),
        "request": np.asarray([k[1] for k in keys], dtype=np.int64),
        "latency": done["latency"].to_numpy(float)[at],
        "network": done["network"].to_numpy(float)[at] + done["proxy"].to_numpy(float)[at],
        "queue_wait": done["queue_wait"].to_numpy(float)[at],
        "own_work": done["service"].to_numpy(float)[at]})
    via = np.asarray(on_path, dtype=float).reshape(len(keys), len(services))
    for j, name in enumerate(services):
        frame[f"via_{name}"] = via[:, j]
    frame["other"] = (frame["latency"] - frame["network"] - frame["queue_wait"]
                      - frame["own_work"] - via.sum(axis=1))
    return frame
