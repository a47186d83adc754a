"""Servers with c workers in front of a FIFO queue: pods, and userspace kube-proxy relays.

Event callbacks rather than a SimPy process per request: a request costs one event to
arrive and one to finish (plain SimPy with a Resource spends about six), and none at a
pod nothing disturbs (``QuietPod``, served after the run from the request log), which
is where npsim's speed comes from (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from heapq import heappush, heapreplace
from typing import TYPE_CHECKING

import simpy

from npsim.dists import Sampler, next_values
from npsim.outcomes import COMPLETED, ENDPOINT_GONE, FAILED, IN_FLIGHT, QUEUE_FULL
from npsim.sim.calls import NORMAL, Call, event_queue
from npsim.sim.records import NAN, RequestLog

if TYPE_CHECKING:  # numpy is imported when pods are settled
    import numpy as np


class Station:
    """c workers and a FIFO queue; what happens after service is the subclass's."""

    __slots__ = ("env", "log", "free", "queue", "sample", "index", "_heap", "_ids")

    def __init__(self, env: simpy.Environment, index: int, workers: int, sample: Sampler,
                 log: RequestLog) -> None:
        self.env = env
        self.index = index
        self.log = log
        self.free = workers
        self.queue: deque[int] = deque()
        self.sample = sample
        self._heap, self._ids = event_queue(env)  # for the end of service (calls.py)

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
        call = Call()  # the end of service, where env.timeout(duration) would be queued
        call.callbacks = (self._finish,)
        call._value = request
        heappush(self._heap, (self.env._now + duration, NORMAL, next(self._ids), call))

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
    """A pod's serving process: c workers, FIFO queue, optional limit (a full queue rejects).

    Lifecycle flags (the kubelets, npsim/sim/kubelet.py, and the pod registry set them;
    all False/True defaults cost nothing):
    ``alive``: accepts new connections and serves; ``serves_existing``: while not alive,
    requests on established connections are still taken (a draining app, or a hung one
    that takes them and never answers: ``hung``); ``silent``: nothing answers at all (the
    node is down or the pod's address is gone), so clients wait for their timeout rather
    than get a reset; ``first_conn``: connections opened before it (an earlier process of
    this pod) are broken.
    """

    __slots__ = ("limit", "on_done", "alive", "serves_existing", "hung", "silent",
                 "first_conn", "held", "killed_at", "timeouts", "n_workers", "on_idle")

    def __init__(self, env: simpy.Environment, index: int, workers: int,
                 queue_limit: int | None, sample: Sampler, log: RequestLog,
                 on_done: Callable[[int, float], None] | None) -> None:
        super().__init__(env, index, workers, sample, log)
        self.limit = queue_limit
        self.on_done = on_done  # (request, time the client sees the end), if anyone asks
        self.alive = True
        self.serves_existing = False
        self.hung = False
        self.silent = False
        self.first_conn = 0
        self.held: list[int] = []  # taken by a hung process, never answered
        self.killed_at = 0.0
        self.timeouts: list[float] = []  # per population: how long a client waits
        self.n_workers = workers
        self.on_idle: Callable[[], None] | None = None

    def arrive(self, event: simpy.Event) -> None:
        if self.alive:  # Station.arrive, inline (a call per request)
            request = event._value
            if self.free:
                self.free -= 1
                self._start(request)
            elif self.admit(request):
                self.queue.append(request)
        elif self.hung:
            self.held.append(event._value)
        elif self.serves_existing:  # draining: the request came on an open connection
            Station.arrive(self, event)
        else:  # gone while the request was on its way: a reset, or silence
            self._turn_away(event._value, ENDPOINT_GONE)

    def admit(self, request: int) -> bool:
        if self.limit is None or len(self.queue) < self.limit:
            return True
        self._turn_away(request, QUEUE_FULL)
        return False

    def _turn_away(self, request: int, reason: int, at: float | None = None) -> None:
        log = self.log
        log.outcome[request] = FAILED
        log.reason[request] = reason
        now = self.env.now
        if self.silent:  # no reset comes back: the client gives up after its timeout
            end = max(log.t_start[request] + self.timeouts[log.population[request]], now)
        else:
            end = (now if at is None else at) + log.network[request] * 0.5
        log.t_end[request] = end
        if self.on_done is not None:  # a process killed earlier reports only now
            self.on_done(request, max(end, now))

    def _start(self, request: int) -> None:
        """Station._start with :meth:`started` inline (a call per request)."""
        duration = self.sample()
        log = self.log
        now = self.env._now
        log.service_start[request] = now
        log.service[request] = duration
        call = Call()
        call.callbacks = (self._finish,)
        call._value = request
        heappush(self._heap, (now + duration, NORMAL, next(self._ids), call))

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

    # --- lifecycle (cold path) ------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing in service, queued or held (a draining app may exit)."""
        return not self.queue and not self.held and self.free == self.n_workers

    def drain(self, on_idle: Callable[[], None]) -> None:
        """SIGTERM to an app that shuts down gracefully: it closes its listener (new
        connections are refused), finishes what it has and what comes on open
        connections, and calls ``on_idle`` once it has nothing left (then exits)."""
        self.alive = False
        self.serves_existing = True
        self.on_idle = on_idle
        _become(self, _Draining)
        if self.idle:
            on_idle()

    def kill(self, silent: bool = False) -> None:
        """The process dies now: what it queued or held fails (a reset, or silence when
        the node went with it); what it was serving fails when its service would have
        ended. The pod's next process is a new :class:`PodServer`."""
        self.alive = self.serves_existing = self.hung = False
        self.silent = silent
        self.killed_at = self.env.now
        pending = list(self.queue) + self.held
        self.queue.clear()
        self.held = []
        for request in pending:
            self._turn_away(request, ENDPOINT_GONE, self.killed_at)
        _become(self, _Killed)

    def resume(self) -> None:
        """A hang ends: held requests are served in the order they came."""
        self.hung = False
        held, self.held = self.held, []
        for request in held:
            if self.free:
                self.free -= 1
                self._start(request)
            elif self.admit(request):
                self.queue.append(request)


class QuietPod(PodServer):
    """A pod that nothing disturbs while the run goes: its requests are served in one
    pass after the run (:func:`settle`), with no event of its own.

    For c FIFO workers, a request arriving at ``t`` starts at ``max(t, earliest time a
    worker is free)`` and frees that worker at start + service (the Lindley recursion
    over c workers; Kiefer and Wolfowitz 1955). That needs only the pod's arrivals in
    time order, and nothing in the run looks at how a quiet pod's requests fare, so the
    engine hands no request over at all: the request log already holds when each one
    reaches its pod (sent + half the network round trip + kube-proxy's cost). After the
    run each pod takes its arrivals in (time, request) order, which is SimPy's
    (time, event id) order for the arrival events this replaces, and draws its service
    times in that order from its own stream, as :class:`PodServer` draws them (arrival
    order is start order under FIFO). A run gives the same numbers with no event per
    request and no pod state kept during the run: at 10,000 pods each request's pod, its
    workers and its random stream were a cache miss away. A queue limit counts the admitted
    requests whose start is still ahead. What would arrive after a timed run stops stays
    in flight, as its event would have stayed; the end a client would only see after the
    stop is reported as in flight by the frames (npsim/results/frames.py).

    Usable only when no one looks at the pod mid-service: no event that can touch it
    (a scale or rollout of its Deployment, a fault of its node or of itself: they kill,
    drain or hang a process; ``FaultPlan.pods_touched`` in npsim/scenario/faultplan.py),
    no per-request end notifications (closed loops, retries, timeouts, connection
    counting), no TLS
    terminated at the pod, and the log must hold when each request arrives (no
    userspace relay on the way: its queue hands requests on at times the log does not
    hold). The run's build decides it per pod (``npsim.sim.build.quiet_pods``); otherwise
    :class:`PodServer` serves, with events. There is no third way: a quiet pod takes no
    event (:meth:`arrive` refuses one).
    """

    __slots__ = ("free_at", "starts", "stream")

    def __init__(self, env: simpy.Environment, index: int, workers: int,
                 queue_limit: int | None, sample: Sampler | None, log: RequestLog,
                 on_done: Callable[[int, float], None] | None) -> None:
        if on_done is not None:
            raise ValueError("a QuietPod reports no ends: use PodServer")
        super().__init__(env, index, workers, queue_limit, sample, log, None)
        self.queue = ()  # type: ignore[assignment]  # nothing waits here: no deque (~600 B)
        self.free_at = [0.0] * workers  # a heap: when each worker is next free
        # queued requests' starts, kept only to apply a queue limit
        self.starts: deque[float] | None = deque() if queue_limit is not None else None
        # makes the service-time sampler when ``sample`` is None: at the first request
        self.stream: Callable[[], Sampler] | None = None

    def arrive(self, event: simpy.Event) -> None:
        raise RuntimeError("internal error: a request reached a QuietPod as an event; "
                           "quiet pods are served after the run (settle)")

    def _open(self) -> Sampler:
        if self.stream is None:
            raise RuntimeError("internal error: a QuietPod without a sampler or a stream")
        self.sample = self.stream()
        return self.sample

    def take_all(self, arrivals: list[float]) -> tuple[list[float], list[float]]:
        """Starts and service times of requests reaching the pod at ``arrivals`` (in time
        order, after any taken before): NaN, NaN for one a full queue turns away."""
        free_at, sample = self.free_at, self.sample or self._open()
        limit, queued = self.limit, self.starts
        starts: list[float] = []
        if queued is None:  # no queue limit: every request is served, one draw each
            durations = next_values(sample, len(arrivals))
            for now, duration in zip(arrivals, durations, strict=True):
                start = free_at[0]
                if start < now:
                    start = now
                heapreplace(free_at, start + duration)
                starts.append(start)
            return starts, durations
        durations = []
        for now in arrivals:
            start = free_at[0]
            if start < now:
                start = now
            elif start > now:  # it waits, behind the queue limit
                while queued and queued[0] <= now:  # those that have started by now
                    queued.popleft()
                if len(queued) >= limit:  # type: ignore[operator]
                    starts.append(NAN)
                    durations.append(NAN)
                    continue
                queued.append(start)
            duration = sample()
            heapreplace(free_at, start + duration)
            starts.append(start)
            durations.append(duration)
        return starts, durations


#: about how many requests :func:`settle` sorts at once (a pod's are never split)
SETTLE_BLOCK = 1 << 17
#: how many of a pod's arrivals are served per :meth:`QuietPod.take_all` call
TAKE_CHUNK = 1 << 13


def settle(servers: Sequence[PodServer], log: RequestLog, until: float | None,
           final: bool = True) -> None:
    """Serve what the quiet pods among ``servers`` (the :class:`QuietPod` ones) were sent
    and would have received before ``until`` (all when None, a run that drains; SimPy's
    ``run(until)`` stops before events at ``until``): grouped by pod, each pod's in
    (arrival time, request) order.

    This runs at the end of the run, when the request log is at its largest: pods are
    taken in blocks of consecutive pods with about ``SETTLE_BLOCK`` waiting requests (or
    a sixteenth of them, if more; a pod's are never split), and a pod's arrivals
    ``TAKE_CHUNK`` at a time, so what settling needs stays a few bytes per request of the
    log however long the run. ``final``: the run is over, so each pod's stream is let go
    once its requests are served (10,000 pods' streams and their buffered draws were
    35 MB at the run's peak).
    """
    import numpy as np

    is_quiet = np.fromiter((isinstance(server, QuietPod) for server in servers), bool,
                           len(servers))
    if not is_quiet.any() or not len(log):
        return
    cols = log.columns()
    pod = cols["pod"]
    waiting = cols["outcome"] == IN_FLIGHT  # sent to a quiet pod, not served yet
    waiting &= pod >= 0
    waiting[waiting] = is_quiet[pod[waiting]]
    counts = np.bincount(pod[waiting], minlength=len(is_quiet))
    block = max(SETTLE_BLOCK, int(counts.sum()) // 16)
    ends = np.flatnonzero(np.diff(np.cumsum(counts) // block)) + 1  # where blocks turn
    for lo, hi in zip([0, *ends.tolist()], [*ends.tolist(), len(is_quiet)], strict=True):
        if not counts[lo:hi].any():
            continue
        rows = np.flatnonzero(waiting & (pod >= lo) & (pod < hi)).astype(np.int32)
        _settle_rows(servers, cols, rows, until, final)
    # Views pin the columns: the log may grow again (trim, npsim explain --at). A frame
    # kept past its return keeps its locals (a Dask worker samples its running frames):
    # emptied, the dict holds no view for a kept frame of columns() either.
    cols.clear()
    del cols, pod


def _settle_rows(servers: Sequence[PodServer], cols: dict, rows: np.ndarray,
                 until: float | None, final: bool) -> None:
    """:func:`settle` for the requests ``rows`` (every one of a pod's, for some pods)."""
    import numpy as np

    pod, network = cols["pod"], cols["network"]
    # when each reaches its pod: the engine's own sum (t_start + (network/2 + proxy))
    at = network[rows]
    at *= 0.5
    at += cols["proxy"][rows]
    at += cols["t_start"][rows]  # IEEE addition commutes: the same value
    if until is not None:
        keep = at < until
        rows, at = rows[keep], at[keep]
        del keep
    if not len(rows):
        del pod, network  # as in settle: no view outlives the call
        return
    order = np.lexsort((at, pod[rows]))  # by pod, then arrival; stable: then request
    rows = rows[order]
    at = at[order]
    del order
    by_pod = pod[rows]
    cuts = (np.flatnonzero(by_pod[1:] != by_pod[:-1]) + 1).tolist()
    starts = np.empty(len(rows))
    durations = np.empty(len(rows))
    for lo, hi in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        server = servers[int(by_pod[lo])]
        for a in range(lo, hi, TAKE_CHUNK):  # Python floats for a chunk at a time
            b = min(a + TAKE_CHUNK, hi)
            starts[a:b], durations[a:b] = server.take_all(at[a:b].tolist())
        if final:
            server.sample = server.stream = None  # type: ignore[assignment, union-attr]
    del by_pod
    full = np.isnan(starts)
    if full.any():  # turned away by a full queue: a reset comes back
        turned = rows[full]
        cols["outcome"][turned] = FAILED
        cols["reason"][turned] = QUEUE_FULL
        cols["t_end"][turned] = at[full] + network[turned] * 0.5
        served = ~full
        rows, starts, durations = rows[served], starts[served], durations[served]
    del at, full
    cols["service_start"][rows] = starts
    cols["service"][rows] = durations
    cols["outcome"][rows] = COMPLETED
    ends = durations
    ends += starts  # (start + duration) + half the round trip, as the event path adds
    del starts
    half = network[rows]
    half *= 0.5
    ends += half
    cols["t_end"][rows] = ends
    del pod, network


class _Draining:
    """A process finishing its last requests before it exits."""

    __slots__ = ()

    def served(self, request: int) -> None:
        super().served(request)  # type: ignore[misc]
        if self.on_idle is not None and self.idle:  # type: ignore[attr-defined]
            on_idle, self.on_idle = self.on_idle, None  # type: ignore[attr-defined]
            on_idle()


class _Killed:
    """A dead process: requests it was serving fail when their service would have ended
    (the client saw a reset at the kill, or nothing at all)."""

    __slots__ = ()

    def served(self, request: int) -> None:
        self._turn_away(request, ENDPOINT_GONE, self.killed_at)  # type: ignore[attr-defined]


_VARIANTS: dict[tuple[type, type], type] = {}


def _become(server: PodServer, state: type) -> None:
    """Switch a server's class to ``state`` over its own kind of server (a TLS-terminating
    one stays one): the states change only what happens after service, so the hot path
    of a healthy pod checks nothing."""
    base = getattr(type(server), "_base", type(server))
    variant = _VARIANTS.get((base, state))
    if variant is None:
        variant = _VARIANTS[(base, state)] = type(
            f"{state.__name__.strip('_')}{base.__name__}", (state, base),
            {"__slots__": (), "_base": base})
    server.__class__ = variant


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
