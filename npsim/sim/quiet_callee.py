"""Callees served the moment a call reaches them: no end-of-service event.

A pod that answers calls (npsim/sim/rpc.py) cannot be a :class:`~npsim.sim.pods.QuietPod`,
served after the run: its caller waits for the answer during the run. It need not be an
event-driven :class:`~npsim.sim.pods.PodServer` either, when nothing can change how it
serves. Its c FIFO workers then give each request, the moment it arrives, the start
and end it will have: the start is ``max(arrival, earliest time a worker is free)``,
and that worker is next free at start + service (the Lindley recursion over c workers
that :class:`QuietPod` applies after the run; Kiefer and Wolfowitz 1955). The pod's
arrivals reach it as events in SimPy's time order, so every earlier arrival has been
served this way by then; FIFO makes arrival order start order, so each service time is
drawn in the order the event-driven pod draws it, from the same sampler. The row is
written complete, and a waiting caller is resumed by one event at the time the answer
reaches it (:meth:`npsim.sim.rpc.CallPopulation.answered`), instead of three events
(arrival, end of service, the caller's resumption) and the end report through the
engine. The times are the same floats: the end of service is start + service, the
answer's time that plus half the row's round trip, the caller's resumption
``finish + max(t_end - finish, 0)`` as the event-driven path computes it.

Usable when nothing looks at the pod mid-service or needs to hear of an end at the end
of service (:func:`quiet_callees`, decided once by the run's build):

- no event can touch the pod (``FaultPlan.pods_touched``: a fault of its node or of
  itself, a scale or rollout of its Deployment kill, drain or hang a process);
- it makes no calls itself (a caller's worker is held until its calls end, which is
  not known at arrival);
- no queue limit (admission would depend on the queue at arrival; :class:`QuietPod`
  counts it after the run, this path keeps it event-driven to stay simple);
- every population that can reach it (its Services' endpoints) either hears of no end
  (open-loop clients without timeouts or retries) or is a call edge. A call's end is
  its caller's resumption, and its ``timeout`` is decided at arrival too: a call whose
  service would end at or after its deadline is left to the timeout's own event, armed
  when it was sent, which fails it as it does for an event-driven callee (the late
  answer changes nothing there); ``retries`` follow failures, and a quiet callee
  fails no call (:meth:`~npsim.sim.rpc.CallPopulation.answered`);
- no kube-proxy or firewall counts connections (IPVS least-connection, conntrack
  limits: they hear of every end at its time) and no TLS is terminated at pods.

Everything else stays event-driven, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from heapq import heapreplace
from typing import TYPE_CHECKING

import simpy

from npsim.dists import Sampler
from npsim.outcomes import COMPLETED
from npsim.sim.clients import needs_done
from npsim.sim.pods import PodServer
from npsim.sim.records import RequestLog
from npsim.sim.rpc import CallPopulation

if TYPE_CHECKING:
    from npsim.cluster.model import Cluster
    from npsim.scenario.client_spec import ClientSpec
    from npsim.scenario.faultplan import FaultPlan

#: what a quiet callee calls for a request whose population waits for it: (request, end
#: of service, time the answer reaches the caller) -> False if the caller gave up first
Answer = Callable[[int, float, float], bool]


class QuietCallee(PodServer):
    """A pod served at each request's arrival (see the module doc)."""

    __slots__ = ("free_at", "answers")

    def __init__(self, env: simpy.Environment, index: int, workers: int,
                 queue_limit: int | None, sample: Sampler, log: RequestLog,
                 on_done: Callable[[int, float], None] | None) -> None:
        if queue_limit is not None:
            raise ValueError("a QuietCallee has no queue limit: use PodServer")
        super().__init__(env, index, workers, None, sample, log, None)
        self.queue = ()  # type: ignore[assignment]  # nothing waits here
        self.free_at = [0.0] * workers  # a heap: when each worker is next free
        # per population: whom to answer (a call edge's caller), or None (no one waits)
        self.answers: Sequence[Answer | None] = ()

    def arrive(self, event: simpy.Event) -> None:
        request = event._value
        now = self.env._now
        free_at = self.free_at
        start = free_at[0]
        if start < now:
            start = now
        duration = self.sample()
        finish = start + duration
        heapreplace(free_at, finish)
        log = self.log
        log.service_start[request] = start
        log.service[request] = duration
        end = finish + log.network[request] * 0.5  # as PodServer.served adds it
        answer = self.answers[log.population[request]]
        if answer is None or answer(request, finish, end):  # else the caller gave up
            log.outcome[request] = COMPLETED
            log.t_end[request] = end


def quiet_callees(cluster: Cluster, plan: FaultPlan, clients: Sequence[ClientSpec],
                  call_pops: Sequence[CallPopulation], calling: Collection[str],
                  reports_at_end: bool) -> set[int]:
    """The pods to serve as :class:`QuietCallee` (see the module doc): none without
    call edges or when something hears of every end at its time (``reports_at_end``:
    connection counting, TLS at pods)."""
    if not call_pops or reports_at_end:
        return set()
    pods = cluster.pods
    candidates = {p.index for p in pods
                  if p.deployment not in calling and p.queue_limit is None}
    candidates -= plan.pods_touched(pods, cluster.node_index)
    waiting = {cluster.service_port_for(c.service, c.port).index
               for c in clients if needs_done(c)}
    for index in waiting:  # a population that hears of each end at its time reaches these
        candidates -= {e.pod for e in cluster.service_ports[index].endpoints}
    return candidates


def wire_answers(servers: Sequence[PodServer], populations: Sequence[object]) -> None:
    """Give the quiet callees whom to answer, per population (made after the pods)."""
    answers = [pop.answered if isinstance(pop, CallPopulation) else None
               for pop in populations]
    for server in servers:
        if isinstance(server, QuietCallee):
            server.answers = answers
