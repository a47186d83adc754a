"""Kubernetes Service and Deployment manifests, read as Kubernetes reads them.

Plain ``apiVersion/kind/metadata/spec`` documents load unchanged (the tutorial's
``nginx-nodeport`` among them). Fields that change traffic but that npsim does not model
yet produce a warning, never a failure; descriptive fields (labels, images, resources)
are accepted quietly. Validation messages follow the API server's wording where the
reference gives it (kubernetes-semantics.md section 6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from npsim.scenario.problems import Problems
from npsim.scenario.shapes import check_shape
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
        "clusterIP": "quiet",
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
    if len(p.errors) > n_errors or name is None:
        return None
    return Service(str(name), str(namespace), str(svc_type), tuple(ports), selector,
                   str(policy), origin, str(internal), affinity, timeout, distribution,
                   topology_mode)


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


KINDS = {"Service": (parse_service, _SERVICE_FIELDS), "Deployment": (parse_deployment,
                                                                     _DEPLOYMENT_FIELDS)}


def parse_manifest(doc: Any, p: Problems, pre: str, origin: str) -> Service | Deployment | None:
    """One manifest document; ``pre`` prefixes field paths (e.g. ``manifests[1]``)."""
    if not check_shape(doc, p, pre):  # types first: nothing below meets a wrong one
        return None
    kind = doc.get("kind")
    if kind not in KINDS:
        if kind is None:
            p.at(doc, ["kind"], "Required value: the manifest kind (Service or Deployment)", pre)
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
