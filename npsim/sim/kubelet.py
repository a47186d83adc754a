"""The kubelets: what happens to a pod on its node.

:class:`Kubelets` does a node's part of a pod's life: start the container
(``startup``), report it Ready when its readiness probe first passes, run the
termination sequence (preStop, SIGTERM, grace period, SIGKILL), restart crashed
containers with back-off, and probe hung ones. The rules and defaults are in
npsim/cluster/lifecycle.py; the API-side controllers, which own the kubelets, in
npsim/sim/controlplane.py; the faults that stop nodes and crash pods in
npsim/sim/faults.py. Pods' processes are changed through the run's
:class:`~npsim.sim.registry.PodRegistry`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import simpy

from npsim.cluster.lifecycle import CrashBackoff, PodLife, PodPhase, Probe, kill_times
from npsim.cluster.model import Cluster, Pod
from npsim.sim.registry import PodRegistry


class ApiSide(Protocol):
    """What a kubelet reads and tells of the API side (npsim/sim/controlplane.py)."""

    life: Mapping[int, PodLife]
    in_api: set[int]
    health: list[Any]  # per node: its ``condition`` (Ready | Unknown)

    def set_ready(self, pod: Pod, ready: bool, why: str = "") -> None: ...
    def pod_gone(self, pod: Pod) -> None: ...
    def record(self, kind: str, subject: str, detail: str = "") -> None: ...


class Kubelets:
    """Every node's kubelet. ``acting[node]`` is False while the kubelet cannot act on
    the API's wishes (node down, cut off, kubelet stopped): terminations wait for it."""

    def __init__(self, env: simpy.Environment, control: ApiSide, registry: PodRegistry,
                 cluster: Cluster, workloads: Mapping[str, Any],
                 deployments: Mapping[str, Any],
                 phases: Callable[[str], float] | None = None) -> None:
        self.env = env
        self.control = control
        self.registry = registry
        self.cluster = cluster
        self.workloads = workloads  # name -> the scenario's workload (startup, onSigterm)
        self.deployments = deployments  # name -> manifests.Deployment (probes, grace)
        self.acting = [True] * len(cluster.nodes)
        self.deferred: set[int] = set()  # pods whose termination waits for their kubelet
        # running pods on a partitioned node: their containers keep running, unreachable
        self.cut_off: set[int] = set()
        self.generation: dict[int, int] = {}  # bumps cancel a pod's pending timers
        self.backoff: dict[int, CrashBackoff] = {}
        self.crash_loop: dict[int, tuple[float, float]] = {}  # pod -> (runs for, until)
        # each probe worker's phase in [0, 1) of its period, by "pod/kind", drawn from
        # its own stream; None: the aligned timeline (probes from the container's start)
        self.phases = phases
        self.killing: set[int] = set()  # containers being killed after a liveness failure

    # --- helpers ----------------------------------------------------------------------

    def _dep(self, pod: Pod):  # noqa: ANN202 - manifests.Deployment
        return self.deployments[pod.deployment]

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

    def _origin(self, pod: Pod, kind: str, probe: Probe) -> float | None:
        """Where the pod's probe worker ticks: ``origin + k * period``. The worker runs
        from when the kubelet took the pod, not from the container's start (``prober``
        worker.go: a ticker of ``periodSeconds``, kept across container restarts), so
        its phase against a hang is anywhere in a period: drawn per pod and probe."""
        if self.phases is None:
            return None
        return self.phases(f"probe/{pod.name}/{kind}") * probe.period

    # --- starting ---------------------------------------------------------------------

    def start(self, pod: Pod) -> None:
        """A newly scheduled pod: its container is up after the workload's ``startup``."""
        self.control.life[pod.index].phase = PodPhase.STARTING
        startup = self.workloads[pod.deployment].startup
        self._later(startup, pod, self._container_up)

    def _container_up(self, pod: Pod) -> None:
        life = self.control.life[pod.index]
        if pod.index not in self.control.in_api:
            return
        if life.terminating:  # deleted before it started
            self.control.pod_gone(pod)
            return
        self.registry.fresh_process(pod.index)
        life.phase = PodPhase.RUNNING
        life.started = self.env.now
        self.record("container_started", pod.name, f"restarts={life.restarts}")
        readiness = Probe.from_manifest(self._dep(pod).readiness)
        ready_at = (readiness.first_ready(self.env.now,
                                          self._origin(pod, "readiness", readiness))
                    if readiness else self.env.now)
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
        if life.phase not in (PodPhase.RUNNING, PodPhase.HUNG, PodPhase.DRAINING) or \
                pod.index not in self.control.in_api:
            return
        self.killing.discard(pod.index)
        self._reset_timers(pod)
        self.registry.disturbed(pod.index).kill()
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
        server = self.registry.disturbed(pod.index)
        server.alive = False
        server.hung = server.serves_existing = True
        life.phase = PodPhase.HUNG
        now = self.env.now
        self.record("pod_hang", pod.name)
        not_ready, killed = self.hang_seen(pod, now)
        if not_ready is not None and (until is None or not_ready < until):
            self._later(not_ready - now, pod, lambda p: self.control.set_ready(
                p, False, "readiness probe failed"))
        if killed is not None and (until is None or killed < until):
            self._later(killed - now, pod, self._liveness_kill)
        if until is not None:
            self.env.timeout(until - now).callbacks.append(lambda _e: self._unhang(pod))

    def hang_seen(self, pod: Pod, since: float) -> tuple[float | None, float | None]:
        """When the probes see a hang that began at ``since``: the readiness probe's
        failureThreshold-th failure (NotReady) and the liveness probe's (the kill); None
        for a probe the pod does not have. ``explain --at`` reads it too."""
        dep = self._dep(pod)
        started = self.control.life[pod.index].started
        out = []
        for kind, manifest in (("readiness", dep.readiness), ("liveness", dep.liveness)):
            probe = Probe.from_manifest(manifest)
            out.append(None if probe is None else probe.failing_detected(
                started, since, self._origin(pod, kind, probe)))
        return out[0], out[1]

    def _unhang(self, pod: Pod) -> None:
        life = self.control.life[pod.index]
        if life.phase is not PodPhase.HUNG:
            return  # restarted (liveness) or gone meanwhile
        killing = pod.index in self.killing
        if not killing:  # a kill once started goes on (its SIGTERM, SIGKILL stay)
            self._reset_timers(pod)
        server = self.registry.disturbed(pod.index)
        server.alive, server.serves_existing = True, False
        server.resume()
        life.phase = PodPhase.RUNNING
        self.record("pod_unhang", pod.name)
        readiness = Probe.from_manifest(self._dep(pod).readiness)
        if not life.ready and readiness is not None and not killing:
            at = readiness.passing_detected(life.started, self.env.now,
                                            self._origin(pod, "readiness", readiness))
            self._later(at - self.env.now, pod, self._probe_passed)

    def _liveness_kill(self, pod: Pod) -> None:
        """A failed liveness probe: the kubelet kills the container the way it stops one,
        preStop first, then SIGTERM with the rest of ``terminationGracePeriodSeconds``
        (at least 2 s), SIGKILL after, and restarts it under the crash-loop back-off
        (``kuberuntime_manager.go`` computePodActions, ``killContainer``)."""
        life = self.control.life[pod.index]
        if life.phase is not PodPhase.HUNG or pod.index in self.killing:
            return
        self.killing.add(pod.index)
        self.record("pod_killing", pod.name, "liveness probe failed")
        dep = self._dep(pod)
        liveness = Probe.from_manifest(dep.liveness)
        grace = (liveness.termination_grace if liveness is not None
                 and liveness.termination_grace is not None else dep.grace_period)
        term, kill = kill_times(dep.pre_stop, grace)
        self._later(kill, pod, lambda p: self._kill_now(p, "SIGKILL after the grace period"))
        if term > 0:
            self._later(term, pod, self._kill_sigterm)
        else:
            self._kill_sigterm(pod)

    def _kill_sigterm(self, pod: Pod) -> None:
        life = self.control.life[pod.index]
        how = self.workloads[pod.deployment].on_sigterm
        self.record("pod_sigterm", pod.name, f"{how} (liveness kill)")
        if how == "drain" and life.phase is PodPhase.RUNNING:
            life.phase = PodPhase.DRAINING
            self.registry.disturbed(pod.index).drain(
                lambda: self._kill_now(pod, "exited after SIGTERM"))
        else:  # a hung process, or an app that exits on SIGTERM
            self._kill_now(pod, "exited on SIGTERM")

    def _kill_now(self, pod: Pod, how: str) -> None:
        if pod.index in self.killing:
            self.crash(pod, f"liveness probe failed: {how}")

    def slow_down(self, pod: Pod, factor: float, until: float | None) -> None:
        """Service times times ``factor`` (a noisy neighbour) until ``until``."""
        server = self.registry.disturbed(pod.index)
        base = self.registry.service_sampler(pod.index)
        server.sample = lambda: base() * factor
        self.record("pod_slowdown", pod.name, f"factor={factor:g}")
        if until is not None:
            def restore(_event: simpy.Event) -> None:
                self.registry.disturbed(pod.index).sample = base
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
        term, kill = kill_times(dep.pre_stop, dep.grace_period)
        self._later(term, pod, self._sigterm)
        self._later(kill, pod, self._sigkill)

    def _sigterm(self, pod: Pod) -> None:
        server = self.registry.disturbed(pod.index)
        life = self.control.life[pod.index]
        how = self.workloads[pod.deployment].on_sigterm
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
        self.registry.disturbed(pod.index).kill()
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
                self.registry.disturbed(pod.index).kill(silent=True)
            self.registry.disturbed(pod.index).silent = True
            life.phase = PodPhase.CRASHED

    def down_from_start(self, node: int) -> None:
        """The node went down long enough ago to be detected, not long enough for its
        pods' eviction (FaultPlan.down): its kubelet does not act, its pods' processes
        are gone (silent: packets to them are lost) and their endpoints NotReady
        (MarkPodsNotReady). No timer is set: the state holds until an event ends it."""
        self.acting[node] = False
        self.record("node_down", self.cluster.nodes[node].name,
                    "down before the run started (detected, not evicted)")
        for pod in self._pods_on(node):
            self.registry.disturbed(pod.index).kill(silent=True)
            life = self.control.life[pod.index]
            life.phase, life.ready = PodPhase.CRASHED, False

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
        self.registry.fresh_process(pod.index)
        self.control.life[pod.index].phase = PodPhase.RUNNING

    def node_back(self, node: int) -> None:
        """The controller sees the node Ready: its kubelet reports running pods Ready."""
        for pod in self._pods_on(node):
            life = self.control.life[pod.index]
            if life.phase is PodPhase.RUNNING and not life.terminating and not life.ready:
                self.control.set_ready(pod, True, "node Ready")

    def _pods_on(self, node: int) -> list[Pod]:
        return [p for p in self.cluster.pods
                if p.node == node and p.index in self.control.in_api]


