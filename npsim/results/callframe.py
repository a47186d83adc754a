"""The ``calls`` frame: one row per call a pod made while serving a request
(npsim/sim/rpc.py), so that any request's tree can be rebuilt, as a trace viewer
(Jaeger) shows spans with their parent.

``request`` and ``parent`` are rows of the requests frame (same replication); the
call's own timing, outcome and callee pod are on its requests-frame row, whose
population is the call edge (``caller>service:port``). ``depth`` is 1 for a call made
while serving a client's request, 2 for one made while serving such a call, and so on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from npsim.sim.output import RunOutput


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
    return pd.DataFrame({
        "replication": np.full(len(rows), out.replication, dtype=np.int32),
        "request": rows[order],
        "parent": np.asarray(calls.parent, dtype=np.int64)[order],
        "depth": np.asarray(calls.depth, dtype=np.int16)[order],
        "caller_pod": pd.Categorical.from_codes(caller[order], pods),
        "callee_pod": pd.Categorical.from_codes(callee[order], pods),  # -1: none reached
    })


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
