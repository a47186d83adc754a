"""NetworkPolicy ingress rules, judged on the source address the pod really sees.

Semantics from the Kubernetes docs (concepts/services-networking/network-policies.md):
a pod is isolated for ingress once any policy in its namespace selects it with policy
type Ingress; a connection is then allowed if some ingress rule of some selecting policy
allows it (rules add up, order does not matter): any of its ``from`` peers matches (none
given: every source) and any of its ``ports`` matches the pod's port (none given: every
port). Peers: ``ipBlock`` (``cidr`` minus ``except``), ``podSelector`` (pods of the
policy's namespace), ``namespaceSelector`` (npsim knows only the automatic
``kubernetes.io/metadata.name`` label). "Traffic to and from the node where a Pod is
running is always allowed": the receiving node itself (a same-node masqueraded hop
shows the node's bridge address) passes.

NetworkPolicy is enforced after kube-proxy's NAT on the node that hosts the pod, so
under ``externalTrafficPolicy: Cluster`` a connection that hopped shows the *receiving
node's* address: an ``ipBlock`` of the clients' range does not match it. Under Local the
client address is kept and the same ipBlock matches (the docs warn that whether NAT
happens before or after policy is not defined in general; for kube-proxy's NodePort
SNAT it is before, on the receiving node).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from npsim.scenario.expect import expect, selector
from npsim.scenario.problems import Problems
from npsim.scenario.yamlio import MarkedDict, plain


@dataclass(frozen=True)
class Peer:
    cidr: ipaddress.IPv4Network | None = None
    excepts: tuple[ipaddress.IPv4Network, ...] = ()
    pod_selector: dict[str, str] | None = None  # {} = every pod
    namespace_selector: dict[str, str] | None = None

    def matches(self, source: int, source_pod: tuple[str, dict[str, str]] | None,
                policy_namespace: str) -> bool:
        if self.cidr is not None:
            inside = (source & int(self.cidr.netmask)) == int(self.cidr.network_address)
            return inside and not any(
                (source & int(e.netmask)) == int(e.network_address) for e in self.excepts)
        if source_pod is None:
            return False  # selectors only match pods
        namespace, labels = source_pod
        if self.namespace_selector is not None:
            ns_labels = {"kubernetes.io/metadata.name": namespace}
            if not all(ns_labels.get(k) == v for k, v in self.namespace_selector.items()):
                return False
        elif namespace != policy_namespace:
            return False
        if self.pod_selector is not None:
            return all(labels.get(k) == v for k, v in self.pod_selector.items())
        return True


@dataclass(frozen=True)
class IngressRule:
    peers: tuple[Peer, ...] | None  # None: from everywhere
    ports: tuple[tuple[str, int | str | None], ...] | None  # (protocol, port); None: all

    def allows(self, source: int, source_pod: tuple[str, dict[str, str]] | None,
               namespace: str, protocol: str, port: int, port_names: dict[str, int]) -> bool:
        if self.ports is not None and not any(
                proto == protocol and (want is None or want == port
                                       or port_names.get(str(want)) == port)
                for proto, want in self.ports):
            return False
        return self.peers is None or any(p.matches(source, source_pod, namespace)
                                         for p in self.peers)


@dataclass
class NetworkPolicy:
    name: str
    namespace: str
    pod_selector: dict[str, str]
    ingress: tuple[IngressRule, ...]
    origin: str = ""
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    isolates: bool = True  # policyTypes includes Ingress

    def selects(self, namespace: str, labels: dict[str, str]) -> bool:
        return self.isolates and namespace == self.namespace and all(
            labels.get(k) == v for k, v in self.pod_selector.items())


def admits(policies: list[NetworkPolicy], namespace: str, labels: dict[str, str],
           source: int, source_pod: tuple[str, dict[str, str]] | None, protocol: str,
           port: int, port_names: dict[str, int]) -> tuple[bool, str]:
    """Whether a pod admits a connection, and which policy decided (or why none did)."""
    selecting = [p for p in policies if p.selects(namespace, labels)]
    if not selecting:
        return True, "no NetworkPolicy selects the pod"
    for policy in selecting:
        for rule in policy.ingress:
            if rule.allows(source, source_pod, namespace, protocol, port, port_names):
                return True, f"allowed by NetworkPolicy {policy.namespace}/{policy.name}"
    names = ", ".join(f"{p.namespace}/{p.name}" for p in selecting)
    return False, f"no ingress rule of NetworkPolicy {names} allows it"


# --- reading the manifest (networking.k8s.io/v1), ingress only ----------------------------


def parse_network_policy(doc: MarkedDict, p: Problems, pre: str,
                         origin: str) -> NetworkPolicy | None:
    """A NetworkPolicy's ingress side (the module's docstring says how it is judged)."""
    n_errors = len(p.errors)
    name = expect(doc, ["metadata", "name"], str, "the NetworkPolicy name", p, pre)
    namespace = str(doc.get("metadata", {}).get("namespace", "default"))
    spec = expect(doc, ["spec"], dict, "a spec", p, pre) or {}
    pod_selector = selector(doc, ["spec", "podSelector"], p, pre)
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
    pods = selector(doc, [*at, "podSelector"], p, pre) if "podSelector" in raw else None
    namespaces = (selector(doc, [*at, "namespaceSelector"], p, pre)
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
