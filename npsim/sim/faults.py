"""Faults on a timeline, and the kubelets that act on each node.

:class:`FaultInjector` turns a scenario's ``events:`` into SimPy timeouts: node crash,
network partition, kubelet stop, kube-proxy stop, pod crash (a crash loop), pod hang,
pod slowdown, rolling update and scale. :class:`Kubelets` does a node's part of a pod's
life: start the container (``startup``), report it Ready when its readiness probe first
passes, run the termination sequence (preStop, SIGTERM, grace period, SIGKILL), restart
crashed containers with back-off, and probe hung ones. The rules and defaults are in
npsim/cluster/lifecycle.py; the API-side controllers in npsim/sim/controlplane.py.

Nothing here runs unless a scenario schedules an event: steady-state runs pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import simpy

from npsim.cluster.lifecycle import CrashBackoff, PodPhase, Probe
from npsim.cluster.model import Cluster, Pod
from npsim.scenario.schema import EventSpec

if TYPE_CHECKING:
    from npsim.sim.clients import Population
    from npsim.sim.engine import Simulation


class Conntrack:
    """Established flows whose path changes under their client (cold path only).

    ``sim.broken`` maps a connection id to True (its entry node went down: no answer
    from now on) or False (a UDP conntrack entry was deleted: the next packet is a new
    flow, balanced afresh through the same node). TCP entries are never deleted
    (pkg/proxy/conntrack/cleanup.go CleanStaleEntries handles UDP only).
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def cut(self, node: int) -> None:
        """Established connections entering through ``node`` get no answer from now on."""
        for pop in self.sim.populations:
            for slot, left in enumerate(pop.remaining):
                if left and pop.conn_entry[slot] == node:
                    self.sim.broken[pop.conn_id[slot]] = True

    def flush_udp(self, node: int, service_port: int, serving: set[int]) -> None:
        """After a sync on ``node``: delete the UDP entries of flows whose endpoint is no
        longer serving (traffic policy and terminating state are ignored upstream)."""
        broken = self.sim.broken
        for pop in self.sim.populations:
            if pop.service_port != service_port:
                continue
            for slot, left in enumerate(pop.remaining):
                if (left and pop.conn_entry[slot] == node and pop.conn_pod[slot] not in serving
                        and pop.conn_id[slot] not in broken):
                    broken[pop.conn_id[slot]] = False

    def reflow(self, pop: Population, slot: int, now: float) -> bool:
        """A UDP packet whose entry was deleted: a new flow through the same node."""
        left = pop.remaining[slot]
        pop.remaining[slot] = 0
        entry = pop.conn_entry[slot]
        saved = pop.entry
        pop.entry = lambda _slot, _now: entry  # the client still sends to that node
        try:
            sent = self.sim.send(pop, slot, now)
        finally:
            pop.entry = saved
        if pop.remaining[slot]:
            pop.remaining[slot] = left - 1
        return sent


class Kubelets:
    """Every node's kubelet. ``acting[node]`` is False while the kubelet cannot act on
    the API's wishes (node down, cut off, kubelet stopped): terminations wait for it."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.env = sim.env
        self.control = sim.control
        sim.control.kubelet = self
        self.acting = [True] * len(sim.cluster.nodes)
        self.deferred: set[int] = set()  # pods whose termination waits for their kubelet
        # running pods on a partitioned node: their containers keep running, unreachable
        self.cut_off: set[int] = set()
        self.generation: dict[int, int] = {}  # bumps cancel a pod's pending timers
        self.backoff: dict[int, CrashBackoff] = {}
        self.crash_loop: dict[int, tuple[float, float]] = {}  # pod -> (runs for, until)

    # --- helpers ----------------------------------------------------------------------

    def _dep(self, pod: Pod):  # noqa: ANN202 - manifests.Deployment
        return self.sim.scenario.deployments[pod.deployment]

    def _later(self, delay: float, pod: Pod, action: Callable[[Pod], None]) -> None:
        """Run ``action(pod)`` after ``delay`` unless the pod's timers were reset."""
        generation = self.generation.get(pod.index, 0)

        def fire(_event: simpy.Event) -> None:
            if self.generation.get(pod.index, 0) == generation:
                action(pod)

        self.env.timeout(max(delay, 0.0)).callbacks.append(fire)

    def _reset_timers(self, pod: Pod) -> None:
        self.generation[pod.index] = self.generation.get(pod.index, 0) + 1

    def record(self, kind: str, subject: str, detail: str = "") -> None:
        self.control.record(kind, subject, detail)

    # --- starting ---------------------------------------------------------------------

    def start(self, pod: Pod) -> None:
        """A newly scheduled pod: its container is up after the workload's ``startup``."""
        self.control.life[pod.index].phase = PodPhase.STARTING
        startup = self.sim.scenario.spec.workloads[pod.deployment].startup
        self._later(startup, pod, self._container_up)

    def _container_up(self, pod: Pod) -> None:
        life = self.control.life[pod.index]
        if pod.index not in self.control.in_api:
            return
        if life.terminating:  # deleted before it started
            self.control.pod_gone(pod)
            return
        self.sim.fresh_process(pod.index)
        life.phase = PodPhase.RUNNING
        life.started = self.env.now
        self.record("container_started", pod.name, f"restarts={life.restarts}")
        readiness = Probe.from_manifest(self._dep(pod).readiness)
        ready_at = readiness.first_ready(self.env.now) if readiness else self.env.now
        self._later(ready_at - self.env.now, pod, self._probe_passed)
        loop = self.crash_loop.get(pod.index)
        if loop is not None and self.env.now < loop[1]:
            self._later(loop[0], pod, lambda p: self.crash(p, "crash loop"))

    def _probe_passed(self, pod: Pod) -> None:
        if self.acting[pod.node] and self.control.health[pod.node].condition == "Ready":
            self.control.set_ready(pod, True, "readiness probe passed")

    # --- crashes, hangs, slowdowns ------------------------------------------------------

    def crash(self, pod: Pod, why: str) -> None:
        """The container exits: connections reset, the pod is NotReady, and the kubelet
        restarts it after the back-off (npsim/cluster/lifecycle.py CrashBackoff)."""
        life = self.control.life[pod.index]
        if life.phase not in (PodPhase.RUNNING, PodPhase.HUNG) or pod.index not in \
                self.control.in_api:
            return
        self._reset_timers(pod)
        self.sim.disturbed(pod.index).kill()
        life.phase = PodPhase.CRASHED
        life.restarts += 1
        self.record("pod_crash", pod.name, why)
        self.control.set_ready(pod, False, "container exited")
        if life.terminating:
            self.control.pod_gone(pod)
            return
        delay = self.backoff.setdefault(pod.index, CrashBackoff()).delay(self.env.now)
        self.record("pod_backoff", pod.name, f"restart in {delay:g}s")
        self._later(delay, pod, self._restart)

    def _restart(self, pod: Pod) -> None:
        if not self.acting[pod.node]:
            return  # the node's kubelet is gone; it restarts the pod when it returns
        self.record("pod_restart", pod.name, f"restarts={self.control.life[pod.index].restarts}")
        self._container_up(pod)

    def hang(self, pod: Pod, until: float | None) -> None:
        """The process stops answering but keeps its connections: readiness fails after
        failureThreshold probes; liveness (if configured) restarts it."""
        life = self.control.life[pod.index]
        if life.phase is not PodPhase.RUNNING:
            return
        server = self.sim.disturbed(pod.index)
        server.alive = False
        server.hung = server.serves_existing = True
        life.phase = PodPhase.HUNG
        now = self.env.now
        self.record("pod_hang", pod.name)
        dep = self._dep(pod)
        readiness = Probe.from_manifest(dep.readiness)
        liveness = Probe.from_manifest(dep.liveness)
        if readiness is not None:
            at = readiness.failing_detected(life.started, now)
            if until is None or at < until:
                self._later(at - now, pod, lambda p: self.control.set_ready(
                    p, False, "readiness probe failed"))
        if liveness is not None:
            at = liveness.failing_detected(life.started, now)
            if until is None or at < until:
                self._later(at - now, pod, lambda p: self.crash(p, "liveness probe failed"))
        if until is not None:
            self.env.timeout(until - now).callbacks.append(lambda _e: self._unhang(pod))

    def _unhang(self, pod: Pod) -> None:
        life = self.control.life[pod.index]
        if life.phase is not PodPhase.HUNG:
            return  # restarted (liveness) or gone meanwhile
        self._reset_timers(pod)
        server = self.sim.disturbed(pod.index)
        server.alive, server.serves_existing = True, False
        server.resume()
        life.phase = PodPhase.RUNNING
        self.record("pod_unhang", pod.name)
        readiness = Probe.from_manifest(self._dep(pod).readiness)
        if not life.ready and readiness is not None:
            at = readiness.passing_detected(life.started, self.env.now)
            self._later(at - self.env.now, pod, self._probe_passed)

    def slow_down(self, pod: Pod, factor: float, until: float | None) -> None:
        """Service times times ``factor`` (a noisy neighbour) until ``until``."""
        server = self.sim.disturbed(pod.index)
        base = self.sim.service_sampler(pod.index)
        server.sample = lambda: base() * factor
        self.record("pod_slowdown", pod.name, f"factor={factor:g}")
        if until is not None:
            def restore(_event: simpy.Event) -> None:
                self.sim.disturbed(pod.index).sample = base
                self.record("pod_speed_restored", pod.name)

            self.env.timeout(until - self.env.now).callbacks.append(restore)

    # --- termination --------------------------------------------------------------------

    def terminate(self, pod: Pod) -> None:
        """preStop, then SIGTERM (the app exits at once or drains), SIGKILL at the end of
        terminationGracePeriodSeconds (Kubernetes docs "Pod Lifecycle: Termination of
        Pods")."""
        if not self.acting[pod.node]:
            self.deferred.add(pod.index)
            return
        life = self.control.life[pod.index]
        if life.phase not in (PodPhase.RUNNING, PodPhase.HUNG):
            self._reset_timers(pod)
            self.control.pod_gone(pod)  # nothing runs: the pod goes at once
            return
        dep = self._dep(pod)
        grace = dep.grace_period
        self._later(min(dep.pre_stop, grace), pod, self._sigterm)
        self._later(grace, pod, self._sigkill)

    def _sigterm(self, pod: Pod) -> None:
        server = self.sim.disturbed(pod.index)
        life = self.control.life[pod.index]
        how = self.sim.scenario.spec.workloads[pod.deployment].on_sigterm
        self.record("pod_sigterm", pod.name, how)
        if how == "drain" and life.phase is PodPhase.RUNNING:
            life.phase = PodPhase.DRAINING
            server.drain(lambda: self._exited(pod))
        else:
            self._exited(pod)

    def _sigkill(self, pod: Pod) -> None:
        if self.control.life[pod.index].phase in (PodPhase.RUNNING, PodPhase.HUNG,
                                                  PodPhase.DRAINING):
            self.record("pod_sigkill", pod.name, "grace period over")
            self._exited(pod)

    def _exited(self, pod: Pod) -> None:
        if pod.index not in self.control.in_api:
            return
        self._reset_timers(pod)
        self.sim.disturbed(pod.index).kill()
        self.control.pod_gone(pod)

    # --- nodes ---------------------------------------------------------------------------

    def node_lost(self, node: int, processes_die: bool, partitioned: bool = False) -> None:
        """The kubelet stops acting on the node; with the node, its pods' processes go
        (a crash) or become unreachable (``partitioned``: the same for every client, as
        nothing crosses the partition; their containers keep running and are not
        restarted when it heals)."""
        self.acting[node] = False
        if not processes_die:
            return
        for pod in self._pods_on(node):
            life = self.control.life[pod.index]
            self._reset_timers(pod)
            if partitioned and life.phase is PodPhase.RUNNING and not life.terminating:
                self.cut_off.add(pod.index)
            if life.phase in (PodPhase.RUNNING, PodPhase.HUNG, PodPhase.DRAINING):
                self.sim.disturbed(pod.index).kill(silent=True)
            self.sim.disturbed(pod.index).silent = True
            life.phase = PodPhase.CRASHED

    def node_returns(self, node: int, restart: bool) -> None:
        """The kubelet acts again: deferred terminations finish, and pods whose process
        is gone start again (a rebooted node)."""
        self.acting[node] = True
        for pod in self._pods_on(node):
            life = self.control.life[pod.index]
            reachable_again = pod.index in self.cut_off
            self.cut_off.discard(pod.index)
            if pod.index in self.deferred or life.terminating:
                self.deferred.discard(pod.index)
                if life.phase is PodPhase.CRASHED:
                    self._reset_timers(pod)
                    self.control.pod_gone(pod)
                else:
                    self.terminate(pod)
            elif life.phase is PodPhase.CRASHED:
                if reachable_again:  # a healed partition: the container never stopped
                    self._reachable_again(pod)
                elif restart:  # a reboot: the container starts again
                    life.restarts += 1
                    self.start(pod)
                else:  # the kubelet is back: a container that was not running comes up
                    self._container_up(pod)

    def _reachable_again(self, pod: Pod) -> None:
        """A container that ran on through a partition: no start, no restart and no
        readiness delay (its probes kept passing on the node); the kubelet reports it
        Ready once the node is Ready (:meth:`node_back`). Requests it held at the cut
        got no answer across the partition; new connections reach it now."""
        self.sim.fresh_process(pod.index)
        self.control.life[pod.index].phase = PodPhase.RUNNING

    def node_back(self, node: int) -> None:
        """The controller sees the node Ready: its kubelet reports running pods Ready."""
        for pod in self._pods_on(node):
            life = self.control.life[pod.index]
            if life.phase is PodPhase.RUNNING and not life.terminating and not life.ready:
                self.control.set_ready(pod, True, "node Ready")

    def _pods_on(self, node: int) -> list[Pod]:
        return [p for p in self.sim.cluster.pods
                if p.node == node and p.index in self.control.in_api]


def pods_touched(events: list[EventSpec], cluster: Cluster) -> set[int]:
    """The pods (indexes at the start of the run) that a scenario's events can disturb
    mid-service: every pod of a Deployment that is scaled or rolled, every pod on a node
    that crashes, is cut off or loses its kubelet, and the pods a pod fault names. The
    others run as :class:`~npsim.sim.pods.QuietPod` (pods made during the run never do).
    A kube-proxy stop touches no pod: only the rules freeze."""
    touched: set[int] = set()
    for event in events:
        kind, target = event.kind, event.target
        if kind in ("scale", "rollout"):
            touched.update(p.index for p in cluster.pods if p.deployment == target.deployment)
        elif kind in ("node_crash", "node_partition", "kubelet_stop"):
            node = cluster.node_index(target.node)
            touched.update(p.index for p in cluster.pods if p.node == node)
        elif kind in ("pod_crash", "pod_hang", "pod_slowdown"):
            touched.update(p.index for p in cluster.pods if p.name == target.pod)
    return touched


class FaultInjector:
    """Schedules a scenario's ``events:`` on the simulation's clock."""

    def __init__(self, sim: Simulation, kubelets: Kubelets) -> None:
        self.sim = sim
        self.env = sim.env
        self.control = sim.control
        self.kubelets = kubelets

    def schedule(self, events: list[EventSpec]) -> None:
        for event in events:
            self.env.timeout(event.at).callbacks.append(
                lambda _e, ev=event: self._start(ev))
            if event.until is not None:
                self.env.timeout(event.until).callbacks.append(
                    lambda _e, ev=event: self._end(ev))

    def _pod(self, name: str) -> Pod:
        return next(p for p in self.sim.cluster.pods if p.name == name)

    def _start(self, event: EventSpec) -> None:
        kind, target = event.kind, event.target
        control = self.control
        if kind == "scale":
            control.scale(target.deployment, target.replicas)
        elif kind == "rollout":
            control.rollout(target.deployment)
        elif kind in ("node_crash", "node_partition"):
            node = self.sim.cluster.node_index(target.node)
            control.record(kind, target.node)
            self.sim.node_down[node] = True
            self.sim.conntrack.cut(node)
            self.kubelets.node_lost(node, processes_die=True,
                                    partitioned=kind == "node_partition")
            control.kubelet_stopped(node)
            control.freeze(node, True)
        elif kind == "kubelet_stop":
            node = self.sim.cluster.node_index(target.node)
            control.record(kind, target.node)
            self.kubelets.node_lost(node, processes_die=False)
            control.kubelet_stopped(node)
        elif kind == "kube_proxy_stop":
            node = self.sim.cluster.node_index(target.node)
            control.record(kind, target.node, "rules frozen at the last sync")
            control.freeze(node, True)
        elif kind == "pod_crash":
            pod = self._pod(target.pod)
            if target.runs_for is not None:
                until = event.until if event.until is not None else float("inf")
                self.kubelets.crash_loop[pod.index] = (target.runs_for, until)
            self.kubelets.crash(pod, "fault injected")
        elif kind == "pod_hang":
            self.kubelets.hang(self._pod(target.pod), event.until)
        elif kind == "pod_slowdown":
            self.kubelets.slow_down(self._pod(target.pod), target.factor, event.until)

    def _end(self, event: EventSpec) -> None:
        kind, target = event.kind, event.target
        control = self.control
        if kind in ("node_crash", "node_partition"):
            node = self.sim.cluster.node_index(target.node)
            control.record("node_recover" if kind == "node_crash" else "node_heal",
                           target.node)
            self.sim.node_down[node] = False
            # a rebooted node restarts its pods; a healed one finds them where they were
            self.kubelets.node_returns(node, restart=kind == "node_crash")
            control.kubelet_started(node)
            control.freeze(node, False)
        elif kind == "kubelet_stop":
            node = self.sim.cluster.node_index(target.node)
            control.record("kubelet_start", target.node)
            self.kubelets.node_returns(node, restart=False)
            control.kubelet_started(node)
        elif kind == "kube_proxy_stop":
            node = self.sim.cluster.node_index(target.node)
            control.record("kube_proxy_start", target.node)
            control.freeze(node, False)
        elif kind == "pod_crash":
            self.kubelets.crash_loop.pop(self._pod(target.pod).index, None)
            control.record("crash_loop_end", target.pod)
