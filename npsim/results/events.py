"""The events frame: every transition of a run with its simulated time.

Built once at the end from :class:`~npsim.sim.timeline.EventLog` columns (faults, the
control plane's steps, what each node's kube-proxy applied, pods and balancers), one row
per transition, replications stacked. Written as ``events.parquet``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from npsim.sim.timeline import EventLog

EVENT_COLUMNS = ["replication", "time", "kind", "subject", "detail"]


def event_frame(log: EventLog, replication: int = 0) -> pd.DataFrame:
    """One row per transition, in the order they happened (stable by time)."""
    frame = pd.DataFrame({
        "replication": np.full(len(log), replication, dtype=np.int32),
        "time": np.asarray(log.time, dtype=np.float64),
        "kind": pd.Series(log.kind, dtype="object"),
        "subject": pd.Series(log.subject, dtype="object"),
        "detail": pd.Series(log.detail, dtype="object"),
    }, columns=EVENT_COLUMNS)
    return frame.sort_values("time", kind="stable", ignore_index=True)


def stack_events(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Replications one after another; kinds become a categorical once."""
    out = pd.concat(frames, ignore_index=True) if frames else event_frame(EventLog())
    return with_event_dtypes(out)


def with_event_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """The events frame's dtypes (``kind`` categorical), for a frame built here or read
    back from parquet: an empty categorical column comes back from parquet as plain
    strings, so a loaded result would not match a fresh run's."""
    frame["kind"] = frame["kind"].astype("category")
    return frame
