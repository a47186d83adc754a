"""Client populations: who sends, when, over which connection, to which node.

A population owns its clients' connection state. kube-proxy chooses an endpoint only
when a connection is opened; the next ``requestsPerConnection - 1`` requests on it
follow conntrack to the same pod through the same node (only a connection's first packet
traverses the nat table: kube-proxy ``pkg/proxy/iptables/proxier.go``). That is why
keep-alive makes the per-request spread lumpier.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Callable
from heapq import heappush

import numpy as np
import simpy

from npsim.cluster.model import Node
from npsim.dists import Sampler, batched
from npsim.outcomes import (
    COMPLETED,
    CONNECT_TIMEOUT,
    CONNECTION_REFUSED,
    DROPPED,
    FAILED,
    FIREWALL_DROPPED,
    FIREWALL_REJECTED,
    IN_FLIGHT,
    NO_ENDPOINTS,
    NO_UPSTREAM,
    NODEPORT_CLOSED,
    POLICY_DROPPED,
    REASONS,
    REPLY_LOST,
    REQUEST_TIMEOUT,
    SECURITY_GROUP_DROPPED,
)
from npsim.scenario.client_spec import BackoffSpec, ClientSpec, EntrySpec, RetrySpec
from npsim.sim.calls import NORMAL, Call, call_later, event_queue
from npsim.sim.records import RequestLog
from npsim.sim.syn import connect_give_up, syn_send_times  # noqa: F401 - re-exported

SendFn = Callable[["Population", int, float], bool]


# --- how a client reaches a node -------------------------------------------------------


class FixedEntry:
    """Every connection goes to one named node."""

    def __init__(self, node: int) -> None:
        self.node = node

    def __call__(self, client: int, now: float) -> int:
        return self.node


class RandomEntry:
    """A uniformly random node per new connection (an even L4 balancer in front)."""

    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self._next = batched(lambda k: rng.integers(0, n_nodes, k))

    def __call__(self, client: int, now: float) -> int:
        return self._next()


class DnsEntry:
    """DNS round-robin over every node's address; each client caches its answer for a TTL.

    ``order`` is the server's: ``rotate`` answers like a classic round-robin server (the
    list rotates by one per query), ``random`` like CoreDNS ``loadbalance`` (shuffled
    answer). ``client`` is the library's: ``pin`` takes the first address until the
    cache expires; ``rotate`` walks the cached list, one address per new connection;
    ``failover`` keeps an address until a connection through it fails, then takes the
    next one. A client thus pins to one address for about the cache TTL (glibc keeps the
    server's order outside its own subnet: RFC 6724 rule 9; CoreDNS loadbalance docs);
    a dead node's address stays in every cache that holds it until the TTL runs out
    (nothing withdraws an A record when a node dies).
    """

    def __init__(
        self, n_nodes: int, n_clients: int, ttl: float, order: str, rng: np.random.Generator,
        client: str = "pin",
    ) -> None:
        self.n_nodes = n_nodes
        self.ttl = ttl
        self.client = client
        self.cached = [0] * n_clients
        self.expires = [-math.inf] * n_clients
        self.queries = 0
        self._random = batched(lambda k: rng.integers(0, n_nodes, k)) if order == "random" else None
        if client != "pin":  # the rest of each answer: its own stream, pin draws unchanged
            rest = np.random.Generator(np.random.PCG64(rng.bit_generator.seed_seq.spawn(1)[0]))
            self._rest = rest
            self.answer: list[list[int]] = [[] for _ in range(n_clients)]
            self.position = [0] * n_clients
            self.advance_at = [math.inf] * n_clients  # a failure the client will learn of
            self.failed_node = [-1] * n_clients

    def __call__(self, client: int, now: float) -> int:
        if now >= self.expires[client]:
            node = self._random() if self._random is not None else self.queries % self.n_nodes
            self.queries += 1
            self.cached[client] = node
            self.expires[client] = now + self.ttl
            if self.client == "pin":
                return node
            others = [(node + i) % self.n_nodes for i in range(1, self.n_nodes)]
            if self._random is not None:
                others = [others[i] for i in self._rest.permutation(len(others))]
            self.answer[client] = [node, *others]
            self.position[client] = 0
            self.advance_at[client] = math.inf
            return node
        if self.client == "pin":
            return self.cached[client]
        answer = self.answer[client]
        if self.client == "rotate":
            self.position[client] += 1
        elif now >= self.advance_at[client]:
            self.advance_at[client] = math.inf
            if answer[self.position[client] % self.n_nodes] == self.failed_node[client]:
                self.position[client] += 1
        return answer[self.position[client] % self.n_nodes]

    def failed(self, client: int, node: int, learned_at: float) -> None:
        """A connection through ``node`` failed; the client learns it at ``learned_at``."""
        if self.client == "failover":
            self.advance_at[client] = min(self.advance_at[client], learned_at)
            self.failed_node[client] = node


def make_entry(
    entry: EntrySpec, node_index: Callable[[str], int], n_nodes: int, n_clients: int,
    rng: np.random.Generator,
) -> Callable[[int, float], int]:
    # a fixed or random entry as its bound __call__: the engine calls it per new
    # connection, and calling the instance goes through its type's call slot first
    if entry.node is not None:
        return FixedEntry(node_index(entry.node)).__call__
    if entry.dns is not None:  # the instance: clients ask it of failures (DnsEntry.failed)
        return DnsEntry(n_nodes, n_clients, entry.dns.ttl, entry.dns.order, rng,
                        entry.dns.client)
    return RandomEntry(n_nodes, rng).__call__


# --- addresses ------------------------------------------------------------------------

# RFC 6598 shared space for NAT gateways, RFC 5737 TEST-NET-1 for balancers in front
NAT_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
BALANCER_BASE = int(ipaddress.IPv4Address("192.0.2.10"))


class Addresses:
    """Per source address of a population: the client's own address and the address the
    receiving node sees (after NAT gateways or a source-NATing balancer)."""

    def __init__(self, client: np.ndarray, wire: np.ndarray, home: int = -1) -> None:
        self.client = client
        self.wire = wire
        self.home = home  # node index of in-cluster clients

    @classmethod
    def external(cls, spec: ClientSpec, base: int, rng: np.random.Generator | None,
                 population: int = 0) -> Addresses:
        n = spec.n_source_ips
        client = base + np.arange(n, dtype=np.int64)
        wire = client.copy()
        if spec.nat_gateways:
            order = rng.permutation(n) if rng is not None else np.arange(n)
            start = 0
            for g, gateway in enumerate(spec.nat_gateways):
                count = round(gateway.share * n)
                members = order[start:start + count]
                start += count
                first = NAT_BASE + (population << 12) + (g << 8) + 1
                wire[members] = first + np.arange(len(members)) % gateway.addresses
        if spec.balancer is not None and spec.balancer.snat:
            wire = BALANCER_BASE + (population << 8) + np.arange(n) % spec.balancer.addresses
        return cls(client, wire)

    @classmethod
    def in_cluster(cls, spec: ClientSpec, node: Node, taken: int = 0) -> Addresses:
        """Client pods take addresses from the top of their node's pod CIDR, below the
        ``taken`` ones of earlier populations; a node's processes send from its address."""
        n = spec.n_source_ips
        assert spec.source is not None
        if spec.source.kind == "host":
            client = np.full(n, node.ip, dtype=np.int64)
        elif spec.source_ip_base is not None:  # chosen addresses: e.g. the same pods as
            first = int(ipaddress.IPv4Address(spec.source_ip_base))  # another population
            client = first + np.arange(n, dtype=np.int64)
        else:
            top = int(node.pod_cidr.broadcast_address) - 1 - taken
            client = top - np.arange(n, dtype=np.int64)
        return cls(client, client.copy(), node.index)


# --- connecting (the SYN schedule is in npsim/sim/syn.py) ---------------------------

# failures a client sees as "could not connect" (no response to the SYN, or a refusal)
CONNECT_FAILURES = frozenset({CONNECT_TIMEOUT, DROPPED, REPLY_LOST, NO_ENDPOINTS,
                              CONNECTION_REFUSED, NODEPORT_CLOSED, NO_UPSTREAM,
                              FIREWALL_DROPPED, FIREWALL_REJECTED, SECURITY_GROUP_DROPPED,
                              POLICY_DROPPED})


def retry_spec(spec: ClientSpec) -> RetrySpec | None:
    """The client's retries, or the balancer's next-upstream tries (no backoff, only
    after failed connects)."""
    balancer = spec.balancer
    if spec.retries is None and balancer is not None and balancer.next_upstream:
        return RetrySpec(attempts=balancer.next_upstream,
                         backoff=BackoffSpec(base=0.0, jitter="none"),
                         retry_on=[REASONS[code] for code in sorted(CONNECT_FAILURES)])
    return spec.retries


def needs_done(spec: ClientSpec) -> bool:
    """Whether the population must hear of every request's end (not only failures)."""
    balancer = spec.balancer
    return (spec.arrival.closed or retry_spec(spec) is not None
            or spec.request_timeout is not None
            or (balancer is not None and balancer.algorithm == "leastConnections"))


def _growth_stop(base: float, multiplier: float, cap: float) -> int:
    """An exponent k from which base x multiplier^k is at or over the cap (0 when the wait
    never grows): one past the exact answer, so rounding in the logarithms cannot stop
    the growth short of the cap."""
    if base <= 0 or multiplier <= 1 or base >= cap:
        return 0
    return math.ceil((math.log(cap) - math.log(base)) / math.log(multiplier)) + 1


class RetryPolicy:
    """Which failures are retried, after what backoff, within which budget."""

    def __init__(self, spec: RetrySpec, rng: np.random.Generator) -> None:
        self.attempts = spec.attempts
        codes = {name: code for code, name in REASONS.items() if code}
        self.on = (frozenset(codes.values()) if spec.retry_on is None
                   else frozenset(codes[name] for name in spec.retry_on))
        b = spec.backoff
        self.base, self.multiplier, self.cap, self.jitter = b.base, b.multiplier, b.max, b.jitter
        self.top = _growth_stop(b.base, b.multiplier, b.max)
        self._uniform = batched(rng.random)
        budget = spec.budget
        self.budget = budget
        if budget is not None:
            self.firsts: deque[float] = deque()  # first attempts within the window
            self.retries: deque[float] = deque()

    def backoff(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1 for the first retry). The exponent
        stops growing once the wait has reached the cap, so 1,000 retries do not overflow
        a float: Envoy's JitteredExponentialBackOffStrategy sets the next interval to the
        maximum when doubling would pass it or overflow, gRPC's connection backoff takes
        min(backoff x multiplier, max). Waits below the cap are as before."""
        exponent = min(attempt - 1, self.top)
        try:
            grown = self.base * self.multiplier ** exponent
        except OverflowError:  # a base so small that multiplier**exponent alone overflows
            grown = math.exp(math.log(self.base) + exponent * math.log(self.multiplier))
        wait = min(self.cap, grown)
        return wait * self._uniform() if self.jitter == "full" else wait

    def allow(self, now: float) -> bool:
        """Finagle RetryBudget: retries in the window stay within min + ratio x sends."""
        budget = self.budget
        if budget is None:
            return True
        horizon = now - budget.window
        for queue in (self.firsts, self.retries):
            while queue and queue[0] <= horizon:
                queue.popleft()
        allowed = budget.min_per_second * budget.window + budget.ratio * len(self.firsts)
        if len(self.retries) + 1 > allowed:
            return False
        self.retries.append(now)
        return True


# --- populations ------------------------------------------------------------------------


class Population:
    """Connection state shared by open- and closed-loop populations.

    ``send`` is what the arrival process calls. Without schedules, retries, timeouts or
    a balancer it is the engine's own ``send`` (nothing added per request); each of those
    features wraps it only for the populations that use it.
    """

    closed = False

    def __init__(
        self,
        index: int,
        spec: ClientSpec,
        n_slots: int,
        entry: Callable[[int, float], int],
        service_port: int,
        rtt: Sampler,
        ip_base: int,
        addresses: Addresses | None = None,
        log: RequestLog | None = None,
        retry_rng: np.random.Generator | None = None,
        syn_linear: int = 0,
    ) -> None:
        self.index = index
        self.spec = spec
        self.name = spec.name
        self.per_connection = spec.requests_per_connection
        self.entry = entry
        self.service_port = service_port
        self.rtt = rtt
        self.ip_base = ip_base
        self.n_ips = spec.n_source_ips
        self.address = spec.entry.address
        self.syn_retries = spec.syn_retries
        self.syn_linear = syn_linear  # tcp_syn_linear_timeouts of the client's kernel
        self.connect_timeout = connect_give_up(spec.syn_retries, spec.connect_timeout,
                                               syn_linear)
        self.log = log if log is not None else RequestLog()
        # per client slot: requests left on the open connection, its id, node and endpoint
        self.remaining = [0] * n_slots
        self.conn_id = [0] * n_slots
        self.conn_entry = [0] * n_slots
        self.conn_pod = [-1] * n_slots
        self.conn_pod_node = [-1] * n_slots
        self.conn_snat = [True] * n_slots
        # who sends: external, a pod on a node, or a node itself; and to what
        self.kind = spec.source.kind if spec.source is not None else "external"
        self.target = spec.target
        # whether the entry's kube-proxy is asked if its NodePort answers on the address
        # aimed at: off the primary one (not every mode answers there), or anywhere when
        # nodePortAddresses leaves a primary address out (set by sim/build.py)
        self.asks_accepts = spec.target != "clusterIP" and self.address != "primary"
        # in-cluster traffic to an external address is caught by its own node's rules
        self.caught_at_home = spec.target == "clusterIP" or (
            self.kind != "external" and spec.target != "nodePort")
        # wire addresses outside the Service's loadBalancerSourceRanges (None: no check)
        self.blocked: frozenset[int] | None = None
        self.home = addresses.home if addresses is not None else -1
        if addresses is None:
            addresses = Addresses.external(spec, ip_base, None)
        self.client_ips = addresses.client
        self.wire_ips = addresses.wire.tolist()  # what the receiving node sees
        # the client's own behaviour: schedule, timeouts, retries; the balancer in front
        self.notify = needs_done(spec)
        self.balancer = None  # an npsim.sim.balancer.Balancer when one picks the node
        self.start_at = spec.start
        self.stop_at = spec.stop if spec.stop is not None else math.inf
        self.limit = spec.requests
        self.first_sent = 0
        self.active = True  # False once its schedule has ended
        self.request_timeout = spec.request_timeout
        retries = retry_spec(spec)
        self.retry = (RetryPolicy(retries, retry_rng or np.random.default_rng(0))
                      if retries is not None else None)
        self.attempt: dict[int, int] = {}  # request -> attempt number (retries only)
        self.retry_of: dict[int, int] = {}  # request -> the failed request it repeats
        self.timed_out: dict[int, float] = {}  # request -> when the client gave up
        self._balanced: set[int] = set()  # requests counted in the balancer's in-flight

    def start(self, env: simpy.Environment, send: SendFn) -> None:
        raise NotImplementedError

    def _wire(self, env: simpy.Environment, send: SendFn) -> None:
        """Install ``send`` (the engine's, or a wrapper for the features in use)."""
        self.env = env
        self._heap, self._ids = event_queue(env)  # for the next arrival (calls.py)
        self._engine_send = send
        tracked = (self.request_timeout is not None or (
            self.balancer is not None and self.balancer.counts_in_flight))
        self._attempt = self._send_tracked if tracked else send
        limited = (self.start_at > 0 or self.stop_at != math.inf or self.limit is not None
                   or (self.retry is not None and self.retry.budget is not None))
        self.send = self._send_first if limited else self._attempt
        # nothing to do when a request ends: closed loops skip :meth:`ended` entirely
        failover = isinstance(self.entry, DnsEntry) and self.entry.client == "failover"
        self._plain = (self.request_timeout is None and self.balancer is None
                       and self.retry is None and not failover)

    def stop(self) -> None:
        """The run is over: let go of the engine's send (and this population's own
        scheduled callbacks, which hold it), and end the balancer's checks."""
        self.send = self._attempt = self._engine_send = None  # type: ignore[assignment]
        self.__dict__.pop("_arrive", None)
        self.__dict__.pop("_again", None)
        if self.balancer is not None:
            self.balancer.stop()

    def _send_first(self, pop: Population, slot: int, now: float) -> bool:
        """A first attempt, within the population's schedule."""
        if now >= self.stop_at or (self.limit is not None and self.first_sent >= self.limit):
            self.active = False
            return False
        self.first_sent += 1
        if self.retry is not None and self.retry.budget is not None:
            self.retry.firsts.append(now)
        return self._attempt(pop, slot, now)

    def _send_tracked(self, pop: Population, slot: int, now: float) -> bool:
        """Send, then arm the request timeout / count the request at its node."""
        log = self.log
        row = len(log.t_start)
        ok = self._engine_send(pop, slot, now)
        if len(log.t_start) > row and log.outcome[row] == IN_FLIGHT:
            if self.request_timeout is not None:
                self.env.timeout(self.request_timeout, row).callbacks.append(self._give_up)
            if self.balancer is not None and self.balancer.counts_in_flight:
                self._balanced.add(row)
                self.balancer.in_flight[log.entry[row]] += 1
        return ok

    def _give_up(self, event: simpy.Event) -> None:
        """The request timeout ran out with no response: the client fails the request
        and abandons its connection (the pod may still serve it; nobody listens)."""
        row = event.value
        log = self.log
        if log.outcome[row] != IN_FLIGHT:
            return
        now = self.env.now
        log.outcome[row] = FAILED
        log.reason[row] = REQUEST_TIMEOUT
        log.t_end[row] = now
        self.timed_out[row] = now
        slot = log.client[row]
        if self.conn_id[slot] == log.conn[row]:
            self.remaining[slot] = 0
        self.done(row, slot, now)

    def done(self, request: int, slot: int, t_end: float) -> None:
        """The client saw the end of a request (response or failure).

        Called at once for failures found when sending (``t_end`` may lie ahead), and
        when the response comes for populations that asked (:func:`needs_done`).
        """
        self.ended(request, slot, t_end)

    def ended(self, request: int, slot: int, t_end: float) -> bool:
        """Bookkeeping of an end; True when the client sends the request again."""
        if self._plain:
            return False
        log = self.log
        timed_out = self.timed_out.get(request)
        # served after the client gave up; a response at the very instant it gave up
        # comes after the give-up too (which ran first and failed the request)
        if timed_out is not None and (t_end > timed_out or log.outcome[request] == COMPLETED):
            log.outcome[request] = FAILED
            log.reason[request] = REQUEST_TIMEOUT
            log.t_end[request] = timed_out
            return True  # the client is not waiting for it
        if request in self._balanced:
            self._balanced.discard(request)
            self.balancer.in_flight[log.entry[request]] -= 1  # type: ignore[union-attr]
        if log.outcome[request] != FAILED:
            return False
        reason = log.reason[request]
        if reason in CONNECT_FAILURES:
            entry = log.entry[request]
            if self.balancer is not None:
                if entry >= 0:
                    self.balancer.failed(entry, t_end)
            elif isinstance(self.entry, DnsEntry):
                self.entry.failed(slot, entry, t_end)
        retry = self.retry
        if retry is None or reason not in retry.on:
            return False
        attempt = self.attempt.get(request, 0) + 1
        if attempt > retry.attempts or not retry.allow(t_end):
            return False
        wait = t_end - self.env.now + retry.backoff(attempt)
        self.env.timeout(wait, (slot, request, attempt)).callbacks.append(self._resend)
        return True

    def _resend(self, event: simpy.Event) -> None:
        slot, previous, attempt = event.value
        log = self.log
        row = len(log.t_start)  # the row this attempt will get (noted first: a failure
        self.attempt[row] = attempt  # found while sending is handled within the send)
        self.retry_of[row] = previous
        balancer = self.balancer
        if balancer is not None and self.spec.retries is None:  # the balancer's next try
            tried = {log.entry[previous]}  # skips every node this connection tried
            while previous in self.retry_of:
                previous = self.retry_of[previous]
                tried.add(log.entry[previous])
            balancer.avoid = frozenset(tried)
            self._attempt(self, slot, self.env.now)
            balancer.avoid = frozenset()
        else:
            self._attempt(self, slot, self.env.now)
        if len(log.t_start) == row:  # nothing sent (a request-count run is over)
            del self.attempt[row], self.retry_of[row]


class OpenLoop(Population):
    """Poisson arrivals at a piecewise-constant rate, each from a random client IP."""

    def __init__(self, *args, arrivals: np.random.Generator, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.steps = self.spec.arrival.steps()
        self._unit_exp = batched(arrivals.standard_exponential)
        n = self.n_ips
        self._pick = batched(lambda k: arrivals.integers(0, n, k))

    def next_time(self, t: float) -> float:
        """Next arrival after ``t``: a unit exponential spent against the rate schedule
        (exact for piecewise-constant rates, by memorylessness)."""
        mass = self._unit_exp()
        steps = self.steps
        if len(steps) == 1:
            return t + mass / steps[0][1]
        seg = max(i for i, (at, _) in enumerate(steps) if at <= t)
        while True:
            rate = steps[seg][1]
            end = steps[seg + 1][0] if seg + 1 < len(steps) else math.inf
            if rate > 0 and t + mass / rate < end:
                return t + mass / rate
            if end == math.inf:
                return math.inf
            mass -= (end - t) * rate
            t = end
            seg += 1

    def start(self, env: simpy.Environment, send: SendFn) -> None:
        self._wire(env, send)
        if len(self.steps) == 1:  # a constant rate: the short path
            self._rate = self.steps[0][1]
            self._again = (self._arrive_constant,)
            first = self.next_time(self.start_at)
            call_later(env, first - env._now, self._again)
        else:
            self._schedule(self.start_at)

    def _arrive_constant(self, event: Call) -> None:
        """Arrivals at a constant rate, each at ``now + gap`` as ``env.timeout(gap)``
        would queue it. While nothing else is queued before the next one, it is sent
        here at once, the clock moved to it (SimPy would take it next: an event due at
        the same time was queued first and goes first); otherwise the Call that just
        fired, this population's only pending one, is queued for it (npsim/sim/calls.py).
        """
        env, heap, rate = self.env, self._heap, self._rate
        send, pick, unit_exp = self.send, self._pick, self._unit_exp  # fixed for the run
        now = env._now
        while send(self, pick(), now):
            # the gap as env.timeout would see it, (now + gap) - now, to the same bit
            now += (now + unit_exp() / rate) - now
            if heap and heap[0][0] <= now:  # something else is due first (or as soon)
                event.callbacks = self._again
                heappush(heap, (now, NORMAL, next(self._ids), event))
                return
            env._now = now

    def _schedule(self, t: float) -> None:
        nxt = self.next_time(t)
        if nxt != math.inf:
            self.env.timeout(nxt - self.env._now).callbacks.append(self._arrive)

    def _arrive(self, event: simpy.Event) -> None:
        now = self.env._now
        if self.send(self, self._pick(), now):
            self._schedule(now)


class ClosedLoop(Population):
    """``users`` users, each sending its next request a think time after the last ends
    (or, when it failed and retries are on, a backoff after it)."""

    closed = True

    def __init__(self, *args, think: Sampler, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.think = think

    def start(self, env: simpy.Environment, send: SendFn) -> None:
        self._wire(env, send)
        for user in range(len(self.remaining)):
            env.timeout(self.start_at + self.think(), user).callbacks.append(self._wake)

    def _wake(self, event: simpy.Event) -> None:
        self.send(self, event._value, self.env._now)

    def done(self, request: int, slot: int, t_end: float) -> None:
        if not self._plain and self.ended(request, slot, t_end):
            return  # a retry (or nothing: a late answer nobody waited for)
        delay = t_end - self.env._now + self.think()
        self.env.timeout(delay, slot).callbacks.append(self._wake)
