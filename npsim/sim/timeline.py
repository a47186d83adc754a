"""The run's timeline: every state transition with its simulated time.

Faults, the control plane (lease missed, node Unknown, endpoint removed on a node),
balancers (node marked down/up), pods (evicted, scheduled, Ready) and alerts (fired,
resolved) all record here. Columns are plain lists: transitions are rare next to
requests, and the frame (``events.parquet``) is built once at the end.
"""

from __future__ import annotations


class EventLog:
    """Transitions in the order they happened: ``time, kind, subject, detail``."""

    __slots__ = ("time", "kind", "subject", "detail")

    def __init__(self) -> None:
        self.time: list[float] = []
        self.kind: list[str] = []
        self.subject: list[str] = []
        self.detail: list[str] = []

    def record(self, time: float, kind: str, subject: str, detail: str = "") -> None:
        """Note one transition, e.g. ``record(60.0, "node_crash", "node-2")``."""
        self.time.append(time)
        self.kind.append(kind)
        self.subject.append(subject)
        self.detail.append(detail)

    def __len__(self) -> int:
        return len(self.time)
