"""Service manifests (core/v1), read and written as Kubernetes does.

Validation messages follow the API server's wording where the API server words it
(``pkg/apis/core/validation/validation.go`` in kubernetes/kubernetes).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from npsim.scenario.expect import expect, label_map
from npsim.scenario.external_addresses import parse_external_addresses
from npsim.scenario.objects import DEFAULT_AFFINITY_TIMEOUT, Service, ServicePort
from npsim.scenario.problems import Problem, Problems
from npsim.scenario.unique import repeats
from npsim.scenario.yamlio import MarkedDict

MAX_AFFINITY_TIMEOUT = 86400  # v1.MaxClientIPServiceAffinitySeconds
TOPOLOGY_ANNOTATIONS = ("service.kubernetes.io/topology-mode",
                        "service.kubernetes.io/topology-aware-hints")


def parse_service(doc: MarkedDict, p: Problems, pre: str, origin: str) -> Service | None:
    n_errors = len(p.errors)
    name = expect(doc, ["metadata", "name"], str, "the Service name", p, pre)
    namespace = doc.get("metadata", {}).get("namespace", "default")
    spec = expect(doc, ["spec"], dict, "a spec", p, pre)
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
    elif "externalTrafficPolicy" in spec and svc_type == "ClusterIP" and \
            not spec.get("externalIPs"):
        # validateServiceExternalTrafficPolicy: any value, Cluster too, is refused on a
        # Service that is not externally accessible (apiservice.ExternallyAccessible)
        p.at(doc, ["spec", "externalTrafficPolicy"],
             f'Invalid value: "{policy}": may only be set for externally-accessible '
             'services', pre)
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
    selector = label_map(doc, ["spec", "selector"], p, pre) if "selector" in spec else {}
    raw_ports = expect(doc, ["spec", "ports"], list, "a list of ports", p, pre) or []
    ports: list[ServicePort] = []
    for i, raw in enumerate(raw_ports):
        at = ["spec", "ports", i]
        if not isinstance(raw, dict):
            p.at(doc, at, "expected a port mapping", pre)
            continue
        port = expect(doc, [*at, "port"], int, "a port number", p, pre)
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
    outside = parse_external_addresses(doc, spec, str(svc_type), p, pre)
    if len(p.errors) > n_errors or name is None:
        return None
    return Service(str(name), str(namespace), str(svc_type), tuple(ports), selector,
                   str(policy), origin, str(internal), affinity, timeout, distribution,
                   topology_mode, health, allocate_lb, doc, pre, cluster_ip,
                   external_ips=outside.external_ips,
                   load_balancer_ips=outside.load_balancer_ips,
                   load_balancer_source_ranges=outside.source_ranges)


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
    ports = [(i, raw) for i, raw in enumerate(raw_ports) if isinstance(raw, dict)]
    again_name = _again((i, raw.get("name") or None) for i, raw in ports)
    again_port = _again((i, (_protocol(raw), raw.get("port")) if _whole(raw.get("port"))
                         else None) for i, raw in ports)
    again_node_port = _again((i, (_protocol(raw), raw.get("nodePort"))
                              if _whole(raw.get("nodePort")) and raw.get("nodePort") else None)
                             for i, raw in ports)
    for i, raw in ports:
        at = ["spec", "ports", i]
        name = raw.get("name")
        if len(raw_ports) > 1 and not name:
            p.at(doc, [*at, "name"], "Required value", pre)
        elif name:
            for message in dns1123_label_errors(str(name)):
                p.at(doc, [*at, "name"], f"Invalid value: {_quoted(str(name))}: {message}", pre)
            if i in again_name:
                p.at(doc, [*at, "name"], f'Duplicate value: "{name}"', pre)
        port = raw.get("port")
        if _whole(port) and not 1 <= port <= 65535:
            p.at(doc, [*at, "port"], f"Invalid value: {port}: {PORT_RANGE_MESSAGE}", pre)
        target = raw.get("targetPort")
        if _whole(target) and target != 0:
            if not 1 <= target <= 65535:
                p.at(doc, [*at, "targetPort"], f"Invalid value: {target}: {PORT_RANGE_MESSAGE}",
                     pre)
        elif isinstance(target, str) and target:
            for message in port_name_errors(target):
                p.at(doc, [*at, "targetPort"], f'Invalid value: "{target}": {message}', pre)
        if i in again_port:
            p.at(doc, at, f"Duplicate value: {_go_service_port(_protocol(raw), port)}", pre)
        if i in again_node_port:
            p.at(doc, [*at, "nodePort"], f"Duplicate value: {raw['nodePort']}", pre)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _protocol(raw: dict) -> str:
    return str(raw.get("protocol", "TCP"))


def _again(keys: Iterable[tuple[int, Any]]) -> set[int]:
    """The positions whose key (None: none) an earlier position has."""
    given = [(i, key) for i, key in keys if key is not None]
    return {given[j][0] for j, _ in repeats(key for _, key in given)}


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


def svc_manifest(svc: Service) -> dict[str, Any]:
    ports = []
    for port in svc.ports:
        entry: dict[str, Any] = {"protocol": port.protocol, "port": port.port,
                                 "targetPort": port.target_port}
        if port.name:
            entry = {"name": port.name, **entry}
        if port.node_port is not None:
            entry["nodePort"] = port.node_port
        ports.append(entry)
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": svc.namespace},
        "spec": {k: v for k, v in (
            ("type", svc.type), ("selector", dict(svc.selector)), ("ports", ports),
            # the API server keeps it only on externally-accessible Services
            ("externalTrafficPolicy", svc.external_traffic_policy
             if svc.type != "ClusterIP" else None),
            ("internalTrafficPolicy", svc.internal_traffic_policy),
            ("sessionAffinity", svc.session_affinity),
            ("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": svc.affinity_timeout}}
             if svc.session_affinity == "ClientIP" else None),
            ("trafficDistribution", svc.traffic_distribution),
            ("allocateLoadBalancerNodePorts", None if svc.allocate_lb_node_ports else False),
            ("healthCheckNodePort", svc.health_check_node_port)) if v is not None},
    }
    if svc.cluster_ip is not None:
        manifest["spec"]["clusterIP"] = svc.cluster_ip
    if svc.external_ips:
        manifest["spec"]["externalIPs"] = list(svc.external_ips)
    if svc.load_balancer_source_ranges:
        manifest["spec"]["loadBalancerSourceRanges"] = list(svc.load_balancer_source_ranges)
    if svc.load_balancer_ips:
        manifest["status"] = {"loadBalancer": {"ingress": [
            {"ip": ip} for ip in svc.load_balancer_ips]}}
    if svc.topology_mode is not None:
        manifest["metadata"]["annotations"] = {
            "service.kubernetes.io/topology-mode": svc.topology_mode}
    return manifest
