"""Kubernetes Service and Deployment manifests, read as Kubernetes reads them.

Plain ``apiVersion/kind/metadata/spec`` documents load unchanged (the tutorial's
``nginx-nodeport`` among them). Fields that change traffic but that npsim does not model
yet produce a warning, never a failure; descriptive fields (labels, images, resources)
are accepted quietly. Validation messages follow the API server's wording where the
API server words it (``pkg/apis/core/validation/validation.go`` in kubernetes/kubernetes).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from npsim.scenario.netpol import IngressRule, NetworkPolicy, Peer
from npsim.scenario.nodeports import scenario_refusals
from npsim.scenario.problems import Problem, Problems
from npsim.scenario.shapes import check_shape
from npsim.scenario.yamlio import MarkedDict, plain

# v1.DefaultClientIPServiceAffinitySeconds; valid 1..86400 (MaxClientIPServiceAffinitySeconds)
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400
TERMINATION_GRACE_PERIOD = 30.0  # DefaultTerminationGracePeriodSeconds (SetDefaults_PodSpec)
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
        "healthCheckNodePort": True,
        "allocateLoadBalancerNodePorts": True,
        "ipFamilies": "quiet",
        "ipFamilyPolicy": "quiet",
    },
    "status": "quiet",
}
_PROBE_FIELDS: dict[str, Any] = {
    "periodSeconds": True, "timeoutSeconds": True, "failureThreshold": True,
    "successThreshold": True, "initialDelaySeconds": True,
    "httpGet": "quiet", "tcpSocket": "quiet", "exec": "quiet", "grpc": "quiet",
    "terminationGracePeriodSeconds": "quiet",
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
                    "readinessProbe": _PROBE_FIELDS,
                    "livenessProbe": _PROBE_FIELDS,
                    "lifecycle": {"preStop": {"sleep": {"seconds": True},
                                              "exec": {"command": True}}},
                },
                "volumes": "quiet",
                "nodeSelector": "quiet",
                "terminationGracePeriodSeconds": True,
            },
        },
        "strategy": {"type": True,
                     "rollingUpdate": {"maxSurge": True, "maxUnavailable": True}},
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
    health_check_node_port: int | None = None  # requested spec.healthCheckNodePort
    allocate_lb_node_ports: bool = True  # spec.allocateLoadBalancerNodePorts
    # the manifest document and its path prefix, to point allocation errors at it
    doc: Any = field(default=None, repr=False, compare=False)
    prefix: str = field(default="", repr=False, compare=False)
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
    # lifecycle (npsim/cluster/lifecycle.py): probes, preStop, grace period, strategy
    # probes: the fields the manifest sets (npsim/cluster/lifecycle.py Probe adds defaults)
    readiness: dict[str, float] | None = None
    liveness: dict[str, float] | None = None
    pre_stop: float = 0.0  # seconds the preStop hook takes
    grace_period: float = TERMINATION_GRACE_PERIOD
    max_surge: int | str = "25%"
    max_unavailable: int | str = "25%"


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
        port = _expect(doc, [*at, "port"], int, "a port number", p, pre)
        protocol = raw.get("protocol", "TCP")
        if protocol not in ("TCP", "UDP", "SCTP"):
            p.at(doc, [*at, "protocol"],
                 f'Unsupported value: "{protocol}": supported values: "SCTP", "TCP", "UDP"', pre)
        if protocol == "SCTP":
            p.warn(doc, [*at, "protocol"],
                   "SCTP is simulated with TCP's connection semantics", pre)
        target = raw.get("targetPort")
        if target in (None, 0, ""):  # SetDefaults_Service: targetPort 0 or "" means port
            target = port
        if isinstance(target, bool) or not isinstance(target, int | str | None):
            p.at(doc, [*at, "targetPort"], "expected a port number or a container port name", pre)
        node_port = raw.get("nodePort")
        if node_port is not None:
            if isinstance(node_port, bool) or not isinstance(node_port, int):
                p.at(doc, [*at, "nodePort"], f"expected a port number, got {node_port!r}", pre)
            elif svc_type == "ClusterIP" and node_port != 0:
                p.at(doc, [*at, "nodePort"],
                     "Forbidden: may not be used when `type` is 'ClusterIP'", pre)
        ports.append(ServicePort(str(raw.get("name") or ""), str(protocol), port or 0,
                                 target if target is not None else 0, node_port or None))
    if not raw_ports and spec.get("ports") is not None:
        p.at(doc, ["spec", "ports"], "Required value: at least one port", pre)
    validate_service_ports(doc, raw_ports, p, pre)
    health, allocate_lb = validate_service_spec(doc, spec, str(svc_type), str(policy), p, pre)
    cluster_ip = _cluster_ip(doc, spec, p, pre)
    if len(p.errors) > n_errors or name is None:
        return None
    return Service(str(name), str(namespace), str(svc_type), tuple(ports), selector,
                   str(policy), origin, str(internal), affinity, timeout, distribution,
                   topology_mode, health, allocate_lb, doc, pre, cluster_ip)


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


# --- the API server's ServiceSpec checks (pkg/apis/core/validation/validation.go) -----------

# apimachinery/pkg/util/validation: IsDNS1123Label, IsValidPortNum, IsValidPortName
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
PORT_RANGE_MESSAGE = "must be between 1 and 65535, inclusive"


def _quoted(value: Any) -> str:
    """field.Error's rendering of a bad value: strings quoted, numbers bare."""
    return f'"{value}"' if isinstance(value, str) else str(value)


def dns1123_label_errors(value: str) -> list[str]:
    """IsDNS1123Label: at most 63 characters, lower-case alphanumerics and inner '-'."""
    out = []
    if len(value) > 63:
        out.append("must be no more than 63 characters")
    if not DNS1123_LABEL.fullmatch(value):
        out.append(DNS1123_LABEL_MESSAGE)
    return out


def port_name_errors(value: str) -> list[str]:
    """IsValidPortName (IANA_SVC_NAME), in the API server's order and words."""
    out = []
    if len(value) > 15:
        out.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", value):
        out.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", value):
        out.append("must contain at least one letter (a-z)")
    if "--" in value:
        out.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        out.append("must not begin or end with a hyphen")
    return out


def _go_service_port(protocol: str, port: int) -> str:
    """How field.Duplicate prints the (protocol, port) key, a core.ServicePort (%#v)."""
    return (f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), '
            f"Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, "
            "NodePort:0}")


def validate_service_ports(doc: MarkedDict, raw_ports: list[Any], p: Problems,
                           pre: str) -> None:
    """validateServicePort for each port, then the duplicate (protocol, port) and
    (protocol, nodePort) checks of ValidateService."""
    names: set[str] = set()
    ports: set[tuple[str, int]] = set()
    node_ports: set[tuple[str, int]] = set()
    for i, raw in enumerate(raw_ports):
        if not isinstance(raw, dict):
            continue
        at = ["spec", "ports", i]
        name = raw.get("name")
        if len(raw_ports) > 1 and not name:
            p.at(doc, [*at, "name"], "Required value", pre)
        elif name:
            for message in dns1123_label_errors(str(name)):
                p.at(doc, [*at, "name"], f"Invalid value: {_quoted(str(name))}: {message}", pre)
            if name in names:
                p.at(doc, [*at, "name"], f'Duplicate value: "{name}"', pre)
            names.add(name)
        port = raw.get("port")
        if isinstance(port, int) and not isinstance(port, bool) and not 1 <= port <= 65535:
            p.at(doc, [*at, "port"], f"Invalid value: {port}: {PORT_RANGE_MESSAGE}", pre)
        target = raw.get("targetPort")
        if isinstance(target, int) and not isinstance(target, bool) and target != 0:
            if not 1 <= target <= 65535:
                p.at(doc, [*at, "targetPort"], f"Invalid value: {target}: {PORT_RANGE_MESSAGE}",
                     pre)
        elif isinstance(target, str) and target:
            for message in port_name_errors(target):
                p.at(doc, [*at, "targetPort"], f'Invalid value: "{target}": {message}', pre)
        protocol = str(raw.get("protocol", "TCP"))
        if isinstance(port, int) and not isinstance(port, bool):
            if (protocol, port) in ports:
                p.at(doc, at, f"Duplicate value: {_go_service_port(protocol, port)}", pre)
            ports.add((protocol, port))
        node_port = raw.get("nodePort")
        if isinstance(node_port, int) and not isinstance(node_port, bool) and node_port:
            if (protocol, node_port) in node_ports:
                p.at(doc, [*at, "nodePort"], f"Duplicate value: {node_port}", pre)
            node_ports.add((protocol, node_port))


def validate_service_spec(doc: MarkedDict, spec: dict, svc_type: str, policy: str,
                          p: Problems, pre: str) -> tuple[int | None, bool]:
    """clusterIP None on NodePort/LoadBalancer, healthCheckNodePort only where a health
    check is needed, allocateLoadBalancerNodePorts only on LoadBalancer. Returns the
    requested healthCheckNodePort and allocateLoadBalancerNodePorts."""
    if spec.get("clusterIP") == "None" and svc_type in ("NodePort", "LoadBalancer"):
        # newer API servers report the first entry of clusterIPs (dual-stack fields)
        problem = Problems.problem(doc, ["spec", "clusterIP"], "", pre)
        p.errors.append(Problem(problem.mark, f"{pre}spec.clusterIPs[0]",
                                f"Invalid value: \"None\": may not be set to 'None' for "
                                f"{svc_type} services"))
    health = spec.get("healthCheckNodePort")
    if health is not None:
        if isinstance(health, bool) or not isinstance(health, int):
            p.at(doc, ["spec", "healthCheckNodePort"], f"expected a port number, got {health!r}",
                 pre)
            health = None
        elif health and not (svc_type == "LoadBalancer" and policy == "Local"):
            p.at(doc, ["spec", "healthCheckNodePort"],
                 f"Invalid value: {health}: may only be set when `type` is 'LoadBalancer' and "
                 "`externalTrafficPolicy` is 'Local'", pre)
        elif health and not 1 <= health <= 65535:
            p.at(doc, ["spec", "healthCheckNodePort"],
                 f"Invalid value: {health}: {PORT_RANGE_MESSAGE}", pre)
    allocate = spec.get("allocateLoadBalancerNodePorts")
    if allocate is not None:
        if svc_type != "LoadBalancer":
            p.at(doc, ["spec", "allocateLoadBalancerNodePorts"],
                 "Forbidden: may only be used when `type` is 'LoadBalancer'", pre)
        elif not isinstance(allocate, bool):
            p.at(doc, ["spec", "allocateLoadBalancerNodePorts"],
                 f"expected true or false, got {allocate!r}", pre)
    return (health or None), allocate is not False


# PreferClose is the deprecated alias of PreferSameZone (KEP-4444 trafficDistribution)
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
        # v1 defaulting clears the config when affinity is None (pkg/apis/core/v1/defaults.go)
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
    lifecycle = _pod_lifecycle(doc, spec, containers, p, pre)
    if len(p.errors) > n_errors or name is None:
        return None
    return Deployment(str(name), str(namespace), int(replicas), pod_labels, tuple(cports),
                      origin, match_labels, **lifecycle)


_PROBE_KEYS = {"periodSeconds": ("period", 1), "timeoutSeconds": ("timeout", 1),
               "failureThreshold": ("failure_threshold", 1),
               "successThreshold": ("success_threshold", 1),
               "initialDelaySeconds": ("initial_delay", 0)}


def _pod_lifecycle(doc: MarkedDict, spec: dict, containers: list, p: Problems,
                   pre: str) -> dict[str, Any]:
    """Probes, preStop and grace period of the (first serving) container, and the
    rolling-update strategy, with Kubernetes' defaults for what is left out."""
    out: dict[str, Any] = {}
    tmpl = ["spec", "template", "spec"]
    for ci, container in enumerate(containers):
        if not isinstance(container, dict):
            continue
        for key, attr in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
            raw = container.get(key)
            if raw is None or attr in out:
                continue
            values: dict[str, Any] = {}
            for field_name, (name, low) in _PROBE_KEYS.items():
                if field_name not in (raw or {}):
                    continue
                at = [*tmpl, "containers", ci, key, field_name]
                value = _expect(doc, at, int, "a whole number", p, pre)
                if value is not None and value < low:
                    p.at(doc, at, f"Invalid value: {value}: must be greater than or equal "
                         f"to {low}", pre)
                elif value is not None:
                    values[name] = value
            if key == "livenessProbe" and values.get("success_threshold", 1) != 1:
                p.at(doc, [*tmpl, "containers", ci, key, "successThreshold"],
                     "Invalid value: must be 1", pre)
            out[attr] = values
        hook = ((container.get("lifecycle") or {}).get("preStop") or {})
        if hook and "pre_stop" not in out:
            out["pre_stop"] = _pre_stop_seconds(doc, hook, [*tmpl, "containers", ci], p, pre)
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    if "terminationGracePeriodSeconds" in pod_spec:
        at = [*tmpl, "terminationGracePeriodSeconds"]
        grace = _expect(doc, at, int, "a whole number of seconds", p, pre)
        if grace is not None and grace < 0:
            p.at(doc, at, f"Invalid value: {grace}: must be greater than or equal to 0", pre)
        elif grace is not None:
            out["grace_period"] = float(grace)
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate") or {})
    for key, attr in (("maxSurge", "max_surge"), ("maxUnavailable", "max_unavailable")):
        if key in rolling:
            value = rolling[key]
            at = ["spec", "strategy", "rollingUpdate", key]
            if isinstance(value, bool) or not (
                    isinstance(value, int) and value >= 0
                    or isinstance(value, str) and re.fullmatch(r"[0-9]+%", value)):
                p.at(doc, at, f"Invalid value: {value!r}: must be a non-negative integer "
                     "or a percentage (e.g. 25%)", pre)
            else:
                out[attr] = value
    return out


def _pre_stop_seconds(doc: MarkedDict, hook: dict, at: list[Any], p: Problems,
                      pre: str) -> float:
    """How long a preStop hook keeps the pod from getting SIGTERM: ``sleep.seconds``, or an
    ``exec`` of ``sleep N`` (the usual ``["sh", "-c", "sleep 15"]``)."""
    if "sleep" in hook:
        seconds = _expect(doc, [*at, "lifecycle", "preStop", "sleep", "seconds"], int,
                          "a whole number of seconds", p, pre)
        return float(seconds or 0)
    command = (hook.get("exec") or {}).get("command") or []
    match = re.search(r"\bsleep\s+([0-9]+(?:\.[0-9]+)?)\b",
                      " ".join(str(c) for c in command))
    if match is None:
        p.warn(doc, [*at, "lifecycle", "preStop"],
               "npsim cannot tell how long this preStop hook runs (it understands sleep.seconds "
               "and an exec of 'sleep N'); taken as instant", pre)
        return 0.0
    return float(match.group(1))


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
                   origin: str) -> Service | Deployment | NetworkPolicy | EndpointSlice | None:
    """One manifest document; ``pre`` prefixes field paths (e.g. ``manifests[1]``)."""
    if not check_shape(doc, p, pre):  # types first: nothing below meets a wrong one
        return None
    kind = doc.get("kind")
    if kind not in KINDS:
        if kind is None:
            p.at(doc, ["kind"], "Required value: the manifest kind (Service, Deployment, "
                 "StatefulSet, EndpointSlice or NetworkPolicy)", pre)
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


def _probe_manifest(probe: dict[str, float]) -> dict[str, int]:
    fields = {name: key for key, (name, _low) in _PROBE_KEYS.items()}
    return {fields[name]: int(value) for name, value in probe.items()}


def add_lifecycle(manifest: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """Write a Deployment's probes, preStop, grace period and strategy into its resolved
    manifest (``scenario.resolved.yaml`` repeats the run exactly)."""
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if dep.readiness is not None:
        container["readinessProbe"] = _probe_manifest(dep.readiness)
    if dep.liveness is not None:
        container["livenessProbe"] = _probe_manifest(dep.liveness)
    if dep.pre_stop:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": math.ceil(dep.pre_stop)}}}
    pod["terminationGracePeriodSeconds"] = int(dep.grace_period)
    manifest["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": dep.max_surge, "maxUnavailable": dep.max_unavailable}}
    return manifest
def check_node_ports(scenario: Any, tree: Any, p: Problems) -> None:
    """Create the scenario's Services through the API server's NodePort allocator and
    report each refusal at the Service's manifest, in the API server's words
    (``spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid
    range. The range of valid ports is 30000-32767``)."""
    spec = scenario.spec
    try:
        allocation = scenario_refusals(list(scenario.services.values()),
                                       spec.cluster if spec is not None else None,
                                       spec.run.seed if spec is not None else 1)
    except ValueError:  # an unreadable range is reported by the schema
        return
    for rejection in allocation.rejected:
        svc = scenario.services[rejection.service]
        where = f"Service {svc.name!r}: "
        if rejection.path:
            loc = [int(x) if x.isdigit() else x
                   for x in re.split(r"[.\[\]]+", rejection.path) if x]
            p.at(svc.doc if svc.doc is not None else tree, loc,
                 f"Invalid value: {rejection.port}: {rejection.message}" + _collision_hint(
                     rejection, allocation), svc.prefix)
        else:
            p.at(svc.doc if svc.doc is not None else tree, ["metadata", "name"],
                 where + f"Internal error occurred: {rejection.message}", svc.prefix)


def _collision_hint(rejection: Any, allocation: Any) -> str:
    """Name who holds a port asked for explicitly (an earlier Service's automatic port
    in the dynamic band is what the static band is there to avoid)."""
    if "already allocated" not in rejection.message:
        return ""
    for name, given in allocation.services.items():
        if rejection.port in given.node_ports or rejection.port == given.health_check_node_port:
            ports_range = allocation.range
            band = ports_range.bands()["static"]
            hint = f" (held by Service {name!r}"
            if band is not None and ports_range.band(rejection.port) == "dynamic":
                hint += (f"; explicit requests in the static band {band[0]}-{band[1]} "
                         "cannot collide with automatic allocations")
            return hint + ")"
    return ""


def check_port_plan(scenario: Any, tree: Any, p: Problems) -> None:
    """Every Service a plan band names must exist, and belong to one band only."""
    spec = scenario.spec
    if spec is None:
        return
    seen: dict[str, str] = {}
    known = {n for s in scenario.services.values() for n in (s.name, f"{s.namespace}/{s.name}")}
    for i, band in enumerate(spec.port_plan):
        for j, name in enumerate(band.services):
            if name not in known:
                p.at(tree, ["portPlan", i, "services", j],
                     f"no Service named {name!r} among the manifests")
            elif name in seen:
                p.at(tree, ["portPlan", i, "services", j],
                     f"Service {name!r} is already in band {seen[name]!r}")
            seen[name] = band.name


# --- NetworkPolicy (networking.k8s.io/v1), ingress only ------------------------------------


def _selector(doc: MarkedDict, loc: list[Any], p: Problems, pre: str) -> dict[str, str]:
    raw = _expect(doc, loc, dict, "a label selector", p, pre)
    if raw is None:
        return {}
    if "matchExpressions" in raw:
        p.warn(doc, [*loc, "matchExpressions"],
               "matchExpressions are not checked by npsim; only matchLabels", pre)
    return _labels(doc, [*loc, "matchLabels"], p, pre) if "matchLabels" in raw else {}


def parse_network_policy(doc: MarkedDict, p: Problems, pre: str,
                         origin: str) -> NetworkPolicy | None:
    """A NetworkPolicy's ingress side (npsim/scenario/netpol.py says how it is judged)."""
    n_errors = len(p.errors)
    name = _expect(doc, ["metadata", "name"], str, "the NetworkPolicy name", p, pre)
    namespace = str(doc.get("metadata", {}).get("namespace", "default"))
    spec = _expect(doc, ["spec"], dict, "a spec", p, pre) or {}
    pod_selector = _selector(doc, ["spec", "podSelector"], p, pre)
    types = spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec
                                         else ["Ingress"])
    for i, kind in enumerate(types):
        if kind not in ("Ingress", "Egress"):
            p.at(doc, ["spec", "policyTypes", i],
                 f'Unsupported value: "{kind}": supported values: "Egress", "Ingress"', pre)
    if "egress" in spec:
        p.warn(doc, ["spec", "egress"], "egress rules are not modelled by npsim; ignored", pre)
    rules: list[IngressRule] = []
    for i, raw in enumerate(spec.get("ingress") or []):
        at = ["spec", "ingress", i]
        if not isinstance(raw, dict):
            p.at(doc, at, "expected an ingress rule mapping", pre)
            continue
        peers = None
        if raw.get("from") is not None:
            peers = tuple(_peer(doc, [*at, "from", j], peer, p, pre)
                          for j, peer in enumerate(raw["from"]))
        ports = None
        if raw.get("ports") is not None:
            ports = []
            for j, port in enumerate(raw["ports"]):
                proto = str((port or {}).get("protocol", "TCP"))
                if proto not in ("TCP", "UDP", "SCTP"):
                    p.at(doc, [*at, "ports", j, "protocol"], f'Unsupported value: "{proto}": '
                         'supported values: "SCTP", "TCP", "UDP"', pre)
                if "endPort" in (port or {}):
                    p.warn(doc, [*at, "ports", j, "endPort"],
                           "endPort is not modelled by npsim; only port is matched", pre)
                ports.append((proto, (port or {}).get("port")))
            ports = tuple(ports)
        rules.append(IngressRule(peers, ports))
    if len(p.errors) > n_errors or name is None:
        return None
    return NetworkPolicy(str(name), namespace, pod_selector,
                         tuple(rules) if "Ingress" in types else (), origin, plain(doc),
                         "Ingress" in types)


def _peer(doc: MarkedDict, at: list[Any], raw: Any, p: Problems, pre: str) -> Peer:
    if not isinstance(raw, dict):
        p.at(doc, at, "expected a peer (ipBlock, podSelector, namespaceSelector)", pre)
        return Peer(cidr=ipaddress.IPv4Network("0.0.0.0/32"))
    if "ipBlock" in raw:
        block = raw["ipBlock"] or {}
        try:
            cidr = ipaddress.IPv4Network(str(block.get("cidr")), strict=False)
            excepts = tuple(ipaddress.IPv4Network(str(e), strict=False)
                            for e in block.get("except") or [])
        except ValueError as exc:
            p.at(doc, [*at, "ipBlock"], f"Invalid value: {exc}", pre)
            return Peer(cidr=ipaddress.IPv4Network("0.0.0.0/32"))
        return Peer(cidr=cidr, excepts=excepts)
    pods = _selector(doc, [*at, "podSelector"], p, pre) if "podSelector" in raw else None
    namespaces = (_selector(doc, [*at, "namespaceSelector"], p, pre)
                  if "namespaceSelector" in raw else None)
    if namespaces:
        unknown = [k for k in namespaces if k != "kubernetes.io/metadata.name"]
        if unknown:
            p.warn(doc, [*at, "namespaceSelector"],
                   f"npsim knows no namespace labels but kubernetes.io/metadata.name: "
                   f"{', '.join(unknown)} never match", pre)
    if pods is None and namespaces is None:
        p.at(doc, at, "Required value: must specify a peer", pre)
    return Peer(pod_selector=pods, namespace_selector=namespaces)


_NETWORK_POLICY_FIELDS: dict[str, Any] = {
    "apiVersion": True, "kind": True,
    "metadata": {"name": True, "namespace": True, "labels": "quiet", "annotations": "quiet"},
    "spec": True,
}
KINDS["NetworkPolicy"] = (parse_network_policy, _NETWORK_POLICY_FIELDS)
