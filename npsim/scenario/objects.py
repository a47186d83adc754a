"""The Kubernetes objects a scenario's manifests define, as npsim reads them.

Plain data: what the parsers (services.py, deployments.py, slices.py) make of a manifest,
what the cluster model, the NodePort allocator and the checks read. Defaults are
Kubernetes' own where a manifest leaves a field out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from npsim.scenario.yamlio import plain

# v1.DefaultClientIPServiceAffinitySeconds; valid 1..86400 (MaxClientIPServiceAffinitySeconds)
DEFAULT_AFFINITY_TIMEOUT = 10800
MAX_AFFINITY_TIMEOUT = 86400
TERMINATION_GRACE_PERIOD = 30.0  # DefaultTerminationGracePeriodSeconds (SetDefaults_PodSpec)
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # discovery.k8s.io/v1 LabelServiceName


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
    # addresses outside the cluster (npsim/scenario/external_addresses.py)
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip (ipMode VIP)
    load_balancer_source_ranges: tuple[str, ...] = ()

    @property
    def externally_accessible(self) -> bool:
        """ServicePort.ExternallyAccessible without the NodePort: external IPs or LB VIPs."""
        return bool(self.external_ips or self.load_balancer_ips)


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
    # scheduling (npsim/scenario/scheduling.py): requests summed over the containers
    # (millicores, bytes), nodeSelector, node affinity terms, tolerations
    cpu_request: int = 0
    memory_request: int = 0
    node_selector: dict[str, str] = field(default_factory=dict)
    required_terms: tuple | None = None  # nodeSelectorTerms; None: no required affinity
    preferred_terms: tuple = ()  # (weight, term)
    tolerations: tuple = ()  # (key, operator, value, effect)
    # each toleration's tolerationSeconds (None: not set); () when none sets it
    toleration_seconds: tuple = ()

    @property
    def has_requests(self) -> bool:
        """Its pods request CPU or memory: ``placement: scheduler`` by default."""
        return bool(self.cpu_request or self.memory_request)


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
        return plain(self.doc)

