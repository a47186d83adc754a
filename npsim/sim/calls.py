"""Timed calls on SimPy's queue without a SimPy ``Timeout``: the hot path's events.

``Environment.step()`` reads three things of an event: ``callbacks`` (any iterable),
``_ok`` and ``_value``. A :class:`Call` carries just those, so scheduling one is a slotted
object and a ``heappush`` instead of ``Timeout.__init__`` plus ``Environment.schedule``
(about a sixth of a request's cost). Its callbacks are a tuple made once per receiver and
shared by every call to it. Ordering is SimPy's own: (time, priority, event id).

This module is the one place that reaches into SimPy's private state (its event heap
and id counter, ``Environment._queue`` and ``_eid``; SimPy has no public call that
schedules a ready-made event). The three per-request pushes (a request reaching its
pod in the engine, a pod's end of service, an open loop's next arrival) take the heap
and the counter from :func:`event_queue` once and push inline: a function call per
event measured +55 ns, 1-4% of a request. Everything else schedules through
:func:`call_later` or SimPy's own ``env.timeout``. An open loop at a constant rate
(npsim/sim/clients.py ``OpenLoop._arrive_constant``) also sends its next arrival at
once, moving the clock (``env._now``) to it, when no queued event is due before it:
SimPy would take that arrival next, so nothing else sees the difference but the event
ids it does not use. Handlers that receive a Call read
``event._value`` (a Call has no ``value`` property), and the per-request ones read
``env._now`` (the property costs a call); cold paths read ``env.now``, and
``event.value`` of SimPy's own events. pyproject.toml bounds
simpy below its next major version, and tests/test_dependencies.py checks the bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class Call:
    """A pending call: ``callbacks`` run with this object at its time, ``_value`` is its
    argument (read as ``event._value``, as for a Timeout's value)."""

    __slots__ = ("callbacks", "_value")
    _ok = True


def event_queue(env: simpy.Environment) -> tuple[list, Iterator[int]]:
    """``env``'s event heap and event-id counter, for a hot path's inline push of a
    :class:`Call`: ``heappush(heap, (time, NORMAL, next(ids), call))``."""
    return env._queue, env._eid  # type: ignore[attr-defined]


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
