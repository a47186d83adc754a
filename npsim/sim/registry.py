"""The run's pods: each pod's serving process, how requests reach it, its sampler.

:class:`PodRegistry` holds one server per pod (index = the pod's index in the cluster),
decided once per pod: a :class:`~npsim.sim.pods.QuietPod` served after the run, a
:class:`~npsim.sim.quiet_callee.QuietCallee` served at each arrival, or an event-driven
:class:`~npsim.sim.pods.PodServer`. The engine reads ``servers`` and
``arrive`` on the hot path (the same lists for the whole run: a pod's new process
replaces its entry in place); the kubelets, faults and the control plane change pods
through the methods here.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from npsim.cluster.model import Cluster, Pod
from npsim.sim.calls import call_later
from npsim.sim.pods import PodServer, QuietPod
from npsim.sim.quiet_callee import QuietCallee
from npsim.sim.records import RequestLog
from npsim.streams import Streams


class ConnectionCount:
    """How many connections the run has opened: a connection's id is its number. The
    engine counts; a pod's new process takes only connections after the count."""

    __slots__ = ("opened",)

    def __init__(self) -> None:
        self.opened = 0


class PodRegistry:
    """Every pod's server, its arrive callbacks and its service-time sampler."""

    def __init__(self, env: simpy.Environment, cluster: Cluster, streams: Streams,
                 log: RequestLog, quiet: set[int], server_class: type[PodServer],
                 on_done: Callable[[int, float], None] | None, timeouts: list[float],
                 make_pod: Callable[[str, int], Pod], connections: ConnectionCount,
                 callers: dict[str, tuple[type, object]] | None = None,
                 callees: set[int] | None = None) -> None:
        self.env = env
        self.cluster = cluster
        self.streams = streams
        self.log = log
        self.quiet = quiet  # pod indexes served after the run
        self.server_class = server_class
        self.on_done = on_done  # (request, end) -> None, when someone waits for ends
        self.timeouts = timeouts  # per population: how long a client waits
        self.make_pod = make_pod  # (deployment, node) -> a new Pod in the cluster
        self.connections = connections
        # deployment -> (server class, call plan) of pods that call Services (sim/rpc.py)
        self.callers = callers or {}
        self.callees = callees or set()  # pod indexes served at each arrival
        self.servers: list[PodServer] = []
        # per pod, its arrive method as a Call's callbacks (npsim/sim/calls.py); None for
        # a quiet pod, which takes no event
        self.arrive: list[tuple[Callable[[simpy.Event], None]] | None] = []
        # each pod's service-time sampler (None for a quiet pod: made after the run)
        self._samplers: list[Callable[[], float] | None] = []
        for pod in cluster.pods:
            self._serve(pod)

    def _serve(self, pod: Pod) -> PodServer:
        streams = self.streams  # not self: a quiet pod keeps this, the run must not cycle

        def stream() -> Callable[[], float]:
            return pod.service_time.sampler(streams.generator(f"service/{pod.name}"))

        # a quiet pod draws only after the run: its stream is made then (at 10,000 pods
        # the streams were 15 MB and a third of the build)
        quiet = pod.index in self.quiet
        sampler = None if quiet else stream()
        self._samplers.append(sampler)
        server = self._process(pod.index, sampler)
        if quiet:
            server.stream = stream  # type: ignore[attr-defined]  # a QuietPod
        self.servers.append(server)
        self.arrive.append(None if quiet else (server.arrive,))
        return server

    def _process(self, index: int, sampler: Callable[[], float] | None) -> PodServer:
        pod = self.cluster.pods[index]
        kind = (QuietPod if index in self.quiet else QuietCallee if index in self.callees
                else self.server_class)
        caller = self.callers.get(pod.deployment) if self.callers else None
        if caller is not None:
            kind = caller[0]
        server = kind(self.env, index, pod.workers, pod.queue_limit, sampler,
                      self.log, self.on_done)
        if caller is not None:
            server.plan = caller[1]  # type: ignore[attr-defined]
        server.timeouts = self.timeouts
        return server

    def deliver(self, request: int, delay: float) -> None:
        """Hand ``request`` to its pod after ``delay`` (after a userspace relay)."""
        call_later(self.env, delay, self.arrive[self.log.pod[request]], request)

    # --- pods coming and going (cold path) ----------------------------------------------

    def fresh_process(self, index: int) -> PodServer:
        """The pod's container (re)starts: a new process, with no connection of the old
        one (connections opened before now are broken)."""
        self.disturbed(index)
        server = self._process(index, self._samplers[index])
        server.first_conn = self.connections.opened + 1
        self.servers[index] = server
        self.arrive[index] = (server.arrive,)
        return server

    def disturbed(self, index: int) -> PodServer:
        """The pod's server, for a fault or the control plane to change. A QuietPod (or
        a QuietCallee) has no state to change during the run (it is served after it, or
        at each arrival): reaching one here means the fault plan's ``pods_touched``
        missed a kind of event (a bug)."""
        server = self.servers[index]
        if isinstance(server, (QuietPod, QuietCallee)):
            raise RuntimeError(f"internal error: pod {self.cluster.pods[index].name} was "
                               "judged undisturbed by the scenario's events")
        return server

    def service_sampler(self, index: int) -> Callable[[], float]:
        """A pod's service-time sampler (a disturbed pod's: quiet pods make theirs when
        they are served, after the run)."""
        sampler = self._samplers[index]
        if sampler is None:
            raise RuntimeError(f"internal error: quiet pod {self.cluster.pods[index].name} "
                               "asked for its sampler during the run")
        return sampler

    def add_pod(self, deployment: str, node: int) -> Pod:
        """A new pod of ``deployment`` on ``node``: no process until the kubelet starts
        its container."""
        pod = self.make_pod(deployment, node)
        pod.created_at = self.env.now
        server = self._serve(pod)
        server.alive = False
        return pod

    def stop_pod(self, pod: Pod) -> None:
        """A deleted pod's address is gone: packets to it get no answer (a client waits
        for its timeout); its process was stopped by the kubelet before."""
        server = self.disturbed(pod.index)
        server.alive = server.serves_existing = server.hung = False
        server.silent = True
        pod.deleted_at = self.env.now

    def stop(self) -> None:
        """The run is over: servers report no more ends (the callback holds the engine),
        and served quiet pods let go of their streams and buffered draws."""
        for server in self.servers:
            server.on_done = None
            if isinstance(server, QuietPod):
                server.sample = server.stream = None  # type: ignore[assignment]
        self.on_done = None
