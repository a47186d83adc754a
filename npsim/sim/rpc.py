"""Pods that call Services while they serve a request (a workload's ``calls:``).

A call is a request like any client's: it gets a row of the request log and takes the
in-cluster client path of the engine (``source: {pod: NODE}``, ``target: clusterIP``):
the caller pod's node's kube-proxy picks the endpoint with its mode's choice, SNAT
rules, internalTrafficPolicy, topology and ClientIP affinity (the caller pod's address
is the source), the node-to-node hop is added, and the callee pod queues and serves it.
Each call edge (caller workload -> Service port) is one :class:`CallPopulation`, a
population without arrivals of its own, with one client slot per caller pod (its
connection state: ``requestsPerConnection`` calls per connection, as a keep-alive
HTTP client or a gRPC channel reuses one). Timeouts and retries are the client model's.

A caller pod's server (:func:`calling_class`) does its own work (its service time),
then the calls, step by step (``parallel:`` steps fan out and join), then answers. A
blocking worker (synchronous RPC: a thread-per-request server) is held until then, so
slow callees show up as queueing at the caller; a non-blocking one (an async server)
is freed when its own work ends. A failed call fails the request it was made for
(``onFailure: fail``, the rest of its calls are not made) or is ignored
(``continue``). What each call was made for is kept in :class:`CallRecords`, so that
the tree of any request can be rebuilt (npsim/results/callframe.py).

Nothing here runs for a scenario whose workloads make no calls: the build makes no
call population and no calling server, and the engine's hot path is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from npsim.cluster.model import Cluster
from npsim.dists import batched
from npsim.outcomes import COMPLETED, DOWNSTREAM_FAILED, FAILED
from npsim.scenario.calls_spec import CallSpec, ParallelSpec
from npsim.scenario.client_spec import ArrivalSpec, ClientSpec, SourceSpec
from npsim.scenario.objects import selector_matches
from npsim.sim.calls import NORMAL, Call
from npsim.sim.clients import Addresses, FixedEntry, Population, SendFn
from npsim.sim.records import RequestLog

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario
    from npsim.sim.pods import PodServer
    from npsim.streams import Streams


class CallRecords:
    """Per call row of the request log: the request it was made for, its depth (1: made
    while serving a client's request), the caller pod, and the call edge."""

    def __init__(self) -> None:
        self.row: list[int] = []
        self.parent: list[int] = []
        self.depth: list[int] = []
        self.caller: list[int] = []
        self.edge: list[int] = []
        # call row -> depth, for the calls it makes: kept only for the edges whose
        # callee pods may call (``nesting``; a dict entry is ~74 bytes a call row)
        self.depth_of: dict[int, int] = {}
        self.nesting: set[int] = set()
        # per population (the clients', then the call edges'): the Service it sends to
        self.services: list[str] = []
        # a blocking caller's worker freed after the calls: (row, when), for the pods
        # frame's utilisation (the worker is held from service start until then)
        self.freed_row: list[int] = []
        self.freed_at: list[float] = []
        self.holding: set[str] = set()  # the workloads whose workers wait for calls
        self.externals: set[str] = set()  # callees outside the cluster (call_targets.py)

    def add(self, row: int, parent: int, depth: int, caller: int, edge: int) -> None:
        if edge in self.nesting:
            self.depth_of[row] = depth
        self.row.append(row)
        self.parent.append(parent)
        self.depth.append(depth)
        self.caller.append(caller)
        self.edge.append(edge)


class CallPopulation(Population):
    """The calls of one edge (caller workload -> Service port): no arrivals of its own;
    a slot per caller pod, added when that pod first calls (pods come and go)."""

    def __init__(self, index: int, edge: int, spec: ClientSpec, service_port: int,
                 log: RequestLog, cluster: Cluster, records: CallRecords,
                 retry_rng: np.random.Generator | None) -> None:
        node = cluster.nodes[0]
        addresses = Addresses(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                              node.index)
        super().__init__(index, spec, 0, FixedEntry(node.index), service_port,
                         lambda: 0.0, 0, addresses, log, retry_rng)
        self.edge = edge
        self.cluster = cluster
        self.records = records
        self.n_ips = 0
        self.notify = True  # the caller waits for every end
        self.active = False  # sends only for its callers: never keeps a run going
        self.client_ips = []  # type: ignore[assignment]  # grows with the slots
        self.slot_of: dict[int, int] = {}  # caller pod -> slot
        self.slot_pod: list[int] = []
        self.slot_home: list[int] = []  # per slot: the caller pod's node
        self.waiting: dict[int, Job] = {}  # a call's first row -> the job waiting for it
        self.fails = False  # a failed call fails the request (``onFailure: fail``)

    def start(self, env: simpy.Environment, send: SendFn) -> None:
        self._wire(env, send)

    def stop(self) -> None:
        """The run is over: also let go of the jobs still waiting for a call (a job
        holds its plan, whose steps hold this population: a cycle that kept the run's
        request log until the cyclic collector came)."""
        super().stop()
        self.waiting.clear()

    def slot(self, pod: int) -> int:
        slot = self.slot_of.get(pod)
        if slot is None:
            slot = self.slot_of[pod] = len(self.slot_pod)
            self.slot_pod.append(pod)
            self.slot_home.append(self.cluster.pods[pod].node)
            ip = self.cluster.pods[pod].ip
            self.client_ips.append(ip)  # type: ignore[attr-defined]
            self.wire_ips.append(ip)
            self.n_ips += 1
            for column, value in ((self.remaining, 0), (self.conn_id, 0),
                                  (self.conn_entry, 0), (self.conn_pod, -1),
                                  (self.conn_pod_node, -1), (self.conn_snat, True)):
                column.append(value)
        return slot

    def call(self, job: Job, now: float) -> None:
        """The job's pod calls the edge's Service for the job's request; the job
        resumes when the caller sees the call's end (after any retries)."""
        pod = job.server.index
        slot = self.slot_of.get(pod)
        if slot is None:  # the pod's first call on this edge
            slot = self.slot(pod)
        self.home = self.slot_home[slot]  # the caller's node: its kube-proxy
        row = len(self.log.t_start)
        self.waiting[row] = job
        self.records.add(row, job.request, job.depth, pod, self.edge)
        self.send(self, slot, now)

    def _resend(self, event: simpy.Event) -> None:
        slot, previous, _ = event.value
        pod = self.slot_pod[slot]
        self.home = self.slot_home[slot]
        row = len(self.log.t_start)
        job = self.waiting[self._first(previous)]  # still waiting: the call is retried
        super()._resend(event)
        if len(self.log.t_start) > row:  # a retry row: part of the same call
            self.records.add(row, job.request, job.depth, pod, self.edge)

    def _first(self, row: int) -> int:
        while row in self.retry_of:
            row = self.retry_of[row]
        return row

    def done(self, request: int, slot: int, t_end: float) -> None:
        if not self._plain and self.ended(request, slot, t_end):
            return  # retried, or a late answer the caller stopped waiting for
        job = self._job_of(request)
        if job is None:
            return
        if self.fails and self.log.outcome[request] != COMPLETED:
            job.failed = True  # read once the job's last pending call is back
        now = self.env._now
        self._resume_at(job, now + max(t_end - now, 0.0))

    def answered(self, request: int, finish: float, t_end: float) -> bool:
        """:meth:`done` for a call a quiet callee (npsim/sim/quiet_callee.py) serves to
        its end at ``finish`` as it arrives: the caller resumes at the time it would
        have after the end-of-service event. False, and nothing done, when the call's
        timeout comes first: the timeout's event, armed when the call was sent, fails
        the call (``Population._give_up``) as it would before that end of service (an
        end at the same instant comes after it: its event was queued later), and the
        answer coming later would change nothing (``Population.ended``). A completed
        call is never retried, so ``ended`` has nothing else to do here."""
        timeout = self.request_timeout
        if timeout is not None and finish >= self.log.t_start[request] + timeout:
            return False
        job = self._job_of(request)
        if job is not None:
            self._resume_at(job, finish + max(t_end - finish, 0.0))
        return True

    def _job_of(self, request: int) -> Job | None:
        """The job waiting for the call ``request`` is (a retry: for its first row)."""
        return self.waiting.pop(self._first(request) if self.retry_of else request, None)

    def _resume_at(self, job: Job, at: float) -> None:
        """The job's caller sees a call end at ``at``: call_later(env, at - now,
        _RESUME, job), inline."""
        call = Call()
        call.callbacks = _RESUME
        call._value = job
        heappush(self._heap, (at, NORMAL, next(self._ids), call))


#: a call of a step: its edge, its spec, its count (a fixed one, or a sampler) and its
#: coin (None when the call is always made: no draw, and no Python call per request)
Branch = tuple["CallPopulation", CallSpec, "int | Callable[[], int]",
               "Callable[[], float] | None"]


class Step:
    """One step of a plan: its calls, as branches."""

    def __init__(self, branches: list[Branch], parallel: bool) -> None:
        self.branches = branches
        self.parallel = parallel


class Job:
    """A request being served by a calling pod, while its calls go on."""

    __slots__ = ("plan", "server", "request", "depth", "step", "pending", "failed", "left")

    def __init__(self, plan: CallPlan, server: PodServer, request: int, depth: int) -> None:
        self.plan = plan
        self.server = server
        self.request = request
        self.depth = depth  # of the calls it makes (1: made for a client's request)
        self.step = 0
        self.pending = 0
        self.failed = False
        self.left = 0  # calls still to make one after another (a sequential count)


class CallPlan:
    """A workload's ``calls:`` made into steps over the call populations."""

    def __init__(self, steps: list[Step], blocking: bool,
                 env: simpy.Environment, records: CallRecords | None = None) -> None:
        self.steps = steps
        self.blocking = blocking
        self.env = env
        self.records = records

    def begin(self, server: PodServer, request: int) -> None:
        """The pod's own work for ``request`` is done: make its calls."""
        depth = self.records.depth_of.get(request, 0) + 1 if self.records is not None else 1
        self._next(Job(self, server, request, depth))

    def _next(self, job: Job) -> None:
        now = self.env._now
        while job.step < len(self.steps):
            step = self.steps[job.step]
            if step.parallel:  # every branch, and all of a branch's count, at once: a
                job.step += 1  # fan-out over items (README "Pods that call Services")
                for pop, spec, count, coin in step.branches:
                    if coin is None or coin() < spec.probability:
                        for _ in range(count if type(count) is int else count()):
                            job.pending += 1
                            pop.call(job, now)
                if job.pending:
                    return
                continue
            pop, spec, count, coin = step.branches[0]
            if job.left == 0:
                if coin is None or coin() < spec.probability:
                    job.left = count if type(count) is int else count()
                if job.left == 0:
                    job.step += 1
                    continue
            job.left -= 1
            if job.left == 0:
                job.step += 1
            job.pending = 1
            pop.call(job, now)
            return
        job.server.calls_ended(job.request, True)  # type: ignore[attr-defined]


def _resume(event: Call) -> None:
    """The caller sees one of its job's calls end (CallPopulation.done scheduled it)."""
    job = event._value
    job.pending -= 1
    if job.pending:
        return
    if job.failed:  # the handler returns an error: no further calls
        job.server.calls_ended(job.request, False)
    else:
        job.plan._next(job)


_RESUME = (_resume,)  # the callbacks of every resumption: one tuple, shared


class Calling:
    """Mixed in front of a pod server class: after its own work, the request's calls."""

    __slots__ = ()

    def _finish(self, event: simpy.Event) -> None:
        plan = self.plan  # type: ignore[attr-defined]
        if not plan.blocking:  # an async server: the worker takes the next request
            self._release()
        plan.begin(self, event._value)

    def _release(self) -> None:
        if self.queue:  # type: ignore[attr-defined]
            self._start(self.queue.popleft())  # type: ignore[attr-defined]
        else:
            self.free += 1  # type: ignore[attr-defined]

    def calls_ended(self, request: int, ok: bool) -> None:
        """The request's calls are over: it is answered (or failed, when a call failed
        with ``onFailure: fail``); a blocking worker is freed now."""
        plan = self.plan  # type: ignore[attr-defined]
        if plan.blocking:  # self._release(), inline
            if self.queue:  # type: ignore[attr-defined]
                self._start(self.queue.popleft())  # type: ignore[attr-defined]
            else:
                self.free += 1  # type: ignore[attr-defined]
            if plan.records is not None:  # the worker was held until now
                plan.records.freed_row.append(request)
                plan.records.freed_at.append(self.env._now)  # type: ignore[attr-defined]
        gone = not (self.alive or self.serves_existing or self.hung)  # type: ignore[attr-defined]
        if ok or gone:  # a dead process's state turns the request away itself
            self.served(request)  # type: ignore[attr-defined]
            return
        log = self.log  # type: ignore[attr-defined]
        log.outcome[request] = FAILED
        log.reason[request] = DOWNSTREAM_FAILED
        end = self.env._now + log.network[request] * 0.5  # type: ignore[attr-defined]
        log.t_end[request] = end
        if self.on_done is not None:  # type: ignore[attr-defined]
            self.on_done(request, end)  # type: ignore[attr-defined]


_CLASSES: dict[type, type] = {}


def calling_class(base: type) -> type:
    """``base`` (a PodServer class) whose requests make calls after the pod's own work."""
    made = _CLASSES.get(base)
    if made is None:
        made = _CLASSES[base] = type(f"Calling{base.__name__}", (Calling, base),
                                     {"__slots__": ("plan",)})
    return made


def _count(spec: CallSpec, rng: np.random.Generator) -> int | Callable[[], int]:
    if isinstance(spec.count, int):
        return spec.count
    count = spec.count
    if count.dist == "poisson":
        draw = batched(lambda k: rng.poisson(count.mean, k))  # type: ignore[arg-type]
    else:
        draw = batched(lambda k: rng.integers(count.low, count.high + 1, k))  # type: ignore[operator]
    return lambda: int(draw())


def _shorter(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def edge_client(base: str, pops: list[CallPopulation], call: CallSpec, source_node: str,
                **target: Any) -> ClientSpec:
    """A call edge's client spec: its population name (``base``; ``base#2``, ``#3``...
    for more edges of one caller to the same callee, whose timeouts may differ), the
    caller's connections and deadlines; ``target`` adds where the call goes."""
    same = sum(1 for p in pops if p.name == base or p.name.startswith(base + "#"))
    return ClientSpec(
        name=f"{base}#{same + 1}" if same else base, port=call.port,
        source=SourceSpec(pod=source_node), arrival=ArrivalSpec(rate=1.0),
        requests_per_connection=call.requests_per_connection,
        # a deadline covers connecting too (gRPC): the shorter one holds
        connect_timeout=_shorter(call.connect_timeout, call.timeout),
        request_timeout=call.timeout, retries=call.retries, **target)


# makes the population of a call to a NodePort, an external address or outside the
# cluster (npsim/sim/call_targets.py): (index, edge, workload, call, edges so far, where)
EdgeMaker = Callable[[int, int, str, CallSpec, list[CallPopulation], str], CallPopulation]


def make_plans(scenario: Scenario, cluster: Cluster, env: simpy.Environment,
               log: RequestLog, streams: Streams, first_index: int,
               records: CallRecords, addressed: EdgeMaker | None = None,
               ) -> tuple[dict[str, CallPlan], list[CallPopulation]]:
    """Each calling workload's plan, and the call populations (indexes from
    ``first_index``, after the scenario's clients); ``addressed`` makes the edges
    whose call is not to a ClusterIP."""
    plans: dict[str, CallPlan] = {}
    pops: list[CallPopulation] = []
    records.services = [c.service for c in scenario.spec.clients]
    node0 = cluster.nodes[0].name
    for workload, spec in scenario.spec.workloads.items():
        if spec is None or not spec.calls:
            continue
        steps: list[Step] = []
        for i, step in enumerate(spec.calls):
            calls = step.parallel if isinstance(step, ParallelSpec) else [step]
            branches = []
            for j, call in enumerate(calls):
                where = f"calls/{workload}/{i}/{j}"
                if addressed is not None and (call.external is not None
                                              or call.target != "clusterIP"):
                    pop = addressed(first_index + len(pops), len(pops), workload, call,
                                    pops, where)
                else:
                    sp = cluster.service_port_for(call.service, call.port)  # type: ignore[arg-type]
                    client = edge_client(
                        f"{workload}>{call.service}:{sp.port.name or sp.port.port}", pops,
                        call, node0, service=call.service, target="clusterIP")
                    pop = CallPopulation(first_index + len(pops), len(pops), client, sp.index,
                                         log, cluster, records,
                                         streams.generator(f"{where}/retry")
                                         if call.retries is not None else None)
                pops.append(pop)
                records.services.append(call.callee)
                rng = streams.generator(where)
                coin = batched(rng.random) if call.probability < 1 else None
                pop.fails = call.on_failure == "fail"
                branches.append((pop, call, _count(call, rng), coin))
            steps.append(Step(branches, isinstance(step, ParallelSpec)))
        plans[workload] = CallPlan(steps, spec.blocking, env, records)
        if spec.blocking:
            records.holding.add(workload)
    records.nesting = {pop.edge for pop in pops if _reaches_callers(scenario, cluster, pop,
                                                                    plans)}
    return plans, pops


def _reaches_callers(scenario: Scenario, cluster: Cluster, pop: CallPopulation,
                     callers: dict[str, CallPlan]) -> bool:
    """Whether a pod behind the edge's Service may make calls itself, now or after a
    scale or rollout (a Deployment's pods carry its template's labels): then the
    depth of the edge's rows is kept for the calls they make."""
    if pop.service_port < 0:  # outside the cluster
        return False
    service = cluster.service_ports[pop.service_port].service
    if service.endpoint_slices:  # hand-made endpoints may name any pod
        return bool(callers)
    return any(d.namespace == service.namespace
               and selector_matches(service.selector, d.pod_labels)
               for name, d in scenario.deployments.items() if name in callers)
