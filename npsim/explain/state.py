"""What the run's parts say at time t, for ``npsim explain --at``.

``explain --at T`` runs the scenario up to T (:meth:`Simulation.advance`, then what is
due at T itself) and reads the state off the run's parts through their declared
interfaces, never their private fields:

* the node network (:class:`~npsim.sim.network.NodeNetwork`): whether a node answers,
  and when a retransmitted SYN to a silent node gets through;
* the control plane: whether a node's kube-proxy runs (``proxy_running``), each
  node's sync history (``ready_history``: its last sync), the latest EndpointSlices
  (``published``);
* the pod registry's servers: the lifecycle flags the engine itself reads (``alive``,
  ``hung``, ``silent``);
* the event log (what happened to a pod, and when) and the fault plan (which outage
  silences a node or froze its kube-proxy, since when and until when).

:meth:`StateAt.outcome` decides what a client sees once kube-proxy's DNAT chose an
endpoint, in the order the engine's connect path does (npsim/sim/engine.py
``Simulation._connect``): a process that is gone answers with a reset, or with nothing
at all when its node or address is gone (SYNs unanswered until the client's connect
timeout); a hung process still accepts; the userspace proxy dials again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from npsim.cluster.model import ip_str
from npsim.explain.lifecycle import lifecycle_lines
from npsim.proxy.affinity import AffinityTable
from npsim.proxy.base import EndpointTable, KubeProxy
from npsim.proxy.rules.common import port_name_string
from npsim.scenario.faultplan import FaultPlan, KubeProxyStop, Outage
from npsim.sim.clients import connect_give_up

if TYPE_CHECKING:
    from npsim.sim.engine import Simulation

#: Linux ``net.ipv4.tcp_syn_retries`` default: a client with no scenario population
KERNEL_SYN_RETRIES = 6


class ClientTimeouts(NamedTuple):
    """The timeouts of the traced client: those of the scenario's first population that
    sends to the Service's NodePort, or the kernel's defaults when none does. Has what
    :meth:`NodeNetwork.syn_answered` reads of a population."""

    name: str | None
    syn_retries: int
    connect_timeout: float
    request_timeout: float | None
    syn_linear: int = 0  # tcp_syn_linear_timeouts of the client's kernel (npsim/sim/syn.py)

    def describe(self) -> str:
        who = f"population {self.name}" if self.name else "kernel default, 6 SYN retries"
        return f"{seconds(self.connect_timeout)} ({who})"


class Verdict(NamedTuple):
    """What the client sees of one new connection: a reason (``served``, ``held`` or a
    failure reason as the request log names it), after how long it learns of a failure,
    the endpoint finally used (-1: none) and why, in words."""

    reason: str
    wait: float
    endpoint: int
    why: str


def seconds(t: float) -> str:
    return f"{t:g} s"


class StateAt:
    """Nodes, kube-proxies and pods of a simulation advanced to ``at``."""

    def __init__(self, sim: Simulation, at: float) -> None:
        self.at = at
        self.cluster = sim.cluster
        self.network = sim.network
        self.control = sim.control
        self.servers = sim.registry.servers
        self.populations = sim.populations
        self.events = sim.events
        self.plan = FaultPlan.of(sim.scenario.spec.events)

    @classmethod
    def advance(cls, sim: Simulation, at: float) -> StateAt:
        """Run ``sim`` to ``at``, including what happens at ``at`` itself (a node that
        crashes at 60 s is down at ``--at 60s``)."""
        sim.advance(at)
        env = sim.env
        while env.peek() <= at:
            env.step()
        return cls(sim, at)

    # --- what the parts say ----------------------------------------------------------

    def client(self, service_port: int) -> ClientTimeouts:
        for pop in self.populations:
            if pop.service_port == service_port and pop.target == "nodePort":
                return ClientTimeouts(pop.name, pop.syn_retries, pop.connect_timeout,
                                      pop.request_timeout, pop.syn_linear)
        return ClientTimeouts(None, KERNEL_SYN_RETRIES,
                              connect_give_up(KERNEL_SYN_RETRIES, None), None)

    def _outage(self, node: int, silences: bool) -> Outage | None:
        """The latest outage of the plan covering ``at`` that silences ``node`` (or, with
        ``silences`` False, that stops its kube-proxy: a stop, a crash, a partition)."""
        name = self.cluster.nodes[node].name
        found = None
        for outage in self.plan:
            if getattr(outage, "node", None) != name or not (
                    outage.at <= self.at and (outage.until is None or self.at < outage.until)):
                continue
            if outage.silences_node or (not silences and isinstance(outage, KubeProxyStop)):
                found = outage
        return found

    def _down_words(self, node: int) -> str:
        """``down since 60 s (nodeCrash)`` (or cut off, for a partition)."""
        outage = self._outage(node, True)
        if outage is None:
            return "down"
        how = "cut off" if getattr(outage, "partitioned", False) else "down"
        back = "" if outage.until is None else f", back at {seconds(outage.until)}"
        return f"{how} since {seconds(outage.at)} ({outage.key}{back})"

    def node_down(self, node: int) -> str:
        """``node-2 is down since 60 s (nodeCrash)``."""
        return f"{self.cluster.nodes[node].name} is {self._down_words(node)}"

    def last_sync(self, node: int) -> float:
        return self.control.ready_history()[node][-1][0]

    def _pod_event(self, name: str) -> str:
        """The pod's last event up to ``at``, e.g. ``pod_crash at 45 s: fault injected``."""
        log = self.events
        for i in range(len(log) - 1, -1, -1):
            if log.subject[i] == name and log.time[i] <= self.at:
                detail = f": {log.detail[i]}" if log.detail[i] else ""
                return f"{log.kind[i]} at {seconds(log.time[i])}{detail}"
        return ""

    # --- the node's header -----------------------------------------------------------

    def node_lines(self, proxy: KubeProxy, service: str | None) -> Iterable[str]:
        """Comment lines above the node's rules: the node down, its kube-proxy stopped
        (rules frozen since when), endpoints in the rules that cannot take a new
        connection, ready endpoints the rules do not have yet."""
        node = proxy.node.index
        name = proxy.node.name
        if not self.network.answers(node):
            yield (f"# {self.node_down(node)}: packets to {ip_str(proxy.node.ip)} are "
                   "lost; nothing below answers while it is down")
        yield from self.balancer_lines(node, service)
        if not self.control.proxy_running(node):
            outage = self._outage(node, False)
            since = (f" since {seconds(outage.at)} ({outage.key})" if outage is not None
                     else "")
            yield (f"# kube-proxy on {name} is not running{since}: these rules are FROZEN "
                   f"as of its last sync at {seconds(self.last_sync(node))}; endpoint "
                   "changes since then are not applied")
        elif (self.at > 0 and self.last_sync(node) > 0):
            yield f"# kube-proxy on {name} last synced at {seconds(self.last_sync(node))}"
        # failed nodes as the control plane sees them
        yield from lifecycle_lines(self.at, self.control, self.events)
        for sp in self.cluster.service_ports:
            if service not in (None, sp.service.name) or sp.index not in proxy.tables:
                continue
            table = proxy.tables[sp.index]
            for i in range(table.n):
                why = self.cannot_serve(table.pods[i])
                if why:
                    yield (f"# {port_name_string(sp)}: {table.keys[i]} is in these rules, "
                           f"but {why}")
            ready = self.control.published(sp.index).ready
            missing = [e for e in ready if e.key not in table.index_of]
            if missing:
                names = ", ".join(f"{self.cluster.pods[e.pod].name} ({e.key})"
                                  for e in missing)
                yield f"# {port_name_string(sp)}: ready but not in these rules yet: {names}"

    def balancer_lines(self, node: int, service: str | None) -> Iterable[str]:
        """What each population's external balancer makes of the node: in rotation or
        out (since when, why), and how many active checks in a row failed so far."""
        name = self.cluster.nodes[node].name
        for pop in self.populations:
            lb = pop.balancer
            if lb is None or service not in (
                    None, self.cluster.service_ports[pop.service_port].service.name):
                continue
            head = f"# balancer of population {pop.name}: {name} is"
            hc = lb.spec.health_check
            if not lb.usable(node, self.at) and node not in lb.avoid:
                others = [self.cluster.nodes[k].name for k in range(lb.n)
                          if lb.usable(k, self.at)]
                # up by its active checks, yet out: its passive checks, for fail_timeout
                until = f" until {seconds(lb.out_until[node])}" if lb.up[node] else ""
                yield (f"{head} OUT of rotation{until} ({self._lb_event(pop.name, name)}); "
                       "its new connections enter through "
                       f"{', '.join(others) if others else 'no node: every node is out'}")
            elif hc is None:
                yield f"{head} in rotation (no active health checks)"
            else:
                _, failed = lb.check_runs(node)
                so_far = (f"; {failed} {lb.check_name} check(s) in a row failed so far "
                          f"(out at {hc.fall})" if failed else
                          f"; its {lb.check_name} checks pass")
                yield (f"{head} in rotation (checked every {seconds(hc.interval)}, "
                       f"timeout {seconds(hc.timeout)}){so_far}")

    def _lb_event(self, population: str, node: str) -> str:
        """``lb_mark_down at 65 s: 3 nodePort check(s) failed``: the balancer's last
        verdict on ``node`` up to ``at``."""
        log = self.events
        for i in range(len(log) - 1, -1, -1):
            if (log.kind[i] in ("lb_mark_down", "lb_mark_up") and log.subject[i] == node
                    and log.time[i] <= self.at
                    and str(log.detail[i]).startswith(f"{population}: ")):
                why = str(log.detail[i]).removeprefix(f"{population}: ")
                return f"{log.kind[i]} at {seconds(log.time[i])}: {why}"
        return "marked down"

    def cannot_serve(self, pod: int) -> str:
        """Why a new connection DNATed to ``pod`` cannot be served, in words; '' if it
        can."""
        server = self.servers[pod]
        p = self.cluster.pods[pod]
        if server.alive:
            return ""
        if server.hung:
            return (f"{p.name} is hung ({self._pod_event(p.name)}): it accepts connections "
                    "and answers nothing while it hangs" + self._hang_seen(pod))
        return self._gone_words(pod)

    def _hang_seen(self, pod: int) -> str:
        """When the kubelet's probes see the hang (as the run schedules it): readiness
        takes it out of the endpoints, liveness restarts it; or that no probe will."""
        p = self.cluster.pods[pod]
        log = self.events
        since = next((log.time[i] for i in range(len(log) - 1, -1, -1)
                      if log.kind[i] == "pod_hang" and log.subject[i] == p.name
                      and log.time[i] <= self.at), None)
        if since is None:
            return ""
        not_ready, killed = self.control.kubelets.hang_seen(p, since)
        out = []
        if not_ready is None:
            out.append("it has no readiness probe: it stays a ready endpoint while it hangs")
        elif not_ready > self.at:
            out.append(f"its readiness probe marks it NotReady at {not_ready:.2f} s (its "
                       "failureThreshold-th failure since the hang), out of the endpoints")
        out.append("no liveness probe restarts it" if killed is None else
                   f"its liveness probe restarts it at {killed:.2f} s")
        return "; " + "; ".join(out)

    def _gone_words(self, pod: int) -> str:
        server = self.servers[pod]
        p = self.cluster.pods[pod]
        if server.silent:
            if not self.network.answers(p.node):
                return (f"{p.name}'s node {self.node_down(p.node)}: nothing answers "
                        "its SYNs")
            if p.deleted_at is not None:
                return (f"{p.name} was deleted at {seconds(p.deleted_at)}: its address "
                        f"{ip_str(p.ip)} answers nothing")
            return f"{p.name} answers nothing ({self._pod_event(p.name)})"
        event = self._pod_event(p.name)
        return (f"{p.name}'s process is not listening ({event}): its node answers the SYN "
                "with a reset")

    # --- what the client sees ----------------------------------------------------------

    def entry_down(self, node: int, client: ClientTimeouts) -> Verdict | None:
        """A new connection to ``node`` when it does not answer: its SYN is lost, and
        retransmitted until the client gives up (or the node is back first)."""
        if self.network.answers(node):
            return None
        down = self.node_down(node)
        late = self.network.syn_answered(client, node, self.at)  # type: ignore[arg-type]
        if late is None:
            return Verdict("connect_timeout", client.connect_timeout, -1,
                           f"{down}: the SYN and its retransmissions get no answer; the "
                           f"client gives up after its connect timeout of "
                           f"{client.describe()}: connect_timeout")
        return Verdict("late", late, -1,
                       f"{down}: the SYN retransmitted {seconds(late)} later gets through "
                       f"once it is back (see explain --at {self.at + late:g}s for the "
                       "rules then)")

    def outcome(self, proxy: KubeProxy, table: EndpointTable, choice: int, source: int,
                src_port: int, affinity: AffinityTable | None,
                client: ClientTimeouts) -> Verdict:
        """After the DNAT to endpoint ``choice``: what the client sees (the engine's
        order: a gone process, the userspace proxy's redial, a hung process)."""
        pod = table.pods[choice]
        server = self.servers[pod]
        prefix = ""
        if not server.alive and not server.hung:  # a hung process still accepts
            why = self._gone_words(pod)
            redialled = proxy.redial(table, choice, source, src_port, self.at,
                                     self.servers, affinity)
            if redialled is None:
                if server.silent:
                    return Verdict("connect_timeout", client.connect_timeout, -1,
                                   f"{why}; the client gives up after its connect timeout "
                                   f"of {client.describe()}: connect_timeout")
                return Verdict("connection_refused", 0.0, -1,
                               f"{why}: connection_refused")
            choice, waited = redialled
            if choice < 0:
                return Verdict("dial_failed", waited, -1,
                               f"{why}; kube-proxy dials the next endpoints in turn and "
                               f"every dial fails after {seconds(waited)}: dial_failed")
            pod = table.pods[choice]
            server = self.servers[pod]
            prefix = (f"{why}; kube-proxy dials again, after {seconds(waited)}, "
                      f"{table.keys[choice]}: ")
        p = self.cluster.pods[pod]
        where = f"{p.name} ({table.keys[choice]}) on {self.cluster.nodes[p.node].name}"
        if server.hung:
            wait = client.request_timeout
            then = (f"the client gives up after its request timeout of {seconds(wait)}: "
                    "request_timeout" if wait is not None else
                    "the client has no request timeout: it waits until the process "
                    "recovers or is restarted")
            return Verdict("request_timeout" if wait is not None else "held",
                           wait if wait is not None else 0.0, choice,
                           f"{prefix}the kernel of {self.cluster.nodes[p.node].name} "
                           f"completes the handshake, but {p.name} is hung "
                           f"({self._pod_event(p.name)}): the request gets no answer; "
                           + then)
        return Verdict("served", 0.0, choice,
                       f"{prefix}served by pod {where}" + self._serving_note(table, choice))

    def _serving_note(self, table: EndpointTable, choice: int) -> str:
        """A pod that serves but is not a ready endpoint any more (terminating: the
        fallback of KEP-1669, or rules that have not caught up)."""
        sp = table.service_port.index
        key = table.keys[choice]
        published = self.control.published(sp)
        if any(e.key == key for e in published.ready):
            return ""
        name = self.cluster.pods[table.pods[choice]].name
        event = self._pod_event(name)
        if any(e.key == key for e in published.terminating):
            if not published.ready:
                return (f", a terminating pod ({event}): no endpoint is ready, so "
                        "kube-proxy falls back to the serving, terminating ones (KEP-1669)")
            return (f", a terminating pod ({event}) this node's rules still list (ready "
                    "endpoints exist; its next sync drops it)")
        return f"; {name} is no longer a ready endpoint ({event}): this node's rules lag"
