"""Faults on a timeline: the fault plan's outages acted out on the run's parts.

:class:`FaultInjector` schedules every outage of the plan (npsim/scenario/faultplan.py)
on the run's clock; each outage calls back the action it stands for (node crash,
network partition, kubelet stop, kube-proxy stop, pod crash or crash loop, pod hang,
pod slowdown, rolling update, scale). The actions change the node network (a node that
answers nothing), the kubelets (npsim/sim/kubelet.py) and the control plane.

Nothing here runs unless a scenario schedules an event: steady-state runs pay nothing.
"""

from __future__ import annotations

import simpy

from npsim.cluster.model import Cluster, Pod
from npsim.scenario.faultplan import (
    FaultPlan,
    KubeletStop,
    KubeProxyStop,
    NodeCrash,
    Outage,
    PodCrash,
    PodHang,
    PodSlowdown,
)
from npsim.sim.controlplane import ControlPlane
from npsim.sim.network import NodeNetwork


class FaultInjector:
    """Acts out a fault plan on the run's clock (the plan's ``FaultActions``)."""

    def __init__(self, env: simpy.Environment, cluster: Cluster, control: ControlPlane,
                 network: NodeNetwork) -> None:
        self.env = env
        self.cluster = cluster
        self.control = control
        self.kubelets = control.kubelets
        self.network = network

    def schedule(self, plan: FaultPlan) -> None:
        for outage in plan:
            self.env.timeout(outage.at).callbacks.append(
                lambda _e, o=outage: o.begin(self))
            if outage.until is not None:
                self.env.timeout(outage.until).callbacks.append(
                    lambda _e, o=outage: self._end(o))

    def _end(self, outage: Outage) -> None:
        outage.end(self)

    def _pod(self, name: str) -> Pod:
        return next(p for p in self.cluster.pods if p.name == name)

    # --- the plan's actions ---------------------------------------------------------

    def scale(self, deployment: str, replicas: int) -> None:
        self.control.scale(deployment, replicas)

    def rollout(self, deployment: str) -> None:
        self.control.rollout(deployment)

    def node_lost(self, outage: NodeCrash) -> None:
        node = self.cluster.node_index(outage.node)
        control = self.control
        control.record(outage.started, outage.node)
        self.network.go_down(node)
        self.kubelets.node_lost(node, processes_die=True, partitioned=outage.partitioned)
        control.kubelet_stopped(node)
        control.freeze(node, True)

    def node_back(self, outage: NodeCrash) -> None:
        node = self.cluster.node_index(outage.node)
        control = self.control
        control.record(outage.ended, outage.node)
        self.network.come_up(node)
        # a rebooted node restarts its pods; a healed one finds them where they were
        self.kubelets.node_returns(node, restart=not outage.partitioned)
        control.kubelet_started(node)
        control.freeze(node, False)

    def kubelet_stop(self, outage: KubeletStop) -> None:
        node = self.cluster.node_index(outage.node)
        self.control.record(outage.started, outage.node)
        self.kubelets.node_lost(node, processes_die=False)
        self.control.kubelet_stopped(node)

    def kubelet_start(self, outage: KubeletStop) -> None:
        node = self.cluster.node_index(outage.node)
        self.control.record(outage.ended, outage.node)
        self.kubelets.node_returns(node, restart=False)
        self.control.kubelet_started(node)

    def kube_proxy_stop(self, outage: KubeProxyStop) -> None:
        node = self.cluster.node_index(outage.node)
        self.control.record(outage.started, outage.node, "rules frozen at the last sync")
        self.control.freeze(node, True)

    def kube_proxy_start(self, outage: KubeProxyStop) -> None:
        node = self.cluster.node_index(outage.node)
        self.control.record(outage.ended, outage.node)
        self.control.freeze(node, False)

    def pod_crash(self, outage: PodCrash) -> None:
        pod = self._pod(outage.pod)
        if outage.runs_for is not None:
            until = outage.until if outage.until is not None else float("inf")
            self.kubelets.crash_loop[pod.index] = (outage.runs_for, until)
        self.kubelets.crash(pod, "fault injected")

    def crash_loop_end(self, outage: PodCrash) -> None:
        self.kubelets.crash_loop.pop(self._pod(outage.pod).index, None)
        self.control.record("crash_loop_end", outage.pod)

    def pod_hang(self, outage: PodHang) -> None:
        self.kubelets.hang(self._pod(outage.pod), outage.until)

    def pod_slowdown(self, outage: PodSlowdown) -> None:
        self.kubelets.slow_down(self._pod(outage.pod), outage.factor, outage.until)
