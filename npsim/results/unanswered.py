"""Requests still unanswered at the end of a run, for far longer than any that ended.

A request in flight when the run stops has no end time: its latency is only known to be
at least its age (the run's last arrival less its start, a lower bound of the run's
end). Most are recent and would end like the others; leaving them out of the figures
is then fair. But a hung pod that no readiness probe takes out, with clients that set
no time-out, holds its requests for ever: left out, a run in which a fifth of the
requests never got an answer read "failed none", an error ratio of 0 and the served
requests' p99 as what users saw.

A request counts as unanswered when its age is more than :data:`FACTOR` times the
longest latency of the requests that ended (answered or failed). A queue that only
grows keeps its oldest waiting requests near the longest ended one (they wait behind
the ones that just ended: 0.46 s against 0.45 s in an overloaded shop's first second),
while a held request's age grows without bound. Unanswered requests count as failed in
``error_ratio`` and, at their age so far, in ``user_latency_*`` (a lower bound of what
their users wait); ``requests_unanswered`` counts them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from npsim.results.masked import Masked

FACTOR = 2.0  # an age past this many times the longest ended latency: no answer coming


def unanswered(frame: pd.DataFrame, in_flight: np.ndarray, latency: np.ndarray,
               ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows (indexes) of ``frame`` in flight at the end (``in_flight``, a mask) for
    longer than :data:`FACTOR` times the longest ``latency`` of the rows that ended
    (``ended``, a mask), and their ages. Only the in-flight rows are copied: a healthy
    run has a handful."""
    rows = np.flatnonzero(in_flight)
    if len(rows) == 0:
        return rows, np.empty(0)
    starts = frame["t_start"].to_numpy()
    ages = starts.max() - starts[rows]
    done = Masked(latency, ended)
    longest = done.max() if done.n else -np.inf
    older = ages > FACTOR * longest
    return rows[older], ages[older]


def with_unanswered(latency: np.ndarray, ended: np.ndarray, rows: np.ndarray,
                    ages: np.ndarray) -> Masked:
    """The users' latencies: the ended rows', and the unanswered rows' ages (a copy of
    the column, made only when there are such rows)."""
    values = latency.copy()
    values[rows] = ages
    mask = ended.copy()
    mask[rows] = True
    return Masked(values, mask)
