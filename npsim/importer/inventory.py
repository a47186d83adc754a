"""Sorting a dump's objects: what npsim reads, what it ignores (counted, never copied).

Nodes give name, InternalIP, pod CIDR, zone, allocatable CPU, memory and pods, labels,
readiness, taints and cordon (what the scheduler reads);
Services, EndpointSlices, Deployments and StatefulSets are checked with the scenario's own
manifest parsers (the API server's messages, located in the dump); the kube-proxy
ConfigMap (``kube-system/kube-proxy``, key ``config.conf``, a KubeProxyConfiguration)
gives mode, IPVS scheduler, sync periods, clusterCIDR and nodePortAddresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from npsim.importer.dump import DumpObject
from npsim.scenario.cluster_spec import check_node_port_addresses
from npsim.scenario.deployments import parse_deployment
from npsim.scenario.objects import Deployment, EndpointSlice, Service
from npsim.scenario.problems import Problems
from npsim.scenario.quantity import memory_bytes
from npsim.scenario.services import parse_service
from npsim.scenario.slices import parse_endpoint_slice

ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# KubeProxyConfiguration defaults (pkg/proxy/apis/config/v1alpha1/defaults.go)
DEFAULT_SYNC_PERIOD = 30.0
DEFAULT_MIN_SYNC = {"iptables": 1.0, "nftables": 1.0, "ipvs": 0.0}
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class NodeInfo:
    name: str
    address: str
    pod_cidr: str | None
    zone: str | None
    cpu: float | None
    ready: str  # "True", "False", "Unknown" or "missing"
    unschedulable: bool
    taints: list[str]
    # what the scheduler reads (placement: scheduler): allocatable memory and pods as the
    # dump gives them, labels, taints as {key, value, effect}
    memory: str | None = None
    max_pods: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taint_specs: list[dict[str, str]] = field(default_factory=list)


@dataclass
class KubeProxyConfig:
    """What the kube-proxy ConfigMap says (None: not in the dump, defaults apply)."""

    source: str | None = None
    mode: str = "iptables"
    scheduler: str = "rr"
    min_sync_period: float | None = None
    sync_period: float = DEFAULT_SYNC_PERIOD
    cluster_cidr: str | None = None
    node_port_addresses: list[str] = field(default_factory=list)


@dataclass
class Workload:
    """A Deployment or StatefulSet with what a scenario cannot take as a manifest."""

    deployment: Deployment
    kind: str
    probes: list[str]
    # (container, variable, value) of the pod template's plain ``env`` values, as
    # written (the calls importer reads them)
    env: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Inventory:
    nodes: list[NodeInfo] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    slices: list[EndpointSlice] = field(default_factory=list)
    workloads: list[Workload] = field(default_factory=list)
    network_policies: list[dict[str, Any]] = field(default_factory=list)
    kube_proxy: KubeProxyConfig = field(default_factory=KubeProxyConfig)
    ignored: Counter[str] = field(default_factory=Counter)
    filtered: int = 0
    notes: list[str] = field(default_factory=list)
    unproxied: set[tuple[str, str]] = field(default_factory=set)  # headless, ExternalName


def go_duration(text: Any) -> float:
    """Seconds in a Go duration (``1s``, ``500ms``, ``1m0s``) as kube-proxy's config has."""
    s = str(text).strip()
    if s in ("0", ""):
        return 0.0
    parts = _GO_DURATION.findall(s)
    if not parts or "".join(a + b for a, b in parts) != s:
        raise ValueError(f"expected a duration such as '1s', '500ms' or '1m0s', got {text!r}")
    return sum(float(a) * _GO_UNITS[b] for a, b in parts)


def cpu_quantity(text: Any) -> float:
    """CPUs in a resource quantity: ``4``, ``3500m``, ``0.5``."""
    s = str(text)
    if s.endswith("m"):
        return float(s[:-1]) / 1000
    return float(s)


def sort_objects(objects: list[DumpObject], namespace: str | None, service: str | None,
                 p: Problems) -> Inventory:
    inv = Inventory()
    quiet = Problems()  # unmodelled-field warnings: the importer writes clean manifests
    for obj in objects:
        kind = obj.kind
        namespaced = kind not in ("Node", "Namespace")
        if kind == "ConfigMap" and obj.name == "kube-proxy" and obj.namespace == "kube-system":
            inv.kube_proxy = _kube_proxy(obj, p)
            continue
        if kind not in ("Node", "Service", "EndpointSlice", *WORKLOAD_KINDS, "NetworkPolicy"):
            inv.ignored[kind] += 1
            continue
        if namespaced and namespace is not None and obj.namespace != namespace:
            inv.filtered += 1
            continue
        if kind == "Node":
            node = _node(obj, p)
            if node is not None:
                inv.nodes.append(node)
        elif kind == "Service":
            if service is not None and obj.name != service:
                inv.filtered += 1
                continue
            _service(obj, inv, p, quiet)
        elif kind == "EndpointSlice":
            if not str(obj.doc.get("apiVersion")).startswith("discovery.k8s.io/v1"):
                inv.ignored[f"EndpointSlice {obj.doc.get('apiVersion')}"] += 1
                continue
            if obj.doc.get("addressType") in ("IPv6", "FQDN"):  # dual-stack: the IPv4 half
                inv.ignored[f"EndpointSlice ({obj.doc['addressType']})"] += 1
                continue
            sl = _with_errors(parse_endpoint_slice, obj, p, quiet)
            if isinstance(sl, EndpointSlice):
                inv.slices.append(sl)
        elif kind in WORKLOAD_KINDS:
            dep = _with_errors(parse_deployment, obj, p, quiet)
            if isinstance(dep, Deployment):
                inv.workloads.append(Workload(dep, kind, _probes(obj.doc), _env(obj.doc)))
        else:
            inv.network_policies.append(_clean_policy(obj.doc))
    if service is not None:
        _keep_selected(inv, service)
    return inv


def _with_errors(parser: Any, obj: DumpObject, p: Problems, quiet: Problems) -> Any:
    """Run a scenario manifest parser on a dump object: errors located in the dump."""
    scratch = Problems()
    out = parser(obj.doc, scratch, obj.prefix, obj.prefix or obj.name)
    p.errors.extend(scratch.errors)
    quiet.warnings.extend(scratch.warnings)
    return out


def _service(obj: DumpObject, inv: Inventory, p: Problems, quiet: Problems) -> None:
    spec = obj.doc.get("spec")
    kind_of = spec.get("type") if isinstance(spec, dict) else None
    if kind_of == "ExternalName":
        inv.ignored["Service (ExternalName)"] += 1
        inv.unproxied.add((obj.namespace, obj.name))
        return
    if isinstance(spec, dict) and spec.get("clusterIP") == "None":
        inv.ignored["Service (headless)"] += 1  # kube-proxy programs nothing for it
        inv.unproxied.add((obj.namespace, obj.name))
        return
    svc = _with_errors(parse_service, obj, p, quiet)
    if isinstance(svc, Service):
        inv.services.append(svc)


def _keep_selected(inv: Inventory, service: str) -> None:
    """``--service``: that Service, its slices and the workloads it selects."""
    from npsim.scenario.objects import selector_matches

    keep = {(s.namespace, s.name) for s in inv.services}
    before = len(inv.slices) + len(inv.workloads) + len(inv.network_policies)
    inv.slices = [sl for sl in inv.slices if (sl.namespace, sl.service_name) in keep]
    inv.workloads = [w for w in inv.workloads if any(
        s.namespace == w.deployment.namespace
        and selector_matches(s.selector, w.deployment.pod_labels) for s in inv.services)]
    namespaces = {ns for ns, _ in keep}
    inv.network_policies = [n for n in inv.network_policies
                            if n["metadata"].get("namespace", "default") in namespaces]
    inv.filtered += before - len(inv.slices) - len(inv.workloads) - len(inv.network_policies)


def _node(obj: DumpObject, p: Problems) -> NodeInfo | None:
    doc, pre = obj.doc, obj.prefix
    status = doc.get("status") if isinstance(doc.get("status"), dict) else {}
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    labels = (doc.get("metadata") or {}).get("labels") or {}
    addresses = status.get("addresses")
    internal = [a.get("address") for a in addresses or [] if isinstance(a, dict)
                and a.get("type") == "InternalIP"] if isinstance(addresses, list) else []
    ipv4 = [a for a in internal if _is_ipv4(a)]
    if not ipv4:
        p.at(doc, ["status", "addresses"], "Required value: an InternalIP (IPv4) address "
             "for the node (status.addresses[].type: InternalIP)", pre)
        return None
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    pod_cidr = None
    for i, cidr in enumerate(cidrs if isinstance(cidrs, list) else [cidrs]):
        try:
            net = ipaddress.ip_network(str(cidr), strict=True)
        except ValueError:
            loc = ["spec", "podCIDRs", i] if spec.get("podCIDRs") else ["spec", "podCIDR"]
            p.at(doc, loc, f'Invalid value: "{cidr}": must be a valid CIDR', pre)
            return None
        if net.version == 4 and pod_cidr is None:
            pod_cidr = str(net)
    cpu = None
    allocatable = status.get("allocatable")
    if isinstance(allocatable, dict) and "cpu" in allocatable:
        try:
            cpu = cpu_quantity(allocatable["cpu"])
        except ValueError:
            p.at(doc, ["status", "allocatable", "cpu"],
                 f"expected a CPU quantity such as 4 or 3500m, got {allocatable['cpu']!r}", pre)
            return None
    memory, max_pods = None, None
    if isinstance(allocatable, dict) and "memory" in allocatable:
        try:
            memory_bytes(allocatable["memory"])
            memory = str(allocatable["memory"])
        except ValueError as exc:
            p.at(doc, ["status", "allocatable", "memory"], f"Invalid value: {exc}", pre)
            return None
    if isinstance(allocatable, dict) and str(allocatable.get("pods", "")).isdigit():
        max_pods = int(allocatable["pods"]) or None
    ready = "missing"
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            ready = str(cond.get("status"))
    taints = [f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:"
              f"{t.get('effect')}" for t in spec.get("taints") or [] if isinstance(t, dict)]
    taint_specs = [{k: str(t[k]) for k in ("key", "value", "effect") if t.get(k)}
                   for t in spec.get("taints") or [] if isinstance(t, dict)
                   and t.get("key") and t.get("effect") in (
                       "NoSchedule", "PreferNoSchedule", "NoExecute")]
    zone = next((str(labels[k]) for k in ZONE_LABELS if k in labels), None)
    return NodeInfo(obj.name, ipv4[0], pod_cidr, zone, cpu if cpu and cpu > 0 else None,
                    ready, bool(spec.get("unschedulable")), taints, memory, max_pods,
                    {str(k): str(v) for k, v in labels.items()}
                    if isinstance(labels, dict) else {}, taint_specs)


def _is_ipv4(text: Any) -> bool:
    try:
        ipaddress.IPv4Address(str(text))
    except ValueError:
        return False
    return True


def _kube_proxy(obj: DumpObject, p: Problems) -> KubeProxyConfig:
    """The KubeProxyConfiguration in the ConfigMap's ``config.conf``."""
    doc, pre = obj.doc, obj.prefix
    data = doc.get("data") or {}
    at = ["data", "config.conf"]
    out = KubeProxyConfig(source=f"ConfigMap kube-system/kube-proxy ({doc.mark.file}:"
                          f"{doc.mark.line})" if doc.mark else "ConfigMap kube-system/kube-proxy")
    if not isinstance(data, dict) or "config.conf" not in data:
        p.at(doc, at, "Required value: the KubeProxyConfiguration (kubeadm's key "
             "config.conf)", pre)
        return out
    try:
        conf = yaml.safe_load(str(data["config.conf"])) or {}
    except yaml.YAMLError as exc:
        p.at(doc, at, f"not a YAML KubeProxyConfiguration: {exc}", pre)
        return out
    if not isinstance(conf, dict):
        p.at(doc, at, "expected a KubeProxyConfiguration mapping", pre)
        return out
    mode = conf.get("mode") or "iptables"  # "" means the platform default: iptables
    if mode not in ("iptables", "ipvs", "nftables"):
        p.at(doc, at, f'mode: Unsupported value: "{mode}": npsim simulates "iptables", '
             '"ipvs" and "nftables" (Linux kube-proxy)', pre)
        return out
    out.mode = mode
    section = conf.get(mode) if isinstance(conf.get(mode), dict) else {}
    try:
        if section.get("minSyncPeriod") is not None:
            out.min_sync_period = go_duration(section["minSyncPeriod"])
        if section.get("syncPeriod") is not None:
            out.sync_period = go_duration(section["syncPeriod"])
    except ValueError as exc:
        p.at(doc, at, f"{mode}: {exc}", pre)
    ipvs = conf.get("ipvs") if isinstance(conf.get("ipvs"), dict) else {}
    out.scheduler = ipvs.get("scheduler") or "rr"
    if out.scheduler not in ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh"):
        p.at(doc, at, f'ipvs.scheduler: Unsupported value: "{out.scheduler}"', pre)
        out.scheduler = "rr"
    out.cluster_cidr = str(conf["clusterCIDR"]) if conf.get("clusterCIDR") else None
    out.node_port_addresses = _node_port_addresses(conf.get("nodePortAddresses"), doc, at,
                                                   pre, p)
    return out


def _node_port_addresses(value: Any, doc: Any, at: list[str], pre: str,
                         p: Problems) -> list[str]:
    """``nodePortAddresses`` for the IPv4 family, as kube-proxy reads it: its IPv6 CIDRs
    belong to the other family (NewNodePortAddresses filters by family, and a family left
    with none matches all: 0.0.0.0/0); a value kube-proxy's validation refuses is a
    problem of the dump (validateKubeProxyNodePortAddress)."""
    if not value:
        return []
    values = [str(a).strip() for a in value] if isinstance(value, list) else [str(value)]
    ipv4 = [v for v in values if v == "primary" or ":" not in v]
    try:
        check_node_port_addresses(ipv4)
    except ValueError as exc:
        p.at(doc, at, f"nodePortAddresses{exc}", pre)
        return []
    return ipv4 or ["0.0.0.0/0"]


def _probes(doc: dict) -> list[str]:
    """One line per probe of the pod template (kept as comments in the scenario)."""
    out = []
    containers = (((doc.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers") or []
    for container in containers:
        if not isinstance(container, dict):
            continue
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            probe = container.get(kind)
            if not isinstance(probe, dict):
                continue
            how = next((k for k in ("httpGet", "tcpSocket", "grpc", "exec") if k in probe), "?")
            target = probe.get(how) if isinstance(probe.get(how), dict) else {}
            what = f"{how} {target.get('path', '')}:{target.get('port', '')}".rstrip(":")
            timing = ", ".join(f"{k} {probe[k]}" for k in (
                "initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold")
                if k in probe)
            out.append(f"{container.get('name', '?')} {kind}: {what}"
                       + (f" ({timing})" if timing else ""))
    return out


def _env(doc: dict) -> list[tuple[str, str, str]]:
    """Each container's plain ``env`` values as written (``valueFrom`` is left out: a
    Secret or ConfigMap the dump may not hold)."""
    out: list[tuple[str, str, str]] = []
    spec = _mapping(_mapping(_mapping(doc.get("spec")).get("template")).get("spec"))
    containers = spec.get("containers")
    for container in containers if isinstance(containers, list) else []:
        if not isinstance(container, dict) or not isinstance(container.get("env"), list):
            continue
        for var in container["env"]:
            if (isinstance(var, dict) and isinstance(var.get("name"), str)
                    and isinstance(var.get("value"), str | int | float)):
                out.append((str(container.get("name", "?")), var["name"], str(var["value"])))
    return out


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _clean_policy(doc: dict) -> dict[str, Any]:
    """A NetworkPolicy as written by its author: name, namespace, labels and spec only
    (no status, managedFields, uid or other server-set metadata)."""
    from npsim.scenario.yamlio import plain

    meta = doc.get("metadata") or {}
    out: dict[str, Any] = {"apiVersion": doc.get("apiVersion"), "kind": "NetworkPolicy",
                           "metadata": {"name": meta.get("name"),
                                        "namespace": meta.get("namespace", "default")}}
    if meta.get("labels"):
        out["metadata"]["labels"] = plain(meta["labels"])
    out["spec"] = plain(doc.get("spec") or {})
    return out
