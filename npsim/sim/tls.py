"""HTTPS termination as a cost (tutorial 4.3): at the pod, or at a balancer in front.

Each *new* connection of a population with ``tls`` pays a handshake before its first
request; requests on a kept-alive connection pay nothing (``requestsPerConnection``).
A share ``resumption`` of new connections resume an earlier session (abbreviated
handshake: less CPU, TLS 1.2 one round trip instead of two). Costs:

* round trips: a full handshake takes 1 extra round trip in TLS 1.3 and 2 in TLS 1.2
  (RFC 8446 section 2; RFC 5246 section 7.3), a resumed one 1 (0-RTT early data is not
  modelled). They run between the client and the terminating side: at the pod a round
  trip is the client's ``rtt`` plus the node-to-pod hop; at the balancer only ``rtt``;
* CPU: ``handshakeCpu`` (full) or ``resumedCpu`` at the terminating side. At the pod it
  lengthens the connection's first request's service (it takes a pod worker, queues
  with everything else and shows in ``service`` and utilisation); at the balancer it
  queues FCFS on ``balancerCores`` cores (an exact multi-server FCFS queue, no events).

The defaults are assumptions, not measurements: about 1 ms of server CPU for a full
handshake with an RSA-2048 certificate (``openssl speed rsa2048``: a signature takes
roughly 0.5-1 ms on one current core) and 0.1 ms for a resumption.

Handshake time is added to the request's ``network`` column (it is round trips and, at
the balancer, its queue); :attr:`TlsCosts.totals` keeps the counts and CPU seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from npsim.sim.calls import call_later
from npsim.sim.pods import PodServer

if TYPE_CHECKING:
    from npsim.scenario.client_spec import TlsSpec
    from npsim.sim.clients import Population


class TlsPodServer(PodServer):
    """A pod that also terminates TLS: a request may carry handshake CPU to do first."""

    __slots__ = ("extra",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.extra: dict[int, float] = {}  # request -> handshake CPU seconds

    def _start(self, request: int) -> None:
        duration = self.sample() + self.extra.pop(request, 0.0)
        self.started(request, duration)
        call_later(self.env, duration, (self._finish,), request)  # a Timeout's place


class Terminator:
    """One population's TLS: where it terminates and what its handshakes cost."""

    def __init__(self, spec: TlsSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.at_pod = spec.terminate == "pod"
        self.full_trips = 1 if spec.version == "1.3" else 2
        self.cores = [0.0] * spec.balancer_cores  # when each balancer core is next free
        self.full = self.resumed = 0
        self.cpu = 0.0  # handshake CPU seconds spent
        self.queued = 0.0  # seconds handshakes waited for a balancer core

    def describe(self) -> str:
        where = "pod" if self.at_pod else f"balancer ({len(self.cores)} cores)"
        return (f"terminated at the {where}: {self.full} full, {self.resumed} resumed, "
                f"{self.cpu:.6g}s CPU" + ("" if self.at_pod else
                                          f", {self.queued:.6g}s queued for a core"))

    def handshake(self, now: float, rtt: Callable[[], float], hop: float,
                  pods: list[PodServer], pod: int, request: int) -> float:
        """Extra latency of a new connection's handshake (CPU at the pod is charged to
        that pod's worker instead)."""
        resumed = self.rng.random() < self.spec.resumption
        if resumed:
            self.resumed += 1
            cpu, trips = self.spec.resumed_cpu, 1
        else:
            self.full += 1
            cpu, trips = self.spec.handshake_cpu, self.full_trips
        self.cpu += cpu
        delay = 0.0
        for _ in range(trips):
            delay += rtt() + (hop if self.at_pod else 0.0)
        if self.at_pod:
            server = pods[pod]
            if isinstance(server, TlsPodServer):
                server.extra[request] = server.extra.get(request, 0.0) + cpu
            return delay
        free = heapq.heappop(self.cores)
        start = max(now, free)
        heapq.heappush(self.cores, start + cpu)
        self.queued += start - now
        return delay + (start - now) + cpu


class TlsCosts:
    """Every population's terminator; None entries for populations without TLS."""

    def __init__(self, populations: list[Population], generator: Callable[[str],
                                                                          np.random.Generator]):
        self.by_population: list[Terminator | None] = [
            Terminator(p.spec.tls, generator(f"tls/{p.name}")) if p.spec.tls is not None
            else None for p in populations]
        self.at_pods = any(t is not None and t.at_pod for t in self.by_population)

    @staticmethod
    def wanted(specs: list[object]) -> bool:
        return any(getattr(s, "tls", None) is not None for s in specs)

    @staticmethod
    def terminated_at_pods(specs: list[object]) -> bool:
        """Whether any population's TLS ends at the pods (they then pay handshake CPU)."""
        return any(getattr(s, "tls", None) is not None and s.tls.terminate == "pod"  # type: ignore[attr-defined]
                   for s in specs)

    def totals(self) -> dict[str, dict[str, float]]:
        """Per population: full and resumed handshakes, CPU seconds, balancer queueing."""
        return {f"population {i}": {"terminate_at_pod": float(t.at_pod), "full": t.full,
                                    "resumed": t.resumed, "cpu_seconds": t.cpu,
                                    "balancer_queue_seconds": t.queued}
                for i, t in enumerate(self.by_population) if t is not None}


def pod_server_class(tls_at_pods: bool) -> type[PodServer]:
    return TlsPodServer if tls_at_pods else PodServer

