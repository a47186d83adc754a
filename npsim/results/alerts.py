"""Prometheus-style alert rules, evaluated after the run over what it recorded.

Rules (scenario ``monitoring.alerts``) are evaluated every ``evaluationInterval`` as
Prometheus does: a rule whose condition holds becomes *pending*; it *fires* at the
first evaluation at which it has held continuously for at least ``for``; it
*resolves* at the first evaluation at which it no longer holds
(prometheus/rules/alerting.go ``AlertingRule.Eval``). Conditions:

* ``probe``: the blackbox exporter's last ``probe_success`` of a Node:NodePort is 0 —
  the tutorial's ``up{job="nodeport-services"} == 0`` with ``for: 30s`` (one alert
  instance per node);
* ``errorRatio``: failed / ended requests over the trailing ``window`` is above
  ``above`` (``rate(failed[w]) / rate(ended[w])``);
* ``latencyP99``: the 99th percentile latency of the requests completed in the trailing
  ``window`` is above ``above`` seconds.

Requests count when the client saw their end (``t_end``), as a client-side metric
would. Firing and resolving are recorded in the run's events (``alert_firing`` /
``alert_resolved``, subject ``<rule>`` or ``<rule>{node=...}``).
"""

from __future__ import annotations

import numpy as np

from npsim.outcomes import COMPLETED, FAILED
from npsim.scenario.schema import AlertSpec, MonitoringSpec
from npsim.sim.output import RunOutput

Transition = tuple[float, str, str, str]  # time, kind, subject, detail


def evaluation_times(interval: float, end_time: float) -> np.ndarray:
    """Every evaluation within the run: interval, 2 x interval, ... <= end_time."""
    return np.arange(1, int(end_time / interval + 1e-9) + 1, dtype=float) * interval


def transitions(times: np.ndarray, holds: np.ndarray, hold_for: float, subject: str,
                detail: str) -> list[Transition]:
    """Fire / resolve times of one alert instance from its condition at each evaluation."""
    out: list[Transition] = []
    active_since: float | None = None
    firing = False
    for t, cond in zip(times, holds, strict=True):
        if cond:
            if active_since is None:
                active_since = float(t)
            if not firing and t - active_since >= hold_for - 1e-9:
                firing = True
                out.append((float(t), "alert_firing", subject, detail))
        else:
            if firing:
                out.append((float(t), "alert_resolved", subject, detail))
            firing = False
            active_since = None
    return out


def _ended(out: RunOutput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_end, failed, latency) of the requests whose end the client saw in the run,
    ordered by t_end."""
    cols = out.log.columns()
    t_end = cols["t_end"]
    outcome = cols["outcome"]
    seen = (outcome != 0) & (t_end <= out.end_time)
    order = np.argsort(t_end[seen], kind="stable")
    ends = t_end[seen][order]
    failed = (outcome[seen] == FAILED)[order]
    latency = (t_end[seen] - cols["t_start"][seen])[order]
    completed = (outcome[seen] == COMPLETED)[order]
    latency[~completed] = np.nan
    return ends, failed, latency


def _traffic_condition(rule: AlertSpec, times: np.ndarray,
                       ended: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    ends, failed, latency = ended
    threshold = rule.error_ratio or rule.latency_p99
    assert threshold is not None
    lo = np.searchsorted(ends, times - threshold.window, side="right")
    hi = np.searchsorted(ends, times, side="right")
    if rule.error_ratio is not None:
        fails = np.concatenate([[0], np.cumsum(failed)])
        count = hi - lo
        ratio = np.divide(fails[hi] - fails[lo], count, out=np.zeros(len(times)),
                          where=count > 0)
        return ratio > threshold.above
    holds = np.zeros(len(times), dtype=bool)
    for k, (a, b) in enumerate(zip(lo, hi, strict=True)):
        window = latency[a:b]
        window = window[~np.isnan(window)]
        if len(window):
            holds[k] = np.quantile(window, 0.99) > threshold.above
    return holds


def alert_transitions(out: RunOutput, monitoring: MonitoringSpec) -> list[Transition]:
    """Every alert_firing / alert_resolved of one replication, in time order."""
    times = evaluation_times(monitoring.evaluation_interval, out.end_time)
    found: list[Transition] = []
    ended = None
    for rule in monitoring.alerts:
        if rule.probe is not None:
            box = out.probes[rule.name]
            t = np.asarray(box.time)
            node = np.asarray(box.node)
            ok = np.asarray(box.success, dtype=bool)
            ports = np.asarray(box.service_port)
            for sp in sorted(set(box.service_port)):
                for n, name in enumerate(nd.name for nd in out.cluster.nodes):
                    mine = (node == n) & (ports == sp)
                    samples, values = t[mine], ok[mine]
                    last = np.searchsorted(samples, times, side="right") - 1
                    down = (last >= 0) & ~values[np.maximum(last, 0)]
                    port = out.cluster.service_ports[sp].node_port
                    found += transitions(times, down, rule.for_, f"{rule.name}{{node={name}}}",
                                         f"probe_success == 0 on {name}:{port}")
            continue
        if ended is None:
            ended = _ended(out)
        what = ("error ratio" if rule.error_ratio is not None else "p99 latency")
        threshold = rule.error_ratio or rule.latency_p99
        assert threshold is not None
        found += transitions(times, _traffic_condition(rule, times, ended), rule.for_,
                             rule.name, f"{what} > {threshold.above:g} over "
                             f"{threshold.window:g}s")
    return sorted(found, key=lambda tr: tr[0])


def record_alerts(out: RunOutput, monitoring: MonitoringSpec | None) -> None:
    """Add the alert transitions to the run's events, keeping them in time order."""
    if monitoring is None or not monitoring.alerts:
        return
    events = out.events
    alerts = alert_transitions(out, monitoring)
    if not alerts:  # nothing fired: the log stays as it is
        return
    merged = sorted(
        [*zip(events.time, events.kind, events.subject, events.detail, strict=True), *alerts],
        key=lambda row: row[0])
    for column, values in zip(("time", "kind", "subject", "detail"), zip(*merged, strict=True),
                              strict=True):
        setattr(events, column, list(values))
