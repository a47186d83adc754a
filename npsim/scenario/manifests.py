"""Kubernetes Service and Deployment manifests, read as Kubernetes reads them.

Plain ``apiVersion/kind/metadata/spec`` documents load unchanged (the tutorial's
``nginx-nodeport`` among them). Fields that change traffic but that npsim does not model
yet produce a warning, never a failure; descriptive fields (labels, images, resources)
are accepted quietly. Validation messages follow the API server's wording where the
reference gives it (kubernetes-semantics.md section 6).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from npsim.scenario.problems import Problems
from npsim.scenario.yamlio import MarkedDict

NODEPORT_RANGE = (30000, 32767)  # kube-apiserver --service-node-port-range default
# v1.DefaultClientIPServiceAffinitySeconds; valid 1..86400 (MaxClientIPServiceAffinitySeconds)
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400
TOPOLOGY_ANNOTATIONS = ("service.kubernetes.io/topology-mode",
                        "service.kubernetes.io/topology-aware-hints")

# True: modelled; "quiet": accepted and ignored; a dict: look inside; anything else warns.
_SERVICE_FIELDS: dict[str, Any] = {
    "apiVersion": True,
    "kind": True,
    "metadata": {"name": True, "namespace": True, "labels": "quiet", "annotations": "quiet"},
    "spec": {
        "type": True,
        "selector": True,
        "ports": {
            "name": True,
            "protocol": True,
            "port": True,
            "targetPort": True,
            "nodePort": True,
            "appProtocol": "quiet",
        },
        "externalTrafficPolicy": True,
        "internalTrafficPolicy": True,
        "trafficDistribution": True,
        "sessionAffinity": True,
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": True}},
        "clusterIP": True,
        "clusterIPs": "quiet",
        "ipFamilies": "quiet",
        "ipFamilyPolicy": "quiet",
    },
    "status": "quiet",
}
_DEPLOYMENT_FIELDS: dict[str, Any] = {
    "apiVersion": True,
    "kind": True,
    "metadata": {"name": True, "namespace": True, "labels": "quiet", "annotations": "quiet"},
    "spec": {
        "replicas": True,
        "selector": True,
        "template": {
            "metadata": {"labels": True, "annotations": "quiet", "name": "quiet"},
            "spec": {
                "containers": {
                    "name": "quiet",
                    "image": "quiet",
                    "imagePullPolicy": "quiet",
                    "ports": True,
                    "resources": "quiet",
                    "env": "quiet",
                    "args": "quiet",
                    "command": "quiet",
                    "volumeMounts": "quiet",
                },
                "volumes": "quiet",
                "nodeSelector": "quiet",
            },
        },
        "strategy": "quiet",
        "revisionHistoryLimit": "quiet",
        "progressDeadlineSeconds": "quiet",
    },
    "status": "quiet",
}


@dataclass(frozen=True)
class ServicePort:
    name: str
    protocol: str
    port: int
    target_port: int | str
    node_port: int | None


@dataclass
class Service:
    name: str
    namespace: str
    type: str
    ports: tuple[ServicePort, ...]
    selector: dict[str, str]
    external_traffic_policy: str
    origin: str
    internal_traffic_policy: str = "Cluster"
    session_affinity: str = "None"
    affinity_timeout: int = DEFAULT_AFFINITY_TIMEOUT
    traffic_distribution: str | None = None
    topology_mode: str | None = None  # service.kubernetes.io/topology-mode annotation
    cluster_ip: str | None = None  # spec.clusterIP as written (None: not given, or headless)
    # hand-made EndpointSlices of a selector-less Service (attached by the loader)
    endpoint_slices: list[EndpointSlice] = field(default_factory=list)


@dataclass(frozen=True)
class ContainerPort:
    name: str | None
    container_port: int
    protocol: str


@dataclass
class Deployment:
    name: str
    namespace: str
    replicas: int
    pod_labels: dict[str, str]
    container_ports: tuple[ContainerPort, ...]
    origin: str
    match_labels: dict[str, str] = field(default_factory=dict)


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Equality-based selection as a Service selector does: every pair must be present.

    An empty Service selector selects nothing here: Kubernetes then manages no
    endpoints for the Service (they must be provided by hand), so no pod is chosen.
    """
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class SelectorIndex:
    """Deployments by (label key, value) of their pods: which of thousands of Deployments
    a Service selector selects, testing only those that share one of its pairs."""

    def __init__(self, deployments: Iterable[Deployment]) -> None:
        self._by_pair: dict[tuple[str, str], list[Deployment]] = {}
        for dep in deployments:
            for pair in dep.pod_labels.items():
                self._by_pair.setdefault(pair, []).append(dep)

    def selected(self, selector: dict[str, str]) -> list[Deployment]:
        """The Deployments whose pods ``selector`` selects, in the order given."""
        if not selector:
            return []
        candidates = min((self._by_pair.get(pair, []) for pair in selector.items()), key=len)
        return [d for d in candidates if selector_matches(selector, d.pod_labels)]


def pick_port(svc: Service, wanted: int | str | None) -> ServicePort | None:
    """The Service port a client aims at: by name, by port number, or the only/first one."""
    if wanted is None:
        return svc.ports[0] if svc.ports else None
    for port in svc.ports:
        if wanted in (port.name, port.port, port.node_port):
            return port
    return None


def _unmodelled(doc: Any, known: Any, loc: list[Any], out: list[list[Any]]) -> None:
    if known is True or known == "quiet":
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            _unmodelled(item, known, [*loc, i], out)
        return
    if not isinstance(doc, dict) or not isinstance(known, dict):
        return
    for key, value in doc.items():
        if key not in known:
            out.append([*loc, key])
        else:
            _unmodelled(value, known[key], [*loc, key], out)


def _expect(
    doc: MarkedDict, loc: list[Any], kind: type | tuple[type, ...], what: str, p: Problems, pre: str
) -> Any:
    node: Any = doc
    for step in loc:
        if (isinstance(node, dict) and step in node
                or isinstance(node, list) and isinstance(step, int) and step < len(node)):
            node = node[step]
        else:
            p.at(doc, loc, f"Required value: {what}", pre)
            return None
    if not isinstance(node, kind) or isinstance(node, bool) and kind is not bool:
        p.at(doc, loc, f"expected {what}, got {node!r}", pre)
        return None
    return node


def _labels(doc: MarkedDict, loc: list[Any], p: Problems, pre: str) -> dict[str, str]:
    value = _expect(doc, loc, dict, "a map of label keys to string values", p, pre)
    if value is None:
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            p.at(doc, [*loc, k], f"label values must be strings, got {v!r}", pre)
        else:
            out[str(k)] = str(v)
    return out


def parse_service(doc: MarkedDict, p: Problems, pre: str, origin: str) -> Service | None:
    n_errors = len(p.errors)
    name = _expect(doc, ["metadata", "name"], str, "the Service name", p, pre)
    namespace = doc.get("metadata", {}).get("namespace", "default")
    spec = _expect(doc, ["spec"], dict, "a spec", p, pre)
    if spec is None:
        return None
    svc_type = spec.get("type", "ClusterIP")
    if svc_type not in ("ClusterIP", "NodePort", "LoadBalancer"):
        p.at(
            doc,
            ["spec", "type"],
            f'Unsupported value: "{svc_type}": supported values: "ClusterIP", "LoadBalancer", '
            '"NodePort" (ExternalName has no endpoints to simulate)',
            pre,
        )
    policy = spec.get("externalTrafficPolicy", "Cluster")
    if policy not in ("Cluster", "Local"):
        p.at(doc, ["spec", "externalTrafficPolicy"],
             f'Unsupported value: "{policy}": supported values: "Cluster", "Local"', pre)
    elif policy == "Local" and svc_type == "ClusterIP":
        p.at(doc, ["spec", "externalTrafficPolicy"],
             'Invalid value: "Local": may only be set for externally-accessible services', pre)
    internal = spec.get("internalTrafficPolicy", "Cluster")
    if internal not in ("Cluster", "Local"):
        p.at(doc, ["spec", "internalTrafficPolicy"],
             f'Unsupported value: "{internal}": supported values: "Cluster", "Local"', pre)
    affinity, timeout = _affinity(doc, spec, p, pre)
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution not in TRAFFIC_DISTRIBUTIONS:
        p.at(doc, ["spec", "trafficDistribution"],
             f'Unsupported value: "{distribution}": supported values: '
             + ", ".join(f'"{d}"' for d in TRAFFIC_DISTRIBUTIONS), pre)
    annotations = (doc.get("metadata") or {}).get("annotations") or {}
    topology_mode = next((str(annotations[k]) for k in TOPOLOGY_ANNOTATIONS
                          if k in annotations), None)
    selector = _labels(doc, ["spec", "selector"], p, pre) if "selector" in spec else {}
    raw_ports = _expect(doc, ["spec", "ports"], list, "a list of ports", p, pre) or []
    ports: list[ServicePort] = []
    for i, raw in enumerate(raw_ports):
        at = ["spec", "ports", i]
        if not isinstance(raw, dict):
            p.at(doc, at, "expected a port mapping", pre)
            continue
        if len(raw_ports) > 1 and not raw.get("name"):
            p.at(doc, [*at, "name"], "Required value", pre)
        port = _expect(doc, [*at, "port"], int, "a port number", p, pre)
        if port is not None and not 1 <= port <= 65535:
            p.at(doc, [*at, "port"], f"Invalid value: {port}: must be between 1 and 65535", pre)
        protocol = raw.get("protocol", "TCP")
        if protocol not in ("TCP", "UDP", "SCTP"):
            p.at(doc, [*at, "protocol"],
                 f'Unsupported value: "{protocol}": supported values: "SCTP", "TCP", "UDP"', pre)
        if protocol in ("UDP", "SCTP"):
            p.warn(doc, [*at, "protocol"],
                   f"{protocol} is simulated with TCP's connection semantics (conntrack entries "
                   "are not flushed when endpoints change)", pre)
        target = raw.get("targetPort", port)
        if isinstance(target, bool) or not isinstance(target, int | str):
            p.at(doc, [*at, "targetPort"], "expected a port number or a container port name", pre)
        node_port = raw.get("nodePort")
        if node_port is not None:
            lo, hi = NODEPORT_RANGE
            if isinstance(node_port, bool) or not isinstance(node_port, int):
                p.at(doc, [*at, "nodePort"], f"expected a port number, got {node_port!r}", pre)
            elif svc_type == "ClusterIP":
                p.at(doc, [*at, "nodePort"],
                     "Forbidden: may not be used when `type` is 'ClusterIP'", pre)
            elif not lo <= node_port <= hi:
                p.at(doc, [*at, "nodePort"],
                     f"Invalid value: {node_port}: provided port is not in the valid range. "
                     f"The range of valid ports is {lo}-{hi}", pre)
        names = [r.get("name") for r in raw_ports[:i] if isinstance(r, dict)]
        if raw.get("name") and raw.get("name") in names:
            p.at(doc, [*at, "name"], f'Duplicate value: "{raw["name"]}"', pre)
        ports.append(ServicePort(str(raw.get("name") or ""), str(protocol), port or 0,
                                 target if target is not None else 0, node_port))
    if not raw_ports and spec.get("ports") is not None:
        p.at(doc, ["spec", "ports"], "Required value: at least one port", pre)
    cluster_ip = _cluster_ip(doc, spec, p, pre)
    if len(p.errors) > n_errors or name is None:
        return None
    return Service(str(name), str(namespace), str(svc_type), tuple(ports), selector,
                   str(policy), origin, str(internal), affinity, timeout, distribution,
                   topology_mode, cluster_ip)


def _cluster_ip(doc: MarkedDict, spec: dict, p: Problems, pre: str) -> str | None:
    """``spec.clusterIP`` as written: an IPv4 address is kept (explain shows it, as the
    API server keeps a requested address), ``None``/empty means none given."""
    value = spec.get("clusterIP")
    if value is None or value in ("", "None"):
        return None
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        p.at(doc, ["spec", "clusterIP"],
             f'Invalid value: "{value}": must be a valid IP address, (e.g. 10.9.8.7 or '
             "2001:db8::ffff)", pre)
        return None


# PreferClose is the deprecated alias of PreferSameZone (kubernetes-semantics.md 8)
TRAFFIC_DISTRIBUTIONS = ("PreferClose", "PreferSameZone", "PreferSameNode")


def _affinity(doc: MarkedDict, spec: dict, p: Problems, pre: str) -> tuple[str, int]:
    """sessionAffinity and its timeout, validated with the API server's messages."""
    affinity = spec.get("sessionAffinity", "None")
    if affinity not in ("None", "ClientIP"):
        p.at(doc, ["spec", "sessionAffinity"],
             f'Unsupported value: "{affinity}": supported values: "ClientIP", "None"', pre)
        return "None", DEFAULT_AFFINITY_TIMEOUT
    config = spec.get("sessionAffinityConfig")
    if affinity != "ClientIP":
        # v1 defaulting clears the config when affinity is None (kubernetes-semantics 6.3)
        return "None", DEFAULT_AFFINITY_TIMEOUT
    timeout = ((config or {}).get("clientIP") or {}).get("timeoutSeconds",
                                                         DEFAULT_AFFINITY_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        p.at(doc, ["spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"],
             f"expected a whole number of seconds, got {timeout!r}", pre)
        timeout = DEFAULT_AFFINITY_TIMEOUT
    elif not 0 < timeout <= MAX_AFFINITY_TIMEOUT:
        p.at(doc, ["spec", "sessionAffinityConfig", "clientIP", "timeoutSeconds"],
             f"Invalid value: {timeout}: must be greater than 0 and less than "
             f"{MAX_AFFINITY_TIMEOUT}", pre)
        timeout = DEFAULT_AFFINITY_TIMEOUT
    return str(affinity), int(timeout)


def parse_deployment(doc: MarkedDict, p: Problems, pre: str, origin: str) -> Deployment | None:
    n_errors = len(p.errors)
    name = _expect(doc, ["metadata", "name"], str, "the Deployment name", p, pre)
    namespace = doc.get("metadata", {}).get("namespace", "default")
    spec = _expect(doc, ["spec"], dict, "a spec", p, pre) or {}
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        p.at(doc, ["spec", "replicas"], f"expected a whole number of pods, got {replicas!r}", pre)
    elif replicas < 0:
        p.at(doc, ["spec", "replicas"],
             f"Invalid value: {replicas}: must be greater than or equal to 0", pre)
    pod_labels = _labels(doc, ["spec", "template", "metadata", "labels"], p, pre)
    match_labels: dict[str, str] = {}
    if "selector" in spec:
        match_labels = _labels(doc, ["spec", "selector", "matchLabels"], p, pre)
        if "matchExpressions" in (spec.get("selector") or {}):
            p.warn(doc, ["spec", "selector", "matchExpressions"],
                   "matchExpressions are not checked by npsim; only matchLabels", pre)
        if match_labels and not selector_matches(match_labels, pod_labels):
            p.at(doc, ["spec", "template", "metadata", "labels"],
                 "Invalid value: `selector` does not match template `labels`", pre)
    elif str(doc.get("apiVersion", "")).startswith("apps/"):
        p.at(doc, ["spec", "selector"], "Required value", pre)
    containers = _expect(doc, ["spec", "template", "spec", "containers"], list,
                         "a list of containers", p, pre) or []
    cports: list[ContainerPort] = []
    for ci, container in enumerate(containers):
        for pi, raw in enumerate((container or {}).get("ports", []) or []):
            at = ["spec", "template", "spec", "containers", ci, "ports", pi]
            number = _expect(doc, [*at, "containerPort"], int, "a container port number", p, pre)
            if number is not None:
                cports.append(ContainerPort(raw.get("name"), number, raw.get("protocol", "TCP")))
    if len(p.errors) > n_errors or name is None:
        return None
    return Deployment(str(name), str(namespace), int(replicas), pod_labels, tuple(cports),
                      origin, match_labels)


# --- EndpointSlices (discovery.k8s.io/v1) -------------------------------------------------

SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # discovery.k8s.io/v1 LabelServiceName


@dataclass(frozen=True)
class SlicePort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class SliceEndpoint:
    """One endpoint of a slice. Conditions as the API defines them: an unset ``ready``
    means ready, an unset ``serving`` follows ``ready``, an unset ``terminating`` is false."""

    address: str
    node_name: str | None
    zone: str | None
    ready: bool
    serving: bool
    terminating: bool
    hint_zones: tuple[str, ...] | None
    hint_nodes: tuple[str, ...] | None
    index: int  # position in the slice's endpoints list (for located errors)


@dataclass
class EndpointSlice:
    name: str
    namespace: str
    service_name: str
    ports: tuple[SlicePort, ...]
    endpoints: tuple[SliceEndpoint, ...]
    origin: str
    doc: Any = None  # the marked manifest, to place errors found across manifests
    prefix: str = ""

    def manifest(self) -> dict[str, Any]:
        """The slice as a plain manifest (what the scenario said, for resolved output)."""
        from npsim.scenario.yamlio import plain

        return plain(self.doc)


_SLICE_FIELDS: dict[str, Any] = {
    "apiVersion": True,
    "kind": True,
    "metadata": {"name": True, "namespace": True, "labels": True, "annotations": "quiet",
                 "generateName": "quiet", "ownerReferences": "quiet"},
    "addressType": True,
    "ports": {"name": True, "port": True, "protocol": True, "appProtocol": "quiet"},
    "endpoints": {"addresses": True, "nodeName": True, "zone": True, "targetRef": "quiet",
                  "conditions": {"ready": True, "serving": True, "terminating": True},
                  "hints": {"forZones": {"name": True}, "forNodes": {"name": True}},
                  "hostname": "quiet"},
}


def _condition(doc: MarkedDict, at: list[Any], raw: dict, key: str, default: bool,
               p: Problems, pre: str) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        p.at(doc, [*at, "conditions", key], f"expected true or false, got {value!r}", pre)
        return default
    return value


def _hint_names(doc: MarkedDict, at: list[Any], hints: dict, key: str, p: Problems,
                pre: str) -> tuple[str, ...] | None:
    entries = hints.get(key)
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(
            e.get("name"), str) for e in entries):
        p.at(doc, [*at, "hints", key], "expected a list of {name: ...}", pre)
        return None
    return tuple(e["name"] for e in entries)


def _slice_endpoint(doc: MarkedDict, i: int, raw: Any, p: Problems,
                    pre: str) -> SliceEndpoint | None:
    at = ["endpoints", i]
    if not isinstance(raw, dict):
        p.at(doc, at, "expected an endpoint mapping", pre)
        return None
    addresses = _expect(doc, [*at, "addresses"], list, "a list of addresses", p, pre)
    if not addresses:
        if addresses is not None:
            p.at(doc, [*at, "addresses"], "Required value: at least one address", pre)
        return None
    try:
        # kube-proxy uses only the first address (the others are not used by consumers)
        address = str(ipaddress.IPv4Address(str(addresses[0])))
    except ValueError:
        p.at(doc, [*at, "addresses", 0],
             f'Invalid value: "{addresses[0]}": must be a valid IPv4 address', pre)
        return None
    conditions = raw.get("conditions") or {}
    if not isinstance(conditions, dict):
        p.at(doc, [*at, "conditions"], "expected a mapping", pre)
        conditions = {}
    ready = _condition(doc, at, conditions, "ready", True, p, pre)
    serving = _condition(doc, at, conditions, "serving", ready, p, pre)
    terminating = _condition(doc, at, conditions, "terminating", False, p, pre)
    hints = raw.get("hints") or {}
    if not isinstance(hints, dict):
        p.at(doc, [*at, "hints"], "expected a mapping", pre)
        hints = {}
    node_name, zone = raw.get("nodeName"), raw.get("zone")
    for key, value in (("nodeName", node_name), ("zone", zone)):
        if value is not None and not isinstance(value, str):
            p.at(doc, [*at, key], f"expected a name, got {value!r}", pre)
    return SliceEndpoint(address, node_name if isinstance(node_name, str) else None,
                         zone if isinstance(zone, str) else None, ready, serving, terminating,
                         _hint_names(doc, at, hints, "forZones", p, pre),
                         _hint_names(doc, at, hints, "forNodes", p, pre), i)


def parse_endpoint_slice(doc: MarkedDict, p: Problems, pre: str,
                         origin: str) -> EndpointSlice | None:
    """A hand-made EndpointSlice: which addresses back a selector-less Service."""
    n_errors = len(p.errors)
    name = _expect(doc, ["metadata", "name"], str, "the EndpointSlice name", p, pre)
    namespace = (doc.get("metadata") or {}).get("namespace", "default")
    labels = _labels(doc, ["metadata", "labels"], p, pre) if "labels" in (
        doc.get("metadata") or {}) else {}
    service_name = labels.get(SERVICE_NAME_LABEL)
    if service_name is None:
        p.at(doc, ["metadata", "labels", SERVICE_NAME_LABEL],
             "Required value: the Service this slice belongs to", pre)
    address_type = doc.get("addressType")
    if address_type != "IPv4":
        p.at(doc, ["addressType"], f"Unsupported value: {address_type!r}: npsim simulates "
             'IPv4 slices only (supported values: "IPv4")', pre)
    ports: list[SlicePort] = []
    for i, raw in enumerate(doc.get("ports") or []):
        if not isinstance(raw, dict):
            p.at(doc, ["ports", i], "expected a port mapping", pre)
            continue
        number = _expect(doc, ["ports", i, "port"], int, "a port number", p, pre)
        if number is not None and not 1 <= number <= 65535:
            p.at(doc, ["ports", i, "port"],
                 f"Invalid value: {number}: must be between 1 and 65535, inclusive", pre)
        ports.append(SlicePort(str(raw.get("name") or ""), number or 0,
                               str(raw.get("protocol", "TCP"))))
    raw_endpoints = doc.get("endpoints") or []
    if not isinstance(raw_endpoints, list):
        p.at(doc, ["endpoints"], "expected a list of endpoints", pre)
        raw_endpoints = []
    endpoints = [e for i, raw in enumerate(raw_endpoints)
                 if (e := _slice_endpoint(doc, i, raw, p, pre)) is not None]
    if len(p.errors) > n_errors or name is None or service_name is None:
        return None
    return EndpointSlice(str(name), str(namespace), service_name, tuple(ports),
                         tuple(endpoints), origin, doc, pre)


def _statefulset_fields() -> dict[str, Any]:
    """A StatefulSet is read like a Deployment (replicas, labels, ports); its own fields
    (stable names, volume claims) do not change traffic."""
    fields = {**_DEPLOYMENT_FIELDS, "spec": dict(_DEPLOYMENT_FIELDS["spec"])}
    for key in ("serviceName", "volumeClaimTemplates", "podManagementPolicy",
                "updateStrategy", "persistentVolumeClaimRetentionPolicy", "ordinals",
                "minReadySeconds"):
        fields["spec"][key] = "quiet"
    return fields


KINDS = {"Service": (parse_service, _SERVICE_FIELDS), "Deployment": (parse_deployment,
                                                                     _DEPLOYMENT_FIELDS),
         "StatefulSet": (parse_deployment, _statefulset_fields()),
         "EndpointSlice": (parse_endpoint_slice, _SLICE_FIELDS)}


def parse_manifest(doc: Any, p: Problems, pre: str,
                   origin: str) -> Service | Deployment | EndpointSlice | None:
    """One manifest document; ``pre`` prefixes field paths (e.g. ``manifests[1]``)."""
    if not isinstance(doc, dict):
        p.at(doc, [], "expected a Kubernetes manifest (a mapping with apiVersion and kind)", pre)
        return None
    kind = doc.get("kind")
    if kind not in KINDS:
        if kind is None:
            p.at(doc, ["kind"], "Required value: the manifest kind (Service, Deployment, "
                 "StatefulSet or EndpointSlice)", pre)
        else:
            p.warn(doc, ["kind"], f"kind {kind!r} is not modelled by npsim; ignored", pre)
        return None
    if "apiVersion" not in doc:
        p.at(doc, ["apiVersion"], "Required value", pre)
    for section in ("metadata", "spec"):
        if section in doc and not isinstance(doc[section], dict):
            p.at(doc, [section], f"expected a mapping, got {doc[section]!r}", pre)
            return None
    parser, known = KINDS[kind]
    unknown: list[list[Any]] = []
    _unmodelled(doc, known, [], unknown)
    for loc in unknown:
        p.warn(doc, loc, "not modelled by npsim; ignored", pre)
    return parser(doc, p, pre, origin)
