"""A pod: c workers in front of a FIFO queue, optionally bounded.

Event callbacks rather than a SimPy process per request: a request costs one event to
arrive and one to finish (plain SimPy with a Resource spends about six), which is where
npsim's speed comes from (des-lessons.md, "callbacks save about 20% per event").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

from npsim.dists import Sampler
from npsim.sim.records import COMPLETED, FAILED, QUEUE_FULL, RequestLog


class PodServer:
    __slots__ = ("env", "log", "free", "queue", "limit", "sample", "on_done", "index")

    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        workers: int,
        queue_limit: int | None,
        sample: Sampler,
        log: RequestLog,
        on_done: Callable[[int, float], None],
    ) -> None:
        self.env = env
        self.index = index
        self.log = log
        self.free = workers
        self.queue: deque[int] = deque()
        self.limit = queue_limit
        self.sample = sample
        self.on_done = on_done  # (request, time the client sees the end) -> None

    def arrive(self, event: simpy.Event) -> None:
        request = event._value
        if self.free:
            self.free -= 1
            self._start(request)
        elif self.limit is not None and len(self.queue) >= self.limit:
            log = self.log
            now = self.env._now
            log.outcome[request] = FAILED
            log.reason[request] = QUEUE_FULL
            end = now + log.network[request] * 0.5
            log.t_end[request] = end
            self.on_done(request, end)
        else:
            self.queue.append(request)

    def _start(self, request: int) -> None:
        duration = self.sample()
        log = self.log
        log.service_start[request] = self.env._now
        log.service[request] = duration
        self.env.timeout(duration, request).callbacks.append(self._finish)

    def _finish(self, event: simpy.Event) -> None:
        request = event._value
        log = self.log
        log.outcome[request] = COMPLETED
        end = self.env._now + log.network[request] * 0.5
        log.t_end[request] = end
        if self.queue:
            self._start(self.queue.popleft())
        else:
            self.free += 1
        self.on_done(request, end)

