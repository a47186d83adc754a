"""Servers with c workers in front of a FIFO queue: pods, and userspace kube-proxy relays.

Event callbacks rather than a SimPy process per request: a request costs one event to
arrive and one to finish (plain SimPy with a Resource spends about six), which is where
npsim's speed comes from (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

from npsim.dists import Sampler
from npsim.sim.records import COMPLETED, ENDPOINT_GONE, FAILED, QUEUE_FULL, RequestLog


class Station:
    """c workers and a FIFO queue; what happens after service is the subclass's."""

    __slots__ = ("env", "log", "free", "queue", "sample", "index")

    def __init__(self, env: simpy.Environment, index: int, workers: int, sample: Sampler,
                 log: RequestLog) -> None:
        self.env = env
        self.index = index
        self.log = log
        self.free = workers
        self.queue: deque[int] = deque()
        self.sample = sample

    def arrive(self, event: simpy.Event) -> None:
        request = event._value
        if self.free:
            self.free -= 1
            self._start(request)
        elif self.admit(request):
            self.queue.append(request)

    def admit(self, request: int) -> bool:
        return True

    def _start(self, request: int) -> None:
        duration = self.sample()
        self.started(request, duration)
        self.env.timeout(duration, request).callbacks.append(self._finish)

    def _finish(self, event: simpy.Event) -> None:
        if self.queue:
            self._start(self.queue.popleft())
        else:
            self.free += 1
        self.served(event._value)

    def started(self, request: int, duration: float) -> None:
        """Service of ``request`` begins now and lasts ``duration``."""

    def served(self, request: int) -> None:
        raise NotImplementedError


class PodServer(Station):
    """A pod: c workers, FIFO queue, optional limit (a full queue rejects)."""

    __slots__ = ("limit", "on_done", "alive")

    def __init__(self, env: simpy.Environment, index: int, workers: int,
                 queue_limit: int | None, sample: Sampler, log: RequestLog,
                 on_done: Callable[[int, float], None] | None) -> None:
        super().__init__(env, index, workers, sample, log)
        self.limit = queue_limit
        self.on_done = on_done  # (request, time the client sees the end), if anyone asks
        self.alive = True

    def arrive(self, event: simpy.Event) -> None:
        if self.alive:
            Station.arrive(self, event)
        else:  # deleted while the request was on its way: a reset comes back
            self._turn_away(event._value, ENDPOINT_GONE)

    def admit(self, request: int) -> bool:
        if self.limit is None or len(self.queue) < self.limit:
            return True
        self._turn_away(request, QUEUE_FULL)
        return False

    def _turn_away(self, request: int, reason: int) -> None:
        log = self.log
        log.outcome[request] = FAILED
        log.reason[request] = reason
        end = self.env._now + log.network[request] * 0.5
        log.t_end[request] = end
        if self.on_done is not None:
            self.on_done(request, end)

    def started(self, request: int, duration: float) -> None:
        log = self.log
        log.service_start[request] = self.env._now
        log.service[request] = duration

    def served(self, request: int) -> None:
        log = self.log
        log.outcome[request] = COMPLETED
        end = self.env._now + log.network[request] * 0.5
        log.t_end[request] = end
        if self.on_done is not None:
            self.on_done(request, end)


class Relay(Station):
    """The userspace kube-proxy process on one node: every request is copied through it."""

    __slots__ = ("forward",)

    def __init__(self, env: simpy.Environment, index: int, workers: int, sample: Sampler,
                 log: RequestLog, forward: Callable[[int, float], None]) -> None:
        super().__init__(env, index, workers, sample, log)
        self.forward = forward  # (request, remaining delay to the pod) -> None

    def served(self, request: int) -> None:
        log = self.log
        arrived = (log.t_start[request] + (log.network[request] - log.hop[request]) * 0.5
                   + log.proxy[request])
        log.proxy[request] += self.env._now - arrived
        self.forward(request, log.hop[request] * 0.5)
