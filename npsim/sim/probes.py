"""Probes from outside the cluster: would a check of Node:port succeed right now?

Both the external balancer's active health checks and the monitoring's blackbox probes
ask these questions, from the node's own state as its kube-proxy has programmed it.

* TCP to Node:NodePort: the node must answer, kube-proxy must forward the SYN (no
  REJECT, no DROP of a Local policy without local endpoint, no IPVS reply loss) and the
  endpoint it picks must be alive. The probe picks an endpoint uniformly from its own
  random stream, so probing never changes the draws the clients' connections see.
* HTTP to the healthCheckNodePort (``type: LoadBalancer`` with
  ``externalTrafficPolicy: Local``): kube-proxy's per-Service health server answers
  200 iff the node has at least one local *ready* endpoint in its programmed state,
  else 503 (k8s pkg/proxy/healthcheck/service_health.go ``hcHandler.ServeHTTP``;
  the count is ``LocalReadyEndpoints``, terminating endpoints excluded: a node whose
  only local endpoint is terminating answers 503 with ``localEndpoints: 0`` while
  kube-proxy still forwards to it, so a balancer drains it before the pod exits).
* HTTP to kube-proxy's node health server (port 10256, ``/healthz`` and ``/livez``,
  what cloud balancers check for Cluster-policy Services, KEP-3836): 200 while the
  kube-proxy runs and has synced what it heard within 2 x ``syncPeriod``
  (pkg/proxy/healthcheck/proxy_health.go). npsim deletes no Node, so ``/healthz``'s
  node-deletion check never fires and both paths answer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import simpy

from npsim.dists import batched
from npsim.proxy.base import KubeProxy
from npsim.scenario.schema import MonitoringSpec


class _Alive(Protocol):
    alive: bool


class NodePortProbe:
    """Checks of one Service port on every node, answered from the live simulation."""

    def __init__(self, proxies: Sequence[KubeProxy], pods: Sequence[_Alive],
                 service_port: int, answers: Callable[[int], bool],
                 rng: np.random.Generator,
                 proxy_running: Callable[[int], bool] = lambda node: True,
                 proxy_healthy: Callable[[int], bool] = lambda node: True) -> None:
        self.proxies = proxies
        self.proxy_running = proxy_running  # the health server lives in kube-proxy
        self.proxy_healthy = proxy_healthy  # its rules are not stale
        self.pods = pods
        self.service_port = service_port
        self.answers = answers
        self._uniform = batched(rng.random)

    def tcp(self, node: int) -> bool:
        """A TCP connect to Node:NodePort is accepted by a live pod."""
        if not self.answers(node):
            return False
        proxy = self.proxies[node]
        view = proxy.views[self.service_port]
        if not view.any or not proxy.accepts("primary"):
            return False
        table, _, reply_lost = proxy.route(view, "external", False, False)
        if table.n == 0 or reply_lost:
            return False
        choice = int(self._uniform() * table.n)
        pod = self.pods[table.pods[choice]]
        # a hung process still completes the handshake (the kernel accepts for it)
        return (pod.alive or getattr(pod, "hung", False)) and self.answers(table.nodes[choice])

    def local_ready(self, node: int) -> int:
        """What the healthCheckNodePort reports as ``localEndpoints``: the node's own
        ready endpoints in its kube-proxy's programmed state (``LocalReadyEndpoints``:
        not the serving-terminating ones it falls back to)."""
        view = self.proxies[node].views.get(self.service_port)
        return view.local_ready if view is not None else 0

    def health_check(self, node: int) -> bool:
        """HTTP GET of the healthCheckNodePort returns 200 (a stopped kube-proxy serves
        no health port at all)."""
        return (self.answers(node) and self.proxy_running(node)
                and self.local_ready(node) > 0)

    def node_health(self, node: int) -> bool:
        """HTTP GET of kube-proxy's ``/healthz`` (or ``/livez``) on port 10256 returns
        200."""
        return self.answers(node) and self.proxy_running(node) and self.proxy_healthy(node)


class Blackbox:
    """The monitoring's blackbox exporter: probes every node's NodePort(s) each
    ``interval`` (one light SimPy process) and keeps the ``probe_success`` samples as
    columns; the alert rules are evaluated from them after the run."""

    def __init__(self, env: simpy.Environment, probes: dict[int, NodePortProbe],
                 n_nodes: int, interval: float) -> None:
        self.env = env
        self.probes = probes  # service port -> its probe
        self.n_nodes = n_nodes
        self.interval = interval
        self.time: list[float] = []
        self.service_port: list[int] = []
        self.node: list[int] = []
        self.success: list[bool] = []

    def start(self, going: Callable[[], bool] = lambda: True) -> None:
        self._loop = self._scrape(going)
        self.env.process(self._loop)

    def stop(self) -> None:
        """The run is over: end the scrapes and let go of the probes. Both reach into the
        simulation (its kube-proxies, pods and callbacks), which the run's output, that
        keeps this prober's samples, must not keep alive."""
        loop = self.__dict__.pop("_loop", None)
        if loop is not None:
            loop.close()
        self.probes = {}

    def _scrape(self, going: Callable[[], bool]):  # noqa: ANN202 - SimPy process
        while going():
            now = self.env.now
            for sp, probe in self.probes.items():
                for node in range(self.n_nodes):
                    self.time.append(now)
                    self.service_port.append(sp)
                    self.node.append(node)
                    self.success.append(probe.tcp(node))
            yield self.env.timeout(self.interval)


def blackbox_probers(env: simpy.Environment, monitoring: MonitoringSpec | None,
                     ports: list[int], proxies: Sequence[KubeProxy], pods: Sequence[_Alive],
                     answers: Callable[[int], bool],
                     generator: Callable[[str], np.random.Generator]) -> dict[str, Blackbox]:
    """One blackbox prober per probe alert rule, over the NodePorts ``ports`` (the
    Service ports clients reach by NodePort)."""
    rules = [a for a in monitoring.alerts if a.probe is not None] if monitoring else []
    out = {}
    for rule in rules:
        assert rule.probe is not None
        probes = {sp: NodePortProbe(proxies, pods, sp, answers,
                                    generator(f"blackbox/{rule.name}/{sp}"))
                  for sp in ports}
        out[rule.name] = Blackbox(env, probes, len(proxies), rule.probe.interval)
    return out
