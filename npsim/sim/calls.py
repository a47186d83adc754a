"""Timed calls on SimPy's queue without a SimPy ``Timeout``: the hot path's events.

``Environment.step()`` reads three things of an event: ``callbacks`` (any iterable),
``_ok`` and ``_value``. A :class:`Call` carries just those, so scheduling one is a slotted
object and a ``heappush`` instead of ``Timeout.__init__`` plus ``Environment.schedule``
(about a sixth of a request's cost). Its callbacks are a tuple made once per receiver and
shared by every call to it. Ordering is SimPy's own: (time, priority, event id).
"""

from __future__ import annotations

from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class Call:
    """A pending call: ``callbacks`` run with this object at its time, ``_value`` is its
    argument (read as ``event._value``, as for a Timeout's value)."""

    __slots__ = ("callbacks", "_value")
    _ok = True


def call_later(env: simpy.Environment, delay: float, callbacks: tuple, value: Any = None) -> None:
    """Schedule ``callbacks`` after ``delay``, exactly where ``env.timeout(delay, value)``
    would be in the queue. The hot paths inline this body."""
    call = Call()
    call.callbacks = callbacks
    call._value = value
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), call))  # type: ignore[attr-defined]


def drop_pending(env: simpy.Environment) -> None:
    """Forget every event still queued (the run is over): their callbacks hold the run's
    parts, which must go by reference counting, while the environment (which refers to
    itself) waits for the cyclic collector. SimPy has no public call for it."""
    env._queue.clear()  # type: ignore[attr-defined]
