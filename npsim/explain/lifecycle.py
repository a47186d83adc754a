"""The control plane's view of a failed node at ``explain --at T``: where it is on the
Kubernetes timeline of a node that stops renewing its lease.

Upstream (kube-controller-manager ``pkg/controller/nodelifecycle``, ``monitorNodeHealth``):
the kubelet renews its Lease every 10 s; a node whose lease is older than
``--node-monitor-grace-period`` (40 s up to v1.31, 50 s from v1.32) turns ``Unknown`` at
the controller's next monitor pass, and its pods are marked NotReady
(``MarkPodsNotReady``), so the EndpointSlices drop them and every kube-proxy follows at its
next sync. One pass later the node gets the ``node.kubernetes.io/unreachable:NoExecute``
taint (rate-limited per zone), and the taint manager deletes each pod once its
``tolerationSeconds`` (300 s, added by the DefaultTolerationSeconds admission plugin) run
out; the ReplicaSet then places a replacement on a healthy node.

Without these lines, ``--at 105s`` said only that nothing answers a dead node's pods, and
``--at 200s`` on a healthy node said nothing of the dead one: not when its endpoints go,
nor when its pods are replaced. The times come from the run's own event log (what
happened) and from the controller's timers and lease phase (what is due, as the run
would do it: npsim/sim/eviction.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from npsim.cluster.lifecycle import eviction_delay, last_renewal_before, unknown_at
from npsim.cluster.placement import pod_needs
from npsim.sim.eviction import UNREACHABLE, UNREACHABLE_TAINT

if TYPE_CHECKING:
    from npsim.sim.controlplane import ControlPlane
    from npsim.sim.timeline import EventLog

#: the faults that stop a node's kubelet renewing its lease (the event that starts them)
LEASE_STOPS = ("node_crash", "node_partition", "kubelet_stop")


def _last(log: EventLog, at: float, kinds: tuple[str, ...], subject: str) -> float | None:
    """The time of the latest event of ``kinds`` about ``subject`` up to ``at``."""
    for i in range(len(log) - 1, -1, -1):
        if log.time[i] <= at and log.kind[i] in kinds and log.subject[i] == subject:
            return float(log.time[i])
    return None


def _s(t: float) -> str:
    return f"{t:.2f} s"


def _delays(control: ControlPlane, node: int) -> dict[float, list[str]]:
    """The node's pods by seconds from the taint to their eviction (their own
    tolerations of it, or the default), as npsim/sim/eviction.py schedules them."""
    out: dict[float, list[str]] = {}
    for pod in control.cluster.pods:
        if pod.node == node and pod.index in control.in_api:
            delay = eviction_delay(pod_needs(control.deployments.get(pod.deployment))
                                   .tolerations, UNREACHABLE_TAINT,
                                   control.timing.toleration_seconds)
            out.setdefault(delay, []).append(pod.name)
    return out


def _evictions(control: ControlPlane, node: int, at: float, tainted: float | None) -> str:
    """``its pods are evicted at 415.03 s (tolerationSeconds 300 s)``, or, before the
    taint, how long after it; per group of pods when their tolerations differ."""
    delays = _delays(control, node) or {control.timing.toleration_seconds: []}
    parts = []
    for delay, pods in sorted(delays.items()):
        who = "its pods" if len(delays) == 1 else ", ".join(pods)
        if delay == math.inf:
            parts.append(f"{who} never evicted (they tolerate the taint with no "
                         "tolerationSeconds)")
        elif tainted is None:
            parts.append(f"{who} evicted {delay:g} s after the taint (tolerationSeconds)")
        else:
            verb = "were" if tainted + delay <= at else "are"
            parts.append(f"{who} {verb} evicted at {_s(tainted + delay)} (tolerationSeconds "
                         f"{delay:g} s)")
    return "; ".join(parts)


def lifecycle_lines(at: float, control: ControlPlane, log: EventLog) -> Iterable[str]:
    """One comment line per node the node lifecycle controller is acting on at ``at``:
    lease lost but not yet noticed (when it will be), Unknown (when the taint comes),
    tainted (when its pods are evicted, or were). ``log``: the run's events so far."""
    lifecycle = control.lifecycle
    timing = control.timing
    for node in control.cluster.nodes:
        health = lifecycle.health[node.index]
        if health.kubelet_up and health.condition == "Ready":
            continue
        name = node.name
        stopped = _last(log, at, LEASE_STOPS, name)
        grace = (f"node-monitor-grace-period {timing.grace_period:g} s after its last lease "
                 "renewal")
        if health.condition == "Ready":  # the lease stopped; the controller has not seen it
            if stopped is None or health.first_renewal is None:
                continue
            last = last_renewal_before(stopped, health.first_renewal,
                                       timing.lease_renew_interval)
            due = unknown_at(last, lifecycle.monitor_first_tick, timing)
            yield (f"# control plane: {name} renews no lease since {_s(last)}; it is still "
                   f"Ready to the API server and its pods still ready endpoints until "
                   f"{_s(due)} ({grace}), when it turns Unknown and its pods NotReady; "
                   f"then the {UNREACHABLE} taint: "
                   + _evictions(control, node.index, at, None))
            continue
        unknown = _last(log, at, ("node_unknown",), name)
        since = f" since {_s(unknown)}" if unknown is not None else " (down from the start)"
        tainted = _last(log, at, ("taint_added",), name) if health.tainted else None
        zone = lifecycle.zones[node.zone]
        if health.kubelet_up:  # back: Ready again at the controller's next monitor pass
            yield (f"# control plane: {name} renews its lease again; Unknown{since} until "
                   "the controller's next monitor pass sees it Ready"
                   + (f" and removes the {UNREACHABLE} taint" if health.tainted else ""))
        elif not health.tainted and (lifecycle.stopped or zone.limiter.qps <= 0):
            why = ("every zone is fully disrupted: evictions stopped" if lifecycle.stopped
                   else f"zone {node.zone} is {zone.state.value}: taint rate 0/s")
            yield (f"# control plane: {name} is Unknown{since} ({grace}): its pods are "
                   f"NotReady, out of the endpoints; no taint and no eviction while {why}")
        elif not health.tainted:
            yield (f"# control plane: {name} is Unknown{since} ({grace}): its pods are "
                   f"NotReady, out of the endpoints; it gets the {UNREACHABLE} taint at the "
                   "next monitor pass its zone's rate limit allows: "
                   + _evictions(control, node.index, at, None))
        elif tainted is None:  # down before the run: the steady state is held
            yield (f"# control plane: {name} is Unknown and tainted {UNREACHABLE} from the "
                   "start (down for the whole run): its pods are NotReady, out of the "
                   "endpoints, and not evicted within the run")
        else:
            yield (f"# control plane: {name} is Unknown{since}, tainted {UNREACHABLE} at "
                   f"{_s(tainted)}: " + _evictions(control, node.index, at, tainted))
