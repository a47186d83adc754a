"""The clients' own requests in a run whose pods call Services, as the figures read them.

In such a run each call is a row of the requests frame too (population
``caller>service:port``). A figure about what users saw (the failed share per entry
node, where a page's time goes) reads the clients' rows only, the rows the summary's
``all`` scope covers: :func:`npsim.results.callframe.entry_rows` says which they are,
here as in the summary and the time series. A page's time is split as a trace viewer
(Jaeger) shows a trace: its network, its queue, the frontend's own work, and the time
each Service it called held it on the critical path
(:func:`npsim.results.callframe.latency_breakdown`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from npsim.plots._common import MS, completed, groups, labelled, path_parts
from npsim.results.callframe import entry_rows
from npsim.results.callframe import latency_breakdown as call_breakdown

# the terms of an entry request's latency before its calls (``service``: its own work)
BASE = ("client network", "hop", "proxy", "queue wait", "own work")
OTHER = "other"  # the caller's wait between calls, responses on their way back
# the columns read (not a copy of the frame)
COLUMNS = ["replication", "request", "population", "warmup", "outcome", "latency",
           "network", "hop", "proxy", "queue_wait", "service", "cross_node"]
TIMING = ["replication", "request", "outcome", "t_start", "t_end", "latency", "network",
          "proxy", "queue_wait", "service"]  # what callframe.latency_breakdown reads


def has_calls(result: Any) -> bool:
    """The run's pods called Services (its ``calls`` frame is there)."""
    return getattr(result, "calls", None) is not None


def client_rows(result: Any) -> np.ndarray | None:
    """The rows of ``result.requests`` that are the clients' own requests (a boolean
    mask), or None in a run without calls, where every row is one."""
    if not has_calls(result):
        return None
    return entry_rows(result.requests, [c.name for c in result.scenario.spec.clients])


def user_groups(results: Any, calls: bool = False
                ) -> tuple[str, list[tuple[str, pd.DataFrame]]]:
    """:func:`npsim.plots._common.groups` for figures of what users saw: in a run whose
    pods call Services, a curve per client population of its own requests (one curve,
    labelled by the scenario, for one population), as the summary's scopes; ``calls``
    adds each call edge (``caller>service:port``) as a curve of its own. Variants: each
    variant's client requests (``calls``: and its edges, ``variant: edge``)."""
    pairs = labelled(results)
    if not any(has_calls(res) for _, res in pairs):
        return groups(results)
    parts: list[tuple[str, pd.DataFrame]] = []
    for label, res in pairs:
        req = res.requests
        population = req["population"]
        names = [str(p) for p in population.cat.categories]
        clients = [str(c.name) for c in res.scenario.spec.clients] if has_calls(res) else names
        edges = [n for n in names if n not in clients] if calls else []
        if len(pairs) > 1:
            entry = client_rows(res)
            parts.append((label, req if entry is None else req[entry]))
            parts += [(f"{label}: {e}", req[(population == e).to_numpy()]) for e in edges]
        else:
            parts += [(n, req[(population == n).to_numpy()]) for n in [*clients, *edges]]
    if len(pairs) > 1:
        return "variant", parts
    if len(parts) == 1:  # one client population: the scenario's own curve
        return "scenario", [(pairs[0][0], parts[0][1])]
    return "population", parts


def entry_parts(result: Any, split_cross_node: bool = False
                ) -> tuple[str, list[tuple[str, dict[str, float]]]]:
    """Bars of the latency breakdown of one run with calls or of several runs (variants,
    with or without calls): the grouping's name and (label, mean milliseconds per
    component) pairs, one per client population (one run) or variant, each split into
    same-node and cross-node entries with ``split_cross_node``. The components add up to
    the mean latency of the completed, measured client requests of the bar."""
    pairs = labelled(result)
    bars: list[tuple[str, dict[str, float]]] = []
    groups: list[tuple[str, pd.DataFrame]] = []
    for label, res in pairs:
        rows = _entry_rows_split(res)
        if len(pairs) > 1:
            groups.append((label, rows))
            continue
        names = [str(c.name) for c in res.scenario.spec.clients] if has_calls(res) else \
            [str(p) for p in res.requests["population"].cat.categories]
        if len(names) == 1:
            groups.append((label, rows))
        else:
            population = rows["population"].astype(str).to_numpy()
            groups += [(name, rows[population == name]) for name in names]
    for label, rows in groups:
        if split_cross_node:
            cross = rows["cross_node"].to_numpy(dtype=bool)
            for name, mask in (("same node", ~cross), ("cross node", cross)):
                if len(rows[mask]):
                    bars.append((f"{label}\n{name}", _means(rows[mask])))
        elif len(rows):
            bars.append((label, _means(rows)))
    kind = "variant" if len(pairs) > 1 else "population" if len(groups) > 1 else "scenario"
    return kind, bars


def _entry_rows_split(result: Any) -> pd.DataFrame:
    """The completed, measured client requests of one run with their time split: the
    request columns read, ``via_<service>`` (0 for a request that made no call to it)
    and ``other``."""
    requests = result.requests
    entry = client_rows(result)
    done = completed(requests.loc[entry if entry is not None else slice(None), COLUMNS])
    if not has_calls(result):
        return done.assign(other=0.0)
    calls = result.calls
    # the entry requests' own calls (depth 1): a deeper call is inside one of them;
    # of the requests, the columns the split reads
    parts = call_breakdown(requests[TIMING], calls[calls["depth"].to_numpy() == 1])
    via = [c for c in parts.columns if c.startswith("via_")]
    done = done.merge(parts[["replication", "request", *via]], how="left",
                      on=["replication", "request"], validate="one_to_one")
    done[via] = done[via].fillna(0.0)  # a page that made no call (probability, count 0)
    held = done[via].sum(axis=1).to_numpy()
    done["other"] = (done["latency"].to_numpy() - done["network"].to_numpy()
                     - done["proxy"].to_numpy() - done["queue_wait"].to_numpy()
                     - done["service"].to_numpy() - held)
    return done


def _means(rows: pd.DataFrame) -> dict[str, float]:
    """Mean milliseconds per component; they add up to the mean latency."""
    parts = path_parts(rows, "own work")
    parts.update({f"via {c[len('via_'):]}": rows[c].to_numpy() for c in rows.columns
                  if c.startswith("via_")})
    parts[OTHER] = rows["other"].to_numpy()
    return {name: float(np.mean(v)) * MS for name, v in parts.items()}


def components(bars: list[tuple[str, dict[str, float]]]) -> list[str]:
    """Every component of the bars, in drawing order: the base terms, the Services
    called (by name), then ``other``. A bar without a Service's calls counts it as 0."""
    called = sorted({name for _, means in bars for name in means
                     if name.startswith("via ")})
    return [*BASE, *called, OTHER]
