"""The scenario text: ordinary YAML a user edits, every default said in a comment.

Sections are emitted in the order of the scenario reference (cluster, manifests,
workloads, clients, run). Manifests go through libyaml's emitter (tens of thousands of
lines for a large cluster); the short sections are written line by line so the comments
sit next to the values they explain.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml

from npsim.importer.inventory import DEFAULT_MIN_SYNC, Inventory, KubeProxyConfig
from npsim.importer.plan import (
    DEFAULT_RATE,
    DEFAULT_SERVICE_TIME,
    CallLine,
    ScenarioPlan,
    WorkloadPlan,
)
from npsim.units import format_duration
from npsim.version import __version__

DEFAULT_RANGE = (30000, 32767)  # kube-apiserver --service-node-port-range default
MARKER = "# npsim-import:"  # first line of a file npsim import wrote; --force needs it
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def scalar(value: Any) -> str:
    """A YAML flow scalar: numbers and booleans bare, strings double-quoted when needed."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = str(value)
    if text and all(c.isalnum() or c in "-_./" for c in text) and not _ambiguous(text):
        return text
    return json.dumps(text)


_RESOLVER = yaml.resolver.Resolver()


def _ambiguous(text: str) -> bool:
    """Plain text YAML would read as something else (a number, bool, null)."""
    return _RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str"


def flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{scalar(k)}: {_flow_value(v)}" for k, v in mapping.items()) + "}"


def _flow_value(value: Any) -> str:
    if isinstance(value, dict):
        return flow(value)
    if isinstance(value, list):
        return "[" + ", ".join(_flow_value(v) for v in value) + "]"
    return scalar(value)


def _duration(seconds: float) -> str:
    return format_duration(seconds)


def render(name: str, sources: list[str], inv: Inventory,
           plan: ScenarioPlan) -> tuple[str, str]:
    """The scenario text, and the same text with an empty manifests list (the part
    written by hand here, for a quick check that it reads back as meant)."""
    out: list[str] = [
        f"{MARKER} written by npsim {__version__} import from {', '.join(sources)}",
        "# An ordinary scenario: edit it freely (remove the line above and npsim import",
        "# --force will no longer replace this file). What the dump cannot say (load,",
        "# service times, how long to run) is a commented default below.",
        f"name: {scalar(name)}",
        f"description: {scalar(_description(sources, plan))}",
        "cluster:",
    ]
    out += _kube_proxy_lines(inv.kube_proxy)
    out += _cidr_lines(inv.kube_proxy, plan)
    out.append("  nodes:")
    for node in plan.nodes:
        marks = []
        if node.ready != "True":
            marks.append(f"NotReady (Ready condition: {node.ready})")
        if node.unschedulable:
            marks.append("cordoned (spec.unschedulable)")
        if node.taints:
            marks.append("taints " + ", ".join(node.taints))
        if marks:
            out.append(f"    # {'; '.join(marks)}: kube-proxy still programs it; the "
                       "scheduler places no pod there")
        entry: dict[str, Any] = {"name": node.name}
        if node.zone:
            entry["zone"] = node.zone
        if node.cpu:
            entry["cpu"] = node.cpu
        if node.memory:
            entry["memory"] = node.memory
        if node.max_pods:
            entry["maxPods"] = node.max_pods
        entry["address"] = node.address
        if node.pod_cidr:
            entry["podCIDR"] = node.pod_cidr
        if node.unschedulable:
            entry["unschedulable"] = True
        if node.labels:  # what nodeSelector and node affinity match
            entry["labels"] = node.labels
        if node.taint_specs:
            entry["taints"] = node.taint_specs
        out.append(f"    - {flow(entry)}")
    head = out
    text = yaml.dump(plan.manifests, Dumper=_DUMPER, sort_keys=False,
                     default_flow_style=False, width=100)
    manifests = ["manifests:", *("  " + line for line in text.splitlines())]
    out = _workload_lines(plan)
    out += _client_lines(plan)
    out += [
        "run:",
        "  duration: 60s  # default: long enough for a steady state at these rates",
        "  warmup: 5s     # default",
        "  seed: 1",
    ]
    return ("\n".join([*head, *manifests, *out]) + "\n",
            "\n".join([*head, "manifests: []", *out]) + "\n")


def _description(sources: list[str], plan: ScenarioPlan) -> str:
    services = sum(1 for m in plan.manifests if m["kind"] == "Service")
    return (f"imported from {', '.join(sources)}: {len(plan.nodes)} nodes, {services} "
            f"Services, {len(plan.workloads)} workloads")


def _kube_proxy_lines(kp: KubeProxyConfig) -> list[str]:
    min_sync = kp.min_sync_period if kp.min_sync_period is not None else DEFAULT_MIN_SYNC[
        kp.mode]
    if kp.source:
        lines = [f"  # kube-proxy settings from the {kp.source}"]
        if kp.min_sync_period is None:
            lines.append(f"  # ({kp.mode}.minSyncPeriod not set: kube-proxy's default "
                         f"{_duration(min_sync)})")
    else:
        lines = ["  # no kube-proxy ConfigMap in the dump: kube-proxy's defaults (iptables "
                 "mode, minSyncPeriod 1s,", "  # syncPeriod 30s). Add `kubectl -n kube-system "
                 "get configmap kube-proxy -o yaml`."]
    lines.append(f"  proxyMode: {kp.mode}")
    if kp.mode == "ipvs":
        lines.append(f"  ipvs: {{scheduler: {kp.scheduler}}}")
    addresses = ("" if not kp.node_port_addresses else
                 f", nodePortAddresses: [{', '.join(kp.node_port_addresses)}]")
    lines.append(f"  kubeProxy: {{minSyncPeriod: {_duration(min_sync)}{addresses}}}")
    if kp.source and not kp.node_port_addresses:
        lines.append("  # nodePortAddresses not set: the mode's default (every node address; "
                     "nftables: the primary one)")
    lines.append(f"  # syncPeriod: {_duration(kp.sync_period)} (periodic full resync; "
                 "not simulated)")
    return lines


def _cidr_lines(kp: KubeProxyConfig, plan: ScenarioPlan) -> list[str]:
    """clusterCIDR from kube-proxy's configuration; the NodePort range from the dump's own
    nodePorts (kube-apiserver's --service-node-port-range is not in any object)."""
    ipv4 = [c for c in (kp.cluster_cidr or "").split(",") if _is_ipv4_network(c)]
    if ipv4:
        lines = [f"  clusterCIDR: {ipv4[0]}  # kube-proxy clusterCIDR"]
    else:
        lines = ["  # clusterCIDR not set in kube-proxy's configuration: npsim uses the smallest "
                 "network holding", "  # every node's podCIDR"]
    ports = [p["nodePort"] for m in plan.manifests if m["kind"] == "Service"
             for p in m["spec"].get("ports", []) if p.get("nodePort")]
    lo, hi = min([DEFAULT_RANGE[0], *ports]), max([DEFAULT_RANGE[1], *ports])
    if (lo, hi) == DEFAULT_RANGE:
        lines.append(f"  serviceNodePortRange: {lo}-{hi}  # kube-apiserver's default: every "
                     "nodePort of the dump fits it")
    else:
        lines.append(f"  serviceNodePortRange: {lo}-{hi}  # the smallest range holding the "
                     "dump's nodePorts: check --service-node-port-range")
    return lines


def _is_ipv4_network(text: str) -> bool:
    try:
        return ipaddress.ip_network(text.strip(), strict=True).version == 4
    except ValueError:
        return False


def _workload_lines(plan: ScenarioPlan) -> list[str]:
    out = ["workloads:",
           "  # serviceTime and workers are not in the dump: defaults are exponential "
           f"{_duration(DEFAULT_SERVICE_TIME)} and 1 worker",
           "  # unless --service-times gave them (marked 'measured')."]
    for w in plan.workloads:
        out += [f"  # {line}" for line in w.comment]
        out.append(f"  {scalar(w.name)}:")
        out.append(f"    workers: {w.workers}")
        note = "measured" if w.measured else "default"
        out.append(f"    serviceTime: {{dist: exponential, mean: {_duration(w.service_time)}}}"
                   f"  # {note}")
        if w.namespace is not None:
            out.append(f"    namespace: {scalar(w.namespace)}")
        if w.labels is not None:
            out.append(f"    labels: {flow(w.labels)}")
        if w.scheduled:
            out.append("    placement: scheduler  # new pods go where kube-scheduler would "
                       "put them")
        if w.pods is not None:
            out.append("    pods:")
            out += [f"      - {flow(pod)}" for pod in w.pods]
        out += _call_lines(w)
    return out


def _call_lines(w: WorkloadPlan) -> list[str]:
    """``--calls`` rows as the workload's ``calls:``; else the calls its env proposes,
    commented out so that deleting each line's ``# `` confirms them (README, "Pods that
    call Services")."""
    if w.calls:
        return ["    calls:  # set by --calls, in row order", *(
            f"      - {_call(c)}" for c in w.calls)]
    if not w.proposed and not w.call_notes:
        return []
    out = ["    # calls proposed from the pods' env: to confirm, delete the '# ' before calls: "
           "and before", "    # each call kept (the env says whom a pod can call, not how "
           "often or in which order)"]
    out += [f"    # {note}" for note in w.call_notes]
    if w.proposed:
        out.append("    # calls:")
        out += [f"    #   - {_call(c)}" for c in w.proposed]
    return out


def _call(c: CallLine) -> str:
    entry: dict[str, Any] = {"service": c.service, "port": c.port}
    if c.count != 1:
        entry["count"] = c.count
    return f"{flow(entry)}  # {c.note}"


def _client_lines(plan: ScenarioPlan) -> list[str]:
    out = ["clients:",
           "  # one population per NodePort/LoadBalancer Service with endpoints (and per",
           f"  # --rates row of a ClusterIP Service). Rates not in --rates: {DEFAULT_RATE:g}/s."]
    for c in plan.clients:
        out.append(f"  - name: {scalar(c.name)}")
        out.append(f"    service: {scalar(c.service)}")
        out.append(f"    arrival: {{rate: {c.rate:g}/s}}  # "
                   + ("measured (--rates)" if c.measured else "default"))
        if c.cluster_ip_from is not None:
            out.append(f"    source: {{pod: {scalar(c.cluster_ip_from)}}}  # in-cluster "
                       "clients of a ClusterIP Service")
            out.append("    target: clusterIP")
        else:
            out.append("    entry: random  # default: an even L4 balancer over every node")
    return out
