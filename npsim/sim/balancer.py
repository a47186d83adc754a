"""The external load balancer in front of every Node:NodePort (tutorial section 4.2).

The tutorial's nginx ``upstream`` / HAProxy ``backend`` lists every node's address with
the NodePort. It picks a node per new client connection (round robin, least
connections, or random) among the nodes it considers up, and learns which are up:

* active checks every ``interval``: a check that fails is known after ``timeout``;
  ``fall`` consecutive failures mark a node down, ``rise`` successes mark it up again
  (HAProxy ``check inter 2s rise 2 fall 3``). So a node that dies at t is out of
  rotation by about t + fall x interval + timeout;
* passive checks (nginx ``max_fails`` / ``fail_timeout``): ``maxFails`` failed
  connections through a node within ``failTimeout`` take it out for ``failTimeout``.
  Any failed connection counts, also one kube-proxy sent to a dead pod elsewhere: under
  Cluster policy a dead node's endpoints make *healthy* nodes look bad.

Each transition is recorded in the run's events (``lb_mark_down`` / ``lb_mark_up``,
subject the node, detail ``<population>: <why>``). When every node is down the
balancer answers 503 itself (HAProxy "no server available"): ``no_healthy_upstream``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np
import simpy

from npsim.cluster.model import ServicePortModel
from npsim.dists import batched
from npsim.scenario.client_spec import BalancerSpec, ClientSpec
from npsim.sim.probes import NodePortProbe
from npsim.sim.timeline import EventLog


class Balancer:
    """One population's balancer: the entry function ``(client, now) -> node``."""

    def __init__(self, env: simpy.Environment, spec: BalancerSpec, population: str,
                 node_names: list[str], rng: np.random.Generator, events: EventLog,
                 check: Callable[[int], bool] | None = None, check_name: str = "") -> None:
        self.env = env
        self.spec = spec
        self.population = population
        self.node_names = node_names
        n = len(node_names)
        self.n = n
        self.events = events
        self.algorithm = spec.algorithm or "roundRobin"
        self.counts_in_flight = self.algorithm == "leastConnections"
        self.in_flight = [0] * n  # requests on their way through each node
        self.up = [True] * n  # the active checks' verdict
        self.out_until = [-math.inf] * n  # passive checks: no traffic before this time
        self._next = 0
        self.avoid: frozenset[int] = frozenset()  # nodes this next-upstream try skips
        self._random = batched(lambda k: rng.integers(0, 1 << 30, k))
        self.check = check
        self.check_name = check_name
        self._ok_run = [0] * n
        self._fail_run = [0] * n
        passive = spec.passive
        self._fails: list[deque[float]] | None = (
            [deque() for _ in range(n)] if passive is not None else None)

    # --- choosing a node ------------------------------------------------------------

    def usable(self, node: int, now: float) -> bool:
        return self.up[node] and self.out_until[node] <= now and node not in self.avoid


    def __call__(self, client: int, now: float) -> int:
        n = self.n
        if self.algorithm == "random":
            start = self._random() % n
        elif self.algorithm == "leastConnections":
            best, load = -1, math.inf
            for k in range(n):  # fewest in flight; ties in round-robin order
                node = (self._next + k) % n
                if self.usable(node, now) and self.in_flight[node] < load:
                    best, load = node, self.in_flight[node]
            if best >= 0:
                self._next = (best + 1) % n
            return best
        else:
            start = self._next
        for k in range(n):
            node = (start + k) % n
            if self.usable(node, now):
                self._next = (node + 1) % n
                return node
        return -1

    # --- learning which nodes are up ------------------------------------------------

    def _mark(self, node: int, up: bool, why: str, at: float) -> None:
        self.events.record(at, "lb_mark_up" if up else "lb_mark_down", self.node_names[node],
                           f"{self.population}: {why}")

    def failed(self, node: int, at: float) -> None:
        """A connection through ``node`` failed, as the balancer learns at ``at``."""
        if self._fails is None:
            return
        now = self.env.now
        if at > now:  # learnt when the connect attempt times out: act then, not now
            self.env.timeout(at - now, node).callbacks.append(self._learn)
        else:
            self._count_failure(node, now)

    def _learn(self, event: simpy.Event) -> None:
        self._count_failure(event.value, self.env.now)

    def _count_failure(self, node: int, at: float) -> None:
        passive = self.spec.passive
        assert passive is not None
        fails = self._fails[node]
        fails.append(at)
        while fails and fails[0] <= at - passive.fail_timeout:
            fails.popleft()
        if len(fails) >= passive.max_fails and self.out_until[node] <= at:
            self.out_until[node] = at + passive.fail_timeout
            fails.clear()
            self._mark(node, False, f"{passive.max_fails} failed connection(s) "
                       f"(max_fails), out for {passive.fail_timeout:g}s", at)
            self.env.timeout(max(self.out_until[node] - self.env.now, 0.0),
                             node).callbacks.append(self._passive_back)

    def _passive_back(self, event: simpy.Event) -> None:
        node = event.value
        if self.out_until[node] <= self.env.now and self.up[node]:
            self._mark(node, True, "fail_timeout over", self.env.now)

    def known_down(self, node: int) -> None:
        """The node was down before the run started and the checks have seen it: out of
        rotation from t = 0, with ``fall`` failed checks behind it (``rise`` passing ones
        bring it back). A balancer without active checks keeps it out for the run (its
        passive checks would have taken it out again and again)."""
        self.up[node] = False
        hc = self.spec.health_check
        self._fail_run[node] = hc.fall if hc is not None else 1
        self._mark(node, False, "down before the run started", self.env.now)

    def check_runs(self, node: int) -> tuple[int, int]:
        """The active checks of ``node`` in a row: (passed, failed) (``explain --at``)."""
        return self._ok_run[node], self._fail_run[node]

    def start(self, going: Callable[[], bool] = lambda: True) -> None:
        """Run the active checks while ``going()`` (request-count runs must drain)."""
        if self.spec.health_check is not None and self.check is not None:
            self._loop = self._checks(going)
            self.env.process(self._loop)

    def stop(self) -> None:
        """The run is over: end the checks and let go of the check (their suspended loop
        holds the simulation's ``going``, the check answers from the simulation: both
        would keep it in a reference cycle)."""
        loop = self.__dict__.pop("_loop", None)
        if loop is not None:
            loop.close()
        self.check = None

    def _checks(self, going: Callable[[], bool]):  # noqa: ANN202 - SimPy process
        hc = self.spec.health_check
        assert hc is not None and self.check is not None
        while going():
            for node in range(self.n):
                if self.check(node):
                    self._result(node, True)
                else:  # no answer (or a 503) is known when the check times out
                    self.env.timeout(hc.timeout, node).callbacks.append(self._failed_check)
            yield self.env.timeout(hc.interval)

    def _failed_check(self, event: simpy.Event) -> None:
        self._result(event.value, False)

    def _result(self, node: int, ok: bool) -> None:
        hc = self.spec.health_check
        assert hc is not None
        if ok:
            self._fail_run[node] = 0
            self._ok_run[node] += 1
            if not self.up[node] and self._ok_run[node] >= hc.rise:
                self.up[node] = True
                if self.out_until[node] <= self.env.now:
                    self._mark(node, True, f"{hc.rise} {self.check_name} check(s) passed",
                               self.env.now)
        else:
            self._ok_run[node] = 0
            self._fail_run[node] += 1
            if self.up[node] and self._fail_run[node] >= hc.fall:
                self.up[node] = False
                self._mark(node, False, f"{hc.fall} {self.check_name} check(s) failed",
                           self.env.now)


def make_balancer(env: simpy.Environment, client: ClientSpec, service_port: ServicePortModel,
                  node_names: list[str], probe: NodePortProbe, rng: np.random.Generator,
                  events: EventLog, down: Sequence[int] = ()) -> Balancer:
    """The balancer in front of one population, its checks answered by ``probe``;
    ``down``: nodes down before the run starts, already marked down."""
    spec = client.balancer
    assert spec is not None
    hc = spec.health_check
    port = hc.port if hc is not None else "nodePort"
    if port == "healthCheckNodePort":
        check, what = (probe.health_check,
                       f"healthCheckNodePort {service_port.health_check_node_port}")
    elif port in ("proxyHealthz", "proxyLivez"):  # kube-proxy's node health server
        check, what = probe.node_health, f"kube-proxy :10256/{port[5:].lower()}"
    else:
        check, what = probe.tcp, f"NodePort {service_port.node_port}"
    balancer = Balancer(env, spec, client.name, node_names, rng, events, check, what)
    for node in down:
        balancer.known_down(node)
    return balancer
