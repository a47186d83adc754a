"""Checks before a run: will it fit this machine, and will the cluster it builds work?

:func:`preflight` is what ``npsim validate`` and :func:`npsim.run` call after loading, so
``validate`` rejects everything ``run`` would, and a run never starts that would hang,
exhaust memory or stop half-way:

* an estimate of the requests, pods, nodes, Service ports and memory a run needs, refused
  over a limit (defaults sized to this machine; raise them with ``--max-requests``,
  ``--max-memory`` or ``run.limits``), with what was estimated and how to raise it;
* addresses: node addresses unique, pod CIDRs disjoint, and room in each node's pod CIDR
  for every pod it will ever hold: scale events replayed with the cluster model's own
  placement, rollouts and evictions' replacements bounded from above
  (:mod:`npsim.cluster.pod_room`), so a run that passes never runs out of addresses;
* pods ``placement: scheduler`` can place nowhere: a warning, as they stay Pending.

The node, pod and Service defaults follow the Kubernetes scalability envelope
("Considerations for large clusters", kubernetes.io/docs/setup/best-practices/cluster-large:
at most 5,000 nodes and 150,000 pods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from npsim.scenario.call_checks import rows_per_request
from npsim.scenario.faultplan import FaultPlan, Rollout, Scale
from npsim.scenario.limits import (
    MAX_NODES,
    MAX_PODS,
    MAX_REQUESTS,
    MAX_SERVICES,
    Limits,
    default_max_memory,
)
from npsim.scenario.objects import SelectorIndex
from npsim.scenario.problems import Problems
from npsim.scenario.series import MIN_DEFAULT_BUCKETS, bucket_is_set, series_bucket
from npsim.units import format_duration, format_size

if TYPE_CHECKING:
    from npsim.scenario.scenario import Scenario

BASE_MEMORY = 300 << 20  # the interpreter with numpy, pandas and pyarrow loaded
# measured (benchmarks/bench_scale.py, RESULTS.md "Memory per request"): a finished
# replication keeps about 107 B/request (its frame over the log's columns); the one
# running peaks at about 139 B/request while its frame is built, i.e. about 32 B more
BYTES_PER_REQUEST_RUNNING = 40
BYTES_PER_REQUEST_KEPT = 110
BYTES_PER_POD = 7_000  # 1000 nodes, 100,000 pods, 20,000 requests: 1.17 GB peak RSS
BYTES_PER_NODE = 6_000
BYTES_PER_NODE_SERVICE = 700  # each node's kube-proxy view of each Service port
BYTES_PER_ENDPOINT = 120  # endpoint objects and shared per-table columns
# a row of pod_timeseries (replication, time, pod code, load) and of node_timeseries
# (the same with ready_endpoints and a balancer view): every pod and node has a row per
# time bucket, however few requests there are (10,000 pods over an hour of 1 s buckets
# are 36M rows, about 800 MB)
BYTES_PER_POD_BUCKET = 22
BYTES_PER_NODE_BUCKET = 30
# and the replication-wide columns of a bucket (time, sent, completed, failures by
# reason, p50/p99): a 1 ns bucket over 2 s is 2,000,000,000 of them (measured: 2M
# buckets of 3 nodes and 4 pods, 717 MB over 1 s buckets, 358 B a bucket, 180 of them
# besides the pods' and nodes' rows)
BYTES_PER_BUCKET = 200
# per-pod state that grows with a count in the scenario: a pod's c workers are a heap of
# c "next free" times (a list slot and a float each)
BYTES_PER_WORKER = 32
# and a population's per-client state: a slot per user (closed loop) or source address
# (six lists of connection state, the address arrays, the DNS cache, their numbers)
BYTES_PER_CLIENT_SLOT = 160


@dataclass(frozen=True)
class Estimate:
    """What a run of a scenario will need, from the scenario alone."""

    requests_per_replication: float
    replications: int
    pods: int  # ever created (scale-ups included)
    nodes: int
    service_ports: int
    endpoints: int
    memory: float  # bytes, peak
    # periodic work besides requests, per replication: (count, key path, what) of the
    # largest source (alert evaluations, blackbox probes, a balancer's health checks)
    timers: tuple[float, list[Any], str] = (0.0, [], "")
    series_rows: float = 0.0  # time-series buckets per replication
    # retries at most, per replication, and the key of the population sending most
    retries: tuple[float, list[Any]] = (0.0, [])
    client_slots: int = 0  # users or source addresses, every population together

    @property
    def requests(self) -> float:
        return self.requests_per_replication * self.replications


def _service_floor(scenario: Scenario, index: SelectorIndex, service: str) -> float:
    """The shortest mean service time among the pods a Service selects (0 if none)."""
    svc = scenario.services.get(service)
    if svc is None:
        return 0.0
    means = [scenario.spec.workloads[d.name].service_time.mean
             for d in index.selected(svc.selector)
             if d.replicas > 0 and d.name in scenario.spec.workloads]
    return min(means, default=0.0)


def estimate_requests(scenario: Scenario) -> float:
    """Requests one replication generates: the budget, or the expected count over the
    duration (open loop: the rate schedule's integral; closed loop: users over the
    shortest possible cycle, think + round trip + service, so an upper bound). First
    attempts only: :func:`estimate_retries` bounds what retries add."""
    run = scenario.spec.run
    if run.requests is not None:
        return float(run.requests)
    return sum(_first_attempts(scenario))


def _call_factor(scenario: Scenario) -> float:
    """Request-log rows per client request when pods call Services (1 otherwise):
    each population's expected call tree, weighted by its share of first attempts."""
    spec = scenario.spec
    if not any(w is not None and w.calls for w in spec.workloads.values()):
        return 1.0
    firsts = _first_attempts(scenario) if spec.run.requests is None else []
    if not firsts or not all(math.isfinite(f) for f in firsts) or sum(firsts) <= 0:
        firsts = [1.0] * len(spec.clients)
    factors = [rows_per_request(scenario, c.service) for c in spec.clients]
    return sum(w * f for w, f in zip(firsts, factors, strict=True)) / sum(firsts)


def _first_attempts(scenario: Scenario) -> list[float]:
    """Each population's expected first attempts over the run's duration."""
    duration = float(scenario.spec.run.duration or 0.0)
    out = []
    index = SelectorIndex(scenario.deployments.values())  # no Services x Deployments loop
    for client in scenario.spec.clients:
        arrival = client.arrival
        total = 0.0
        if arrival.closed:
            think = arrival.think_time.mean if arrival.think_time is not None else 0.0
            cycle = think + client.rtt.mean + _service_floor(scenario, index, client.service)
            out.append(math.inf if cycle <= 0 else (arrival.users or 0) * duration / cycle)
            continue
        steps = arrival.steps()
        for i, (at, rate) in enumerate(steps):
            end = steps[i + 1][0] if i + 1 < len(steps) else duration
            total += rate * max(0.0, min(end, duration) - min(at, duration))
        out.append(total)
    return out


def estimate_retries(scenario: Scenario, length: float) -> tuple[float, list[Any]]:
    """The most retries one replication can send (every attempt failing), and the key of
    the population that sends most of them. Each is a request of its own, simulated one by
    one: a billion retries with no back-off ran without end. A retry budget bounds them
    (Finagle's RetryBudget: ``minPerSecond`` x window + ``ratio`` x first attempts in any
    window); a request budget (``run.requests``) counts retries among its requests."""
    if scenario.spec.run.requests is not None:
        return (0.0, [])
    total, worst, where = 0.0, 0.0, []
    for i, (client, firsts) in enumerate(zip(scenario.spec.clients,
                                             _first_attempts(scenario), strict=True)):
        retries, balancer = client.retries, client.balancer
        if retries is not None:
            count = firsts * retries.attempts
            budget = retries.budget
            if budget is not None:
                count = min(count, budget.ratio * firsts
                            + budget.min_per_second * (length + budget.window))
            key: list[Any] = ["clients", i, "retries", "attempts"]
        elif balancer is not None and balancer.next_upstream:
            count = firsts * balancer.next_upstream
            key = ["clients", i, "balancer", "nextUpstream"]
        else:
            continue
        total += count
        if count > worst or not where:
            worst, where = count, key
    return (total, where)


def run_length(scenario: Scenario, requests_per_replication: float) -> float:
    """Simulated seconds of one replication: the duration, or for a request budget the
    budget over the clients' rate (open loop: the first rate; closed loop: the users
    over their shortest cycle, think time and round trip)."""
    run = scenario.spec.run
    if run.duration:
        return float(run.duration)
    rate = 0.0
    for client in scenario.spec.clients:
        arrival = client.arrival
        if arrival.closed:
            think = arrival.think_time.mean if arrival.think_time is not None else 0.0
            cycle = think + client.rtt.mean
            rate += (arrival.users or 0) / cycle if cycle > 0 else math.inf
        else:
            rate += arrival.steps()[0][1]
    return requests_per_replication / rate if 0 < rate < math.inf else 0.0


def estimate_buckets(scenario: Scenario, requests_per_replication: float) -> float:
    """Time buckets of one replication's time series: the run's length over
    ``run.timeseriesBucket``; without that key a run under a minute has at most 60
    and one over an hour at most 3600 (``npsim.scenario.series``)."""
    run = scenario.spec.run
    length = run_length(scenario, requests_per_replication)
    if not bucket_is_set(run) and length < MIN_DEFAULT_BUCKETS:
        return float(MIN_DEFAULT_BUCKETS)
    return float(max(math.ceil(length / series_bucket(run, length)), 1))


def _timers(scenario: Scenario, length: float) -> tuple[float, list[Any], str]:
    """Periodic events of a replication besides requests, and the key of the largest
    source: each is simulated one by one, so a 1 ns interval hangs a run as surely as
    a billion requests."""
    spec = scenario.spec
    nodes = len(spec.cluster.nodes)
    sources: list[tuple[float, list[Any], str]] = []
    monitoring = spec.monitoring
    if monitoring is not None:
        rules = max(len(monitoring.alerts), 1)
        sources.append((length / monitoring.evaluation_interval * rules,
                        ["monitoring", "evaluationInterval"], "alert rule evaluations"))
        for i, alert in enumerate(monitoring.alerts):
            if alert.probe is not None:
                sources.append((length / alert.probe.interval * nodes,
                                ["monitoring", "alerts", i, "probe", "interval"],
                                "blackbox probes"))
    for i, client in enumerate(spec.clients):
        check = client.balancer.health_check if client.balancer is not None else None
        if check is not None:
            sources.append((length / check.interval * nodes,
                            ["clients", i, "balancer", "healthCheck", "interval"],
                            "balancer health checks"))
    total = sum(count for count, _, _ in sources)
    if not sources:
        return (0.0, [], "")
    _, where, what = max(sources, key=lambda source: source[0])
    return (total, where, what)


def _pods_ever(scenario: Scenario) -> dict[str, int]:
    """Pods each Deployment creates over a run: the replicas, plus every scale-up
    (addresses are not reused, so a scale-down and up again takes new ones) and a new pod
    for each one a rolling update replaces."""
    current = {name: dep.replicas for name, dep in scenario.deployments.items()}
    ever = dict(current)
    for event in sorted(FaultPlan.of(scenario.spec.events), key=lambda e: e.at):
        if isinstance(event, Rollout) and event.deployment in current:
            ever[event.deployment] += current[event.deployment]
        if not isinstance(event, Scale):  # faults and other events
            continue
        name = event.deployment
        if name in current:
            ever[name] += max(0, event.replicas - current[name])
            current[name] = event.replicas
    return ever


def _state_bytes(scenario: Scenario, ever: dict[str, int]) -> float:
    """Memory of state kept per worker (each pod's heap of worker times) and per client
    (a billion sourceIPs or users allocate before the first request is sent)."""
    workloads = scenario.spec.workloads
    workers = sum(count * workloads[name].workers * BYTES_PER_WORKER
                  for name, count in ever.items() if name in workloads)
    return float(workers + _client_slots(scenario) * BYTES_PER_CLIENT_SLOT)


def _client_slots(scenario: Scenario) -> int:
    return sum(max(c.arrival.users or 0, c.n_source_ips) for c in scenario.spec.clients)


def estimate(scenario: Scenario, replications: int | None = None) -> Estimate:
    """What a run of ``replications`` replications (default ``run.replications``) needs."""
    spec = scenario.spec
    per_rep = estimate_requests(scenario)
    reps = spec.run.replications if replications is None else replications
    nodes = len(spec.cluster.nodes)
    ever = _pods_ever(scenario)
    pods = sum(ever.values())
    length = run_length(scenario, per_rep)
    per_rep *= _call_factor(scenario)  # pods' calls are rows too (workloads' calls:)
    retries = estimate_retries(scenario, length)
    sends = per_rep + retries[0]  # every attempt is a row
    ports = sum(len(s.ports) for s in scenario.services.values())
    endpoints = 0
    index = SelectorIndex(scenario.deployments.values())
    for svc in scenario.services.values():
        selected = sum(d.replicas for d in index.selected(svc.selector))
        endpoints += selected * len(svc.ports)
    versions = 1 + len(spec.events)  # each endpoint change is kept as a version
    buckets = estimate_buckets(scenario, per_rep)
    series = buckets * reps * (BYTES_PER_BUCKET + pods * BYTES_PER_POD_BUCKET
                               + nodes * BYTES_PER_NODE_BUCKET)
    memory = (BASE_MEMORY + sends * BYTES_PER_REQUEST_RUNNING
              + sends * reps * BYTES_PER_REQUEST_KEPT + pods * BYTES_PER_POD
              + nodes * BYTES_PER_NODE + nodes * ports * BYTES_PER_NODE_SERVICE
              + endpoints * versions * BYTES_PER_ENDPOINT + series
              + _state_bytes(scenario, ever))
    return Estimate(per_rep, reps, pods, nodes, ports, endpoints, memory,
                    _timers(scenario, length), buckets, retries, _client_slots(scenario))


def limits_for(scenario: Scenario, max_requests: int | None = None,
               max_memory: int | None = None) -> Limits:
    """The limits that apply: arguments (CLI flags) over ``run.limits`` over defaults."""
    given = scenario.spec.run.limits
    return Limits(
        max_requests=max_requests or given.max_requests or MAX_REQUESTS,
        max_memory=max_memory or given.max_memory or default_max_memory(),
        max_nodes=given.max_nodes or MAX_NODES,
        max_pods=given.max_pods or MAX_PODS,
        max_services=given.max_services or MAX_SERVICES,
    )


def _fmt(count: float) -> str:
    """A count as a reader takes it in: never 300 digits (a 1e300/s rate step)."""
    if math.isinf(count):
        return "infinitely many"
    return f"{count:,.0f}" if count < 1e15 else f"{count:.3g}"


def check_limits(scenario: Scenario, p: Problems, max_requests: int | None = None,
                 max_memory: int | None = None, replications: int | None = None) -> Estimate:
    """Report every estimate over its limit as a problem at the key that drives it.
    ``replications``: how many run (default ``run.replications``; ``npsim.run`` may be
    given its own list)."""
    est = estimate(scenario, replications)
    lim = limits_for(scenario, max_requests, max_memory)
    tree = scenario.marks
    run = scenario.spec.run
    reps = est.replications
    if est.requests > lim.max_requests:
        if run.requests is not None:
            how = f"requests: {run.requests:,} x {reps} replication(s)"
        elif math.isinf(est.requests_per_replication):
            how = ("a closed loop whose users think, travel and are served in no time "
                   "sends without end: give thinkTime, rtt or serviceTime a positive mean")
        else:
            how = (f"about {_fmt(est.requests_per_replication)} per replication over "
                   f"{format_duration(float(run.duration or 0))} x {reps} "
                   "replication(s)")
        where = ["run", "requests" if run.requests is not None else "duration"]
        p.at(tree, where,
             f"the run would generate {_fmt(est.requests)} requests ({how}), more than the "
             f"limit of {lim.max_requests:,}; shorten the run, lower the rate, or raise the "
             "limit with --max-requests N or run.limits.maxRequests")
    retries, retry_key = est.retries
    if est.requests <= lim.max_requests and (est.requests_per_replication
                                             + retries) * reps > lim.max_requests:
        p.at(tree, retry_key,
             f"the run could send {_fmt((est.requests_per_replication + retries) * reps)} "
             f"requests counting retries (about {_fmt(est.requests)} first attempts, each "
             "retried when it fails), more than the limit of "
             f"{lim.max_requests:,}; retry fewer times, add a retry budget "
             "(retries.budget), or raise the limit with --max-requests N or "
             "run.limits.maxRequests")
    timers, timer_key, timer_what = est.timers
    if timers * reps > lim.max_requests:
        p.at(tree, timer_key,
             f"the run would simulate {_fmt(timers * reps)} periodic events "
             f"besides requests (mostly {timer_what}, over "
             f"{format_duration(run_length(scenario, est.requests_per_replication))} x "
             f"{reps} replication(s)), more than the limit of "
             f"{lim.max_requests:,}; use a longer interval, or raise the limit with "
             "--max-requests N or run.limits.maxRequests")
    other = scenario.spec.cluster.other_services
    for count, limit, what, key, where in (
        (est.nodes, lim.max_nodes, "nodes", "maxNodes", ["cluster", "nodes"]),
        (est.pods, lim.max_pods, "pods (scale-ups included)", "maxPods", ["workloads"]),
        (est.service_ports, lim.max_services, "Service ports", "maxServices", ["manifests"]),
        # Services whose rules cost but whose traffic is not simulated (a billion of them
        # were taken): the same envelope as the simulated ones
        (other.count, lim.max_services, "other Services (cluster.otherServices.count)",
         "maxServices", ["cluster", "otherServices", "count"]),
    ):
        if count > limit:
            p.at(tree, where, f"the scenario has {count:,} {what}, more than the limit of "
                 f"{limit:,}; raise it with run.limits.{key}")
    if est.memory > lim.max_memory and not math.isinf(est.requests):
        series = (f", {_fmt(est.series_rows)} time-series rows per replication (a longer "
                  "run.timeseriesBucket makes fewer)" if est.series_rows > 100_000 else "")
        if est.client_slots > 1_000_000:
            series += f", {est.client_slots:,} client users or sourceIPs"
        p.at(tree, ["run"],
             f"the run would need about {format_size(est.memory)} of memory "
             f"({_fmt(est.requests)} requests, {est.pods:,} pods, {est.nodes:,} nodes, "
             f"{est.service_ports:,} Service ports{series}), more than the limit of "
             f"{format_size(lim.max_memory)}; make the run smaller, or raise the limit "
             "with --max-memory SIZE or run.limits.maxMemory (e.g. 16GiB)")
    return est


def check_addresses(scenario: Scenario, p: Problems) -> None:
    """Node addresses unique, pod CIDRs disjoint, and room for every pod ever placed;
    a warning (added to the scenario's) for pods the scheduler places on no node.

    Runs only when the sizes are within limits (it builds the cluster)."""
    from npsim.cluster.model import address_problems
    from npsim.cluster.placement import pending_problems

    for loc, message in address_problems(scenario):
        p.at(scenario.marks, loc, message)
    for loc, message in pending_problems(scenario):
        warning = Problems.problem(scenario.marks, loc, message)
        if warning not in scenario.warnings:
            scenario.warnings.append(warning)


def preflight(scenario: Scenario, max_requests: int | None = None,
              max_memory: int | None = None, replications: int | None = None,
              until: float | None = None) -> Estimate:
    """Every check a run needs before it starts; raises ScenarioError with all problems.
    Every command that simulates calls it (``run``, ``sweep``, ``plan``, ``explain --at``,
    :func:`npsim.run`), so each refuses what ``validate`` refuses, under the same limits.
    ``replications``: how many run, when not ``run.replications``; ``until``: the run
    stops at this time (``explain --at``), not at its end."""
    p = Problems()
    est = check_limits(_until(scenario, until), p, max_requests, max_memory, replications)
    if not p.errors:
        check_addresses(scenario, p)
    p.raise_if_any()
    return est


def _until(scenario: Scenario, until: float | None) -> Scenario:
    """The scenario as far as a run stopped at ``until`` goes (for its estimate only)."""
    run = scenario.spec.run
    if until is None or run.duration is None or until >= run.duration:
        return scenario
    view = object.__new__(type(scenario))
    view.__dict__.update(scenario.__dict__)
    view.__dict__["spec"] = scenario.spec.model_copy(
        update={"run": run.model_copy(update={"duration": until})})
    return view


def preflight_variants(variants: list[Any], max_requests: int | None = None,
                       max_memory: int | None = None) -> None:
    """:func:`preflight` of every variant of a sweep (``npsim.sweep.variants.expand``):
    each runs as a scenario of its own, so each must pass; problems name the variant, and
    one with a key the variant changes points at the line where the variant changes it."""
    from npsim.scenario.changes import under
    from npsim.scenario.problems import Problem, ScenarioError

    problems = []
    for variant in variants:
        try:
            preflight(variant.scenario, max_requests, max_memory)
        except ScenarioError as exc:
            marks = variant.scenario.change_marks
            problems += [Problem(next((m for path, m in marks.items() if under(p.path, path)),
                                      p.mark), f"variants: {variant.name}: {p.path}", p.message)
                         for p in exc.problems]
    if problems:
        raise ScenarioError(problems)


def describe(est: Estimate) -> dict[str, Any]:
    """The estimate as plain numbers (``npsim validate`` prints it)."""
    return {"requests": est.requests, "pods": est.pods, "nodes": est.nodes,
            "service_ports": est.service_ports, "memory": est.memory}
