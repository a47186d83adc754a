"""Typed scenario models: what a scenario file may say, with defaults and units.

Unknown keys are rejected (a typo must not silently fall back to a default). Keys are
camelCase as in Kubernetes manifests; Python attributes are snake_case.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from npsim.dists import Constant, Distribution, LogNormal
from npsim.scenario.nodeports import PortRange
from npsim.units import PerSecond, Seconds, format_duration

PROXY_MODES = ("iptables", "nftables", "ipvs", "userspace")
ProxyMode = Literal["iptables", "nftables", "ipvs", "userspace"]


def _refuse_bool(value: Any) -> Any:
    """pydantic's lax mode reads ``true`` as 1; a boolean where a count or port is
    expected is a mistake in the scenario, not a number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got the boolean {str(value).lower()}")
    return value


# every integer field of the scenario: a whole number, never a YAML boolean
Integer = Annotated[int, BeforeValidator(_refuse_bool)]


def repeated(names: list[str]) -> list[str]:
    """The names given more than once, sorted (counted once: 40,000 alert rules or
    variants took minutes with a count per name)."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_assignment=True,
    )
    # where this model sits in the scenario (``cluster.ipvs``), for assignment errors
    _npsim_path: str | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        """Assignments are validated; YAML keys work as names (``proxyMode``); errors
        are :class:`ScenarioError` naming the path, like a scenario file's."""
        if name.startswith("_"):
            super().__setattr__(name, value)
            return
        from npsim.scenario.changes import assignment_error, checked_field, label_paths

        field = checked_field(self, name)
        try:
            super().__setattr__(field, value)
        except ValidationError as exc:
            raise assignment_error(self, field, exc) from None
        if self._npsim_path is not None:  # a new section learns where it sits
            label_paths(self, self._npsim_path)


# a Node's name is a DNS-1123 subdomain (k8s pkg/apis/core/validation ValidateNodeName:
# apimachinery IsDNS1123Subdomain); a NUL or a 100,000-character name was taken as given
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class NodeSpec(Model):
    name: str = Field(min_length=1)
    zone: str = "zone-a"
    proxy_mode: ProxyMode | None = None  # a node half-way through a mode migration
    sync_delay: Seconds = 0.0  # extra delay before this node's kube-proxy applies a change
    # allocatable CPU: weighs topology-mode Auto
    cpu: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    address: str | None = None
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    firewall: FirewallSpec | None = None  # this node's host firewall (replaces the cluster's)

    @field_validator("name")
    @classmethod
    def _dns_subdomain(cls, v: str) -> str:
        if len(v) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(v):
            raise ValueError(f"Invalid value: {v[:80]!r}: a node name must be a lowercase "
                             "RFC 1123 subdomain of at most 253 characters: lower case "
                             "alphanumerics, '-' or '.', starting and ending with an "
                             "alphanumeric (e.g. 'node-1')")
        return v

    @field_validator("address")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.IPv4Address(v)
        return v

    @field_validator("pod_cidr")
    @classmethod
    def _cidr(cls, v: str | None) -> str | None:
        if v is not None:
            net = ipaddress.IPv4Network(v, strict=True)
            if net.num_addresses < 4:
                raise ValueError("a pod CIDR needs room for at least 2 pods (a /30 or larger)")
        return v


# Hop latencies are round-trip extras of the hop from the receiving node to the pod's
# node. Defaults from published CNI benchmarks (spidernet-io/spiderpool
# docs/concepts/io-performance.md; DaoCloud cni-performance.md): a cross-node pod hop costs about
# +90 us (routed) to +135 us (VXLAN) over a same-node one on 10 GbE; cross-zone is not in
# those benchmarks: 500 us is an assumption typical of cloud availability zones.
DEFAULT_SAME_NODE = Constant(dist="constant", value=0.0)
DEFAULT_SAME_ZONE = LogNormal(dist="lognormal", mean=90e-6, cv=0.3)
DEFAULT_CROSS_ZONE = LogNormal(dist="lognormal", mean=500e-6, cv=0.3)


class LinkSpec(Model):
    from_: str = Field(alias="from")
    to: str
    latency: Distribution


class NetworkSpec(Model):
    same_node: Distribution = DEFAULT_SAME_NODE
    same_zone: Distribution = DEFAULT_SAME_ZONE
    cross_zone: Distribution = DEFAULT_CROSS_ZONE
    links: list[LinkSpec] = []


class IpvsSpec(Model):
    scheduler: Literal["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "mh"] = "rr"
    # a closed connection counts as inactive this long (kernel FIN_WAIT/TIME_WAIT, 2 min)
    tcp_fin_timeout: Seconds = 120.0


class UserspaceSpec(Model):
    """The kube-proxy process every connection passes through in userspace mode.

    No published measurement: defaults are assumptions (one copy loop, 50 us a request).
    """

    workers: Integer = Field(default=1, ge=1)
    latency: Distribution = Constant(dist="constant", value=50e-6)


class OtherServices(Model):
    """Services in the cluster whose traffic is not simulated but whose rules cost."""

    count: Integer = Field(default=0, ge=0)
    endpoints_each: Integer = Field(default=10, ge=0)


class KubeProxySpec(Model):
    """When each node's kube-proxy applies an endpoint change (``minSyncPeriod`` 1s).

    The change reaches a node after ``propagation`` (API server watch); kube-proxy syncs
    no sooner than ``minSyncPeriod`` after its previous sync; the sync itself takes
    ``syncBase`` plus, in iptables mode, ``syncPerRule`` for each NAT rule
    (5 + S x (2 + 3E) rules for S Services of E endpoints, TestNumberIptablesRules).
    """

    min_sync_period: Seconds = 1.0
    propagation: Distribution = LogNormal(dist="lognormal", mean=0.1, cv=0.5)
    sync_base: Seconds = 0.01
    sync_per_rule: Seconds = 1.5e-6


class ControlPlaneSpec(Model):
    """Node-lifecycle timings; each omitted one takes ``kubernetesVersion``'s default
    (npsim/cluster/lifecycle.py gives them with their upstream sources)."""

    node_lease_renew_interval: Seconds | None = None
    node_monitor_period: Seconds | None = None
    node_monitor_grace_period: Seconds | None = None
    toleration_seconds: Seconds | None = None


QuantileRow = Annotated[list[Seconds], Field(min_length=4, max_length=4)]


class FirewallRuleSpec(Model):
    """One rule in YAML form: the same meaning as an iptables line (firewall.py)."""

    action: Literal["ACCEPT", "DROP", "REJECT", "LOG"]
    protocol: Literal["tcp", "udp"] | None = None
    source: str | None = None  # CIDR; "!10.0.0.0/8" negates
    dport: Integer | str | None = None  # 30080, "30000:32767" or "30000-32767"
    connlimit_above: Integer | None = Field(default=None, ge=0)
    connlimit_mask: Integer = Field(default=32, ge=0, le=32)
    log_prefix: str = ""


class FirewallChainSpec(Model):
    policy: Literal["ACCEPT", "DROP"] = "ACCEPT"
    rules: list[FirewallRuleSpec] = []


class FirewallSpec(Model):
    """A node's host firewall: YAML chains, then the tutorial's ``iptables`` and ``ufw``
    commands as written (appended in that order)."""

    input: FirewallChainSpec | None = None
    forward: FirewallChainSpec | None = None
    prerouting: FirewallChainSpec | None = None
    iptables: str | None = None
    ufw: str | None = None

    @model_validator(mode="after")
    def _readable(self) -> FirewallSpec:
        from npsim.cluster.firewall import build_node_firewall

        build_node_firewall(self)  # raises ValueError naming the line
        return self


class SecurityGroupRuleSpec(Model):
    protocol: Literal["tcp", "udp", "all"] = "tcp"
    ports: Integer | str  # 30080 or "30000-32767"
    source: str = "0.0.0.0/0"


class SecurityGroupSpec(Model):
    """A cloud security group in front of every node: allow rules, default deny."""

    rules: list[SecurityGroupRuleSpec] = []
    aliyun: str | None = None  # `aliyun ecs AuthorizeSecurityGroup ...` lines

    @model_validator(mode="after")
    def _readable(self) -> SecurityGroupSpec:
        from npsim.cluster.firewall import build_security_group

        build_security_group(self)
        return self


class ClusterSpec(Model):
    proxy_mode: ProxyMode = "iptables"
    nodes: list[NodeSpec] = Field(min_length=1)
    network: NetworkSpec = NetworkSpec()
    ipvs: IpvsSpec = IpvsSpec()
    userspace: UserspaceSpec = UserspaceSpec()
    kube_proxy: KubeProxySpec = KubeProxySpec()
    other_services: OtherServices = OtherServices()
    # picks the control plane's defaults (node-monitor-grace-period 40 s to 1.31, 50 s after)
    kubernetes_version: str = "1.32"
    control_plane: ControlPlaneSpec = ControlPlaneSpec()
    # per mode: {Services: [p01, p50, p90, p99]} first-packet cost, replacing the published
    # table for that mode (npsim/proxy/cost.py)
    cost_model: dict[Literal["iptables", "nftables", "ipvs"], dict[int, QuantileRow]] = {}
    # kube-apiserver --service-node-port-range (npsim/scenario/nodeports.py)
    service_node_port_range: str = Field(default="30000-32767", alias="serviceNodePortRange")
    # kube-proxy --cluster-cidr: the local-traffic detector and masquerade rules; default:
    # the smallest network holding every node's podCIDR
    cluster_cidr: str | None = Field(default=None, alias="clusterCIDR")
    firewall: FirewallSpec | None = None  # every node's host firewall (a node may override)
    security_group: SecurityGroupSpec | None = None

    @field_validator("service_node_port_range")
    @classmethod
    def _port_range(cls, v: str) -> str:
        return str(PortRange.parse(v))

    @field_validator("cluster_cidr")
    @classmethod
    def _cluster_cidr(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.IPv4Network(v, strict=True)
        return v

    @model_validator(mode="after")
    def _pods_in_cluster_cidr(self) -> ClusterSpec:
        if self.cluster_cidr is not None:
            net = ipaddress.IPv4Network(self.cluster_cidr)
            outside = [n.name for n in self.nodes
                       if n.pod_cidr and not ipaddress.IPv4Network(n.pod_cidr).subnet_of(net)]
            if outside:
                raise ValueError(f"clusterCIDR {net} does not hold the podCIDR of node(s) "
                                 f"{', '.join(outside)}")
        return self

    @field_validator("kubernetes_version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        if isinstance(v, int | float) and not isinstance(v, bool):
            raise ValueError(f'write the version in quotes, e.g. "1.32" (YAML reads {v} as a '
                             "number: 1.30 would become 1.3)")
        if not isinstance(v, str) or not re.fullmatch(r"v?1\.[0-9]+(\.[0-9]+)?", v):
            raise ValueError(f'expected a Kubernetes version such as "1.32", got {v!r}')
        return v

    @model_validator(mode="after")
    def _unique(self) -> ClusterSpec:
        names = [n.name for n in self.nodes]
        seen: set[str] = set()
        dupes = sorted({n for n in names if n in seen or seen.add(n)})  # O(n), not O(n^2)
        if dupes:
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for link in self.network.links:
            for end in (link.from_, link.to):
                if end not in known:
                    raise ValueError(f"network link names unknown node {end!r}")
        return self


class PodSpec(Model):
    """One pod placed by hand: on a named node, at its own address, with the endpoint
    conditions an EndpointSlice reports for it (``discovery.k8s.io/v1`` EndpointConditions:
    ``serving`` defaults to ``ready``; a terminating pod is used only when a Service has no
    ready endpoint, as kube-proxy's ``CategorizeEndpoints`` falls back to serving ones)."""

    node: str = Field(min_length=1)
    ip: str
    name: str | None = None
    ready: bool = True
    serving: bool | None = None
    terminating: bool = False

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str) -> str:
        ipaddress.IPv4Address(v)
        return v


class WorkloadSpec(Model):
    """How the pods of one Deployment behave: the part a manifest cannot say.

    ``pods`` places the pods by hand (an imported cluster, or the backends of a
    selector-less Service: then the workload needs no Deployment and ``labels`` and
    ``namespace`` say what its pods carry)."""

    workers: Integer = Field(default=1, ge=1)
    service_time: Distribution
    queue_limit: Integer | None = Field(default=None, ge=0)
    placement: Literal["spread"] | dict[str, Annotated[Integer, Field(ge=0)]] = "spread"
    # a new pod's container starts this long after it is scheduled (image present)
    startup: Seconds = 1.0
    # on SIGTERM: ``exit`` at once (in-flight requests reset) or ``drain``: refuse new
    # connections, finish what it has, then exit
    on_sigterm: Literal["exit", "drain"] = "drain"
    pods: list[PodSpec] | None = None
    labels: dict[str, str] | None = None
    namespace: str | None = None

    @model_validator(mode="after")
    def _explicit_pods(self) -> WorkloadSpec:
        if self.pods is not None and self.placement != "spread":
            raise ValueError("give either 'placement' or explicit 'pods', not both")
        if self.pods is None and (self.labels is not None or self.namespace is not None):
            raise ValueError("'labels' and 'namespace' describe explicit 'pods'; without "
                             "'pods' they come from the Deployment")
        if self.pods is not None:
            seen: set[str] = set()
            dupes = sorted({p.ip for p in self.pods if p.ip in seen or seen.add(p.ip)})
            if dupes:
                raise ValueError(f"pod addresses must be unique; repeated: {', '.join(dupes)}")
        return self


class RateStep(Model):
    at: Seconds
    rate: PerSecond


class ArrivalSpec(Model):
    """Open loop (``rate`` or ``schedule``) or closed loop (``users`` with ``thinkTime``)."""

    rate: PerSecond | None = None
    schedule: list[RateStep] | None = None
    users: Integer | None = Field(default=None, ge=1)
    think_time: Distribution | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> ArrivalSpec:
        modes = [self.rate is not None, self.schedule is not None, self.users is not None]
        if sum(modes) != 1:
            raise ValueError(
                "give exactly one of 'rate' (open loop, e.g. 500/s), 'schedule' "
                "(open loop, list of {at, rate}) or 'users' (closed loop, with thinkTime)"
            )
        if self.users is None and self.think_time is not None:
            raise ValueError("'thinkTime' only applies to a closed loop ('users')")
        if self.users is not None and self.think_time is None:
            self.think_time = Constant(dist="constant", value=0.0)
        if self.schedule is not None:
            if not self.schedule:
                raise ValueError("'schedule' needs at least one {at, rate} step")
            times = [s.at for s in self.schedule]
            if times[0] != 0:
                raise ValueError("the first schedule step must be 'at: 0s'")
            if any(b <= a for a, b in zip(times, times[1:], strict=False)):
                raise ValueError("schedule steps must be in increasing 'at' order")
        if self.rate == 0:
            raise ValueError("rate must be > 0 (omit the population to send nothing)")
        if self.schedule is not None and not any(step.rate > 0 for step in self.schedule):
            raise ValueError("every schedule step has rate 0: the population sends nothing")
        return self

    @property
    def closed(self) -> bool:
        return self.users is not None

    def steps(self) -> list[tuple[float, float]]:
        """(start time, rate) pairs for an open loop."""
        if self.schedule is not None:
            return [(s.at, s.rate) for s in self.schedule]
        return [(0.0, float(self.rate or 0.0))]


class DnsEntry(Model):
    """DNS round robin over every node's A record, cached by each client for ``ttl``.

    ``order``: how the server orders the answer (``rotate``: a classic round-robin
    server; ``random``: CoreDNS ``loadbalance``). ``client``: what the client library
    does with the list: ``pin`` uses the first address until the cache expires (glibc
    getaddrinfo + one connect), ``rotate`` walks the cached list one address per new
    connection, ``failover`` keeps the first address but moves to the next one after a
    failed connection (curl / Go's dialer trying each address in turn).
    """

    ttl: Seconds
    order: Literal["rotate", "random"] = "rotate"
    client: Literal["pin", "rotate", "failover"] = "pin"


def _entry_shorthand(value: Any) -> Any:
    if value == "random":
        return {"random": True}
    return value


class EntrySpec(Model):
    """How a client reaches a node: one named node, a random node, or DNS round-robin.

    ``address`` says which of the node's addresses the client aims at: ``primary``, a
    ``secondary`` address, or ``localhost`` (a client on the node itself).
    """

    node: str | None = None
    random: bool | None = None
    dns: DnsEntry | None = None
    address: Literal["primary", "secondary", "localhost"] = "primary"

    @model_validator(mode="after")
    def _one(self) -> EntrySpec:
        if self.address == "localhost" and self.node is None:
            raise ValueError("'address: localhost' needs a named node ({node: NAME})")
        if sum(x is not None for x in (self.node, self.random, self.dns)) != 1:
            raise ValueError(
                "give exactly one of 'random', {node: NAME} or {dns: {ttl: 30s}}"
            )
        if self.random is False:
            raise ValueError("'random: false' is not an entry; name a node or use dns")
        return self

    @property
    def kind(self) -> str:
        return "node" if self.node is not None else "dns" if self.dns is not None else "random"


class SourceSpec(Model):
    """Where a population sends from: outside the cluster (default), a pod on a node, or
    a node's own network namespace (kube-proxy's KUBE-EXT short-circuit rules)."""

    pod: str | None = None
    host: str | None = None

    @model_validator(mode="after")
    def _one(self) -> SourceSpec:
        if (self.pod is None) == (self.host is None):
            raise ValueError("give exactly one of {pod: NODE} or {host: NODE} (or 'external')")
        return self

    @property
    def kind(self) -> str:
        return "pod" if self.pod is not None else "host"

    @property
    def node(self) -> str:
        return self.pod if self.pod is not None else self.host  # type: ignore[return-value]


def _source_shorthand(value: Any) -> Any:
    return None if value == "external" else value


class NatGateway(Model):
    """A share of the population's users behind a few shared addresses (corporate NAT)."""

    addresses: Integer = Field(ge=1)
    share: float = Field(gt=0, le=1, allow_inf_nan=False)


class HealthCheckSpec(Model):
    """Active health checks of every node (HAProxy ``check inter 2s rise 2 fall 3``).

    ``port: nodePort`` opens a TCP connection to Node:NodePort (it succeeds when the
    node answers and kube-proxy forwards it to a live pod); ``healthCheckNodePort``
    asks kube-proxy's per-Service health server (``type: LoadBalancer`` with
    ``externalTrafficPolicy: Local`` only): HTTP 200 iff the node has a local ready
    endpoint, else 503 (k8s pkg/proxy/healthcheck/service_health.go).
    """

    interval: Seconds = 2.0
    timeout: Seconds = 1.0
    rise: Integer = Field(default=2, ge=1)
    fall: Integer = Field(default=3, ge=1)
    port: Literal["nodePort", "healthCheckNodePort"] = "nodePort"

    @model_validator(mode="after")
    def _timeout(self) -> HealthCheckSpec:
        if self.interval <= 0:
            raise ValueError("healthCheck interval must be > 0")
        if self.timeout <= 0 or self.timeout > self.interval:
            raise ValueError("healthCheck timeout must be > 0 and at most the interval")
        return self


class PassiveCheckSpec(Model):
    """nginx ``max_fails`` / ``fail_timeout``: after ``maxFails`` failed connections to a
    node within ``failTimeout`` the node gets no traffic for ``failTimeout``."""

    max_fails: Integer = Field(default=1, ge=1)
    fail_timeout: Seconds = 10.0


class BalancerSpec(Model):
    """An external load balancer in front. ``snat: true`` makes the nodes see only the
    balancer's own addresses (an L7/proxying or SNAT-ing LB); ``false`` passes the
    client address through. Proxy headers do not change what kube-proxy sees.

    With ``algorithm`` (or health checks) the balancer itself spreads connections over
    every Node:NodePort (the tutorial's nginx/HAProxy upstream): ``roundRobin``,
    ``leastConnections`` (fewest requests in flight) or ``random``; a node it cannot
    reach fails the request after ``connectTimeout`` (nginx ``proxy_connect_timeout``).
    """

    snat: bool = False
    addresses: Integer = Field(default=1, ge=1)
    algorithm: Literal["roundRobin", "leastConnections", "random"] | None = None
    health_check: HealthCheckSpec | None = None
    passive: PassiveCheckSpec | None = None
    connect_timeout: Seconds = 5.0
    # after a failed connect to a node, try this many other nodes (nginx
    # proxy_next_upstream / proxy_next_upstream_tries; HAProxy retries + redispatch);
    # each try is a row of its own (attempt, retry_of), sent as the failure is known
    next_upstream: Integer = Field(default=0, ge=0)

    @property
    def in_front(self) -> bool:
        """The balancer picks the node (not the client's ``entry``)."""
        return (self.algorithm is not None or self.health_check is not None
                or self.passive is not None or self.next_upstream > 0)


class BackoffSpec(Model):
    """Wait before retry k (k = 1, 2, ...): min(max, base x multiplier^(k-1)), with
    ``full`` jitter a uniform draw below that (AWS "full jitter")."""

    base: Seconds = 0.1
    multiplier: float = Field(default=2.0, ge=1)
    max: Seconds = 10.0
    jitter: Literal["none", "full"] = "full"


class RetryBudgetSpec(Model):
    """Finagle's RetryBudget: retries within the last ``window`` may number at most
    ``minPerSecond`` x window + ``ratio`` x first attempts sent in that window."""

    ratio: float = Field(default=0.2, ge=0)
    min_per_second: float = Field(default=10.0, ge=0)
    window: Seconds = 10.0


class RetrySpec(Model):
    """A failed request is sent again (on a new connection) after a backoff, at most
    ``attempts`` more times; ``retryOn`` limits which failure reasons are retried
    (default: every reason)."""

    attempts: Integer = Field(default=2, ge=1)
    backoff: BackoffSpec = BackoffSpec()
    retry_on: list[str] | None = None
    budget: RetryBudgetSpec | None = None


class TlsSpec(Model):
    """HTTPS termination for a population (npsim/sim/tls.py): where, and its costs."""

    terminate: Literal["pod", "balancer"]
    version: Literal["1.2", "1.3"] = "1.3"
    handshake_cpu: Seconds = 1e-3  # assumption: RSA-2048 signature + ECDHE, one core
    resumed_cpu: Seconds = 1e-4
    resumption: float = Field(default=0.0, ge=0, le=1)  # share of new connections resuming
    balancer_cores: Integer = Field(default=2, ge=1)  # cores for handshakes at the balancer


class ClientSpec(Model):
    name: str = Field(min_length=1)
    service: str
    source: Annotated[SourceSpec | None, BeforeValidator(_source_shorthand)] = None
    target: Literal["nodePort", "clusterIP"] = "nodePort"
    nat_gateways: list[NatGateway] = []
    balancer: BalancerSpec | None = None
    port: Integer | str | None = None
    source_ips: Integer | None = Field(default=None, ge=1, alias="sourceIPs")
    source_ip_base: str | None = Field(default=None, alias="sourceIPBase")
    arrival: ArrivalSpec
    entry: Annotated[EntrySpec, BeforeValidator(_entry_shorthand)] = EntrySpec(random=True)
    requests_per_connection: Integer = Field(default=1, ge=1)
    rtt: Distribution = Constant(dist="constant", value=0.0)
    # how long a client waits for a connection that gets no answer before it gives up;
    # none: the kernel's SYN retransmissions alone (synRetries 6 -> 127 s)
    connect_timeout: Seconds | None = 10.0
    syn_retries: Integer = Field(default=6, ge=0, le=20)  # net.ipv4.tcp_syn_retries
    request_timeout: Seconds | None = None  # wait for the response once the request is sent
    retries: RetrySpec | None = None
    # when the population sends: from ``start``, until ``stop``, at most ``requests``
    start: Seconds = 0.0
    stop: Seconds | None = None
    requests: Integer | None = Field(default=None, ge=1)
    tls: TlsSpec | None = None  # HTTPS: handshake per new connection (tutorial 4.3)

    @field_validator("source_ip_base")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.IPv4Address(v)
        return v

    @model_validator(mode="after")
    def _where_from(self) -> ClientSpec:
        if self.target == "clusterIP" and (self.source is None or self.source.kind != "pod"):
            raise ValueError("'target: clusterIP' needs in-cluster clients: source: {pod: NODE}")
        if sum(g.share for g in self.nat_gateways) > 1 + 1e-9:
            raise ValueError("natGateways shares add up to more than 1")
        if self.source is not None and (self.nat_gateways or self.balancer):
            raise ValueError("natGateways and balancer apply to external clients only")
        if self.source_ip_base is not None:
            last = int(ipaddress.IPv4Address(self.source_ip_base)) + self.n_source_ips - 1
            if last > 0xFFFFFFFF:
                raise ValueError(f"sourceIPBase {self.source_ip_base} has no room for "
                                 f"{self.n_source_ips} addresses")
        elif self.source is None and self.n_source_ips > 1 << 17:
            raise ValueError("more than 131072 sourceIPs need an explicit sourceIPBase (the "
                             "default ranges of two populations would overlap)")
        if len(self.nat_gateways) > 16 or any(g.addresses > 255 for g in self.nat_gateways):
            raise ValueError("at most 16 natGateways of at most 255 addresses each")
        if self.balancer is not None and self.balancer.addresses > 255:
            raise ValueError("a balancer has at most 255 addresses")
        if (self.balancer is not None and self.balancer.next_upstream
                and self.retries is not None):
            raise ValueError("give either balancer.nextUpstream or retries (the balancer's "
                             "tries are retries without backoff)")
        if self.balancer is not None and self.balancer.in_front and self.entry.kind != "random":
            raise ValueError("a balancer with algorithm/healthCheck/passive picks the node "
                             "itself: leave 'entry' out")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError("'stop' must be after 'start'")
        if self.retries is not None and self.retries.retry_on is not None:
            from npsim.outcomes import REASONS

            unknown = sorted(set(self.retries.retry_on) - set(REASONS.values()) - {""})
            if unknown:
                raise ValueError(f"retries.retryOn: unknown failure reason(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(r for r in REASONS.values() if r)})")
        return self

    @property
    def n_source_ips(self) -> int:
        if self.source_ips is not None:
            return self.source_ips
        return self.arrival.users if self.arrival.users else 100


def _size(value: Any) -> Any:
    from npsim.units import parse_size

    return parse_size(value) if isinstance(value, str) else value


class LimitsSpec(Model):
    """Raise (or lower) the guards npsim applies before a run (README "Limits")."""

    max_requests: Integer | None = Field(default=None, ge=1)
    max_memory: Annotated[Annotated[Integer, Field(ge=1)] | None, BeforeValidator(_size)] = None
    max_nodes: Integer | None = Field(default=None, ge=1)
    max_pods: Integer | None = Field(default=None, ge=1)
    max_services: Integer | None = Field(default=None, ge=1)


class RunSpec(Model):
    duration: Seconds | None = None
    requests: Integer | None = Field(default=None, ge=1)
    warmup: Seconds = 0.0
    seed: Integer = Field(default=1, ge=0)
    replications: Integer = Field(default=1, ge=1)
    # width of a row of timeseries.parquet (throughput, failures, latency, node views)
    timeseries_bucket: Seconds = Field(default=1.0, gt=0)
    limits: LimitsSpec = LimitsSpec()

    # field checks first, so a scenario file's error points at the offending key
    @field_validator("requests")
    @classmethod
    def _not_both(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("duration") is not None:
            raise ValueError("give either 'duration' or 'requests', not both")
        return v

    @field_validator("warmup")
    @classmethod
    def _warmup_shorter(cls, v: float, info: ValidationInfo) -> float:
        duration = info.data.get("duration")
        if duration is not None and v >= duration:
            raise ValueError(f"warmup ({format_duration(v)}) must be shorter than duration "
                             f"({format_duration(duration)})")
        return v

    @model_validator(mode="after")
    def _stop(self) -> RunSpec:
        if (self.duration is None) == (self.requests is None):
            raise ValueError("give exactly one of 'duration' (e.g. 60s) or 'requests' (a count)")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be > 0")
        if self.duration is not None and self.warmup >= self.duration:
            raise ValueError("warmup must be shorter than duration")
        return self


class ProbeAlert(Model):
    """Blackbox probe of every Node:NodePort, alert on ``probe_success == 0`` (the
    tutorial's ``up{job="nodeport-services"} == 0``)."""

    interval: Seconds = Field(default=15.0, gt=0)  # scrape interval


class ThresholdAlert(Model):
    """A value over the requests that ended in the last ``window`` above ``above``."""

    above: float = Field(ge=0)
    window: Seconds = 30.0


class AlertSpec(Model):
    """One Prometheus-style rule: exactly one of ``probe``, ``errorRatio`` (failed /
    ended requests) or ``latencyP99`` (seconds, e.g. ``above: 0.25``), true at every
    evaluation for at least ``for`` before it fires."""

    name: str = Field(min_length=1)
    probe: ProbeAlert | None = None
    error_ratio: ThresholdAlert | None = None
    latency_p99: ThresholdAlert | None = Field(default=None, alias="latencyP99")
    for_: Seconds = Field(default=0.0, alias="for")

    @model_validator(mode="after")
    def _one(self) -> AlertSpec:
        if sum(x is not None for x in (self.probe, self.error_ratio, self.latency_p99)) != 1:
            raise ValueError("give exactly one of 'probe', 'errorRatio' or 'latencyP99'")
        return self

    @property
    def kind(self) -> str:
        return ("probe" if self.probe is not None else
                "error_ratio" if self.error_ratio is not None else "latency_p99")


class SloSpec(Model):
    """Availability objective: the error budget is (1 - availability) of requests."""

    availability: float = Field(gt=0, lt=1)
    window: Seconds = 30 * 86400.0  # the SLO period the budget belongs to


class MonitoringSpec(Model):
    """Alert rules over the simulated metrics, evaluated every ``evaluationInterval``
    (Prometheus ``evaluation_interval``), and an optional SLO."""

    evaluation_interval: Seconds = Field(default=15.0, gt=0)
    alerts: list[AlertSpec] = []
    slo: SloSpec | None = None

    @model_validator(mode="after")
    def _names(self) -> MonitoringSpec:
        names = [a.name for a in self.alerts]
        dupes = repeated(names)
        if dupes:
            raise ValueError(f"alert names must be unique; repeated: {', '.join(dupes)}")
        return self


class ScaleSpec(Model):
    deployment: str
    replicas: Integer = Field(ge=0)


class NodeTarget(Model):
    """A fault of a whole node: ``{node: node-2}``."""

    node: str


class PodTarget(Model):
    """A fault of one pod, named as npsim names them: ``<deployment>-<ordinal>``."""

    pod: str


class PodCrashSpec(PodTarget):
    """The container exits. ``runsFor``: after each restart it runs this long and exits
    again (a crash loop) until the event's ``until``; omitted: it crashes once."""

    runs_for: Seconds | None = Field(default=None, gt=0)


class PodSlowdownSpec(PodTarget):
    """Service time multiplied by ``factor`` (a noisy neighbour) until ``until``."""

    factor: float = Field(gt=0)


class RolloutSpec(Model):
    """A rolling update of a Deployment to a new pod template (same behaviour, new pods),
    following the Deployment's ``strategy.rollingUpdate`` (maxSurge, maxUnavailable)."""

    deployment: str


FAULT_KINDS = ("scale", "node_crash", "node_partition", "kubelet_stop", "kube_proxy_stop",
               "pod_crash", "pod_hang", "pod_slowdown", "rollout")


class EventSpec(Model):
    """Something that happens at ``at``: exactly one kind; ``until`` ends a fault
    (recovery of a node, kubelet or kube-proxy; end of a hang, slowdown or crash loop)."""

    at: Seconds
    until: Seconds | None = None
    scale: ScaleSpec | None = None
    node_crash: NodeTarget | None = None
    node_partition: NodeTarget | None = None
    kubelet_stop: NodeTarget | None = None
    kube_proxy_stop: NodeTarget | None = None
    pod_crash: PodCrashSpec | None = None
    pod_hang: PodTarget | None = None
    pod_slowdown: PodSlowdownSpec | None = None
    rollout: RolloutSpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> EventSpec:
        given = [k for k in FAULT_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            names = ", ".join(to_camel(k) for k in FAULT_KINDS)
            raise ValueError(f"give exactly one event kind ({names})")
        if self.until is not None:
            if self.until <= self.at:
                raise ValueError("'until' must be later than 'at'")
            if given[0] in ("scale", "rollout"):
                raise ValueError(f"'until' does not apply to {to_camel(given[0])}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in FAULT_KINDS if getattr(self, k) is not None)

    @property
    def target(self) -> Any:
        return getattr(self, self.kind)


class PortBandSpec(Model):
    """A band of a NodePort plan (tutorial 3.3: web 30000-30099, api 30100-30199, ...)
    and the Services (``name`` or ``namespace/name``) that belong to it."""

    name: str = Field(min_length=1)
    range: str
    services: list[str] = []

    @field_validator("range")
    @classmethod
    def _range(cls, v: str) -> str:
        return str(PortRange.parse(v))


def _variant_list(value: Any) -> Any:
    return {"each": value} if isinstance(value, list) else value


class VariantSpec(Model):
    """One named change-set of a sweep: YAML key paths to values (``npsim run --set``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=,+-]*$")
    changes: dict[str, Any] = Field(default={}, alias="set")


MAX_VARIANTS = 1_000


class VariantsSpec(Model):
    """What ``npsim sweep`` compares: named change-sets (``each``), crossed with every
    combination of a ``grid`` of paths to value lists; ``baseline`` names the variant the
    others are compared with (default: the first)."""

    baseline: str | None = None
    each: list[VariantSpec] = []
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = {}
    # metrics in the sweep's report.md table (default: latency, throughput, spread)
    report: list[str] = []

    @model_validator(mode="after")
    def _something(self) -> VariantsSpec:
        if not self.each and not self.grid:
            raise ValueError("give 'each' (a list of {name, set}) and/or 'grid' "
                             "(paths to lists of values)")
        names = [v.name for v in self.each]
        dupes = repeated(names)
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        count = max(len(self.each), 1) * math.prod(len(values) for values in self.grid.values())
        if count > MAX_VARIANTS:  # each is validated before the sweep: 160,000 took hours
            raise ValueError(f"{count:,} variants, more than {MAX_VARIANTS:,}; sweep fewer "
                             "values (a planner, npsim plan, bisects a range instead)")
        return self


class ScenarioSpec(Model):
    npsim_version: str | None = None  # written into scenario.resolved.yaml
    # it names the result folder: longer than a file name may be, the run failed to save
    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    cluster: ClusterSpec
    manifests: list[str | dict[str, Any]] = Field(min_length=1)
    workloads: dict[str, WorkloadSpec] = Field(min_length=1)
    clients: list[ClientSpec] = Field(min_length=1)
    events: list[EventSpec] = []
    monitoring: MonitoringSpec | None = None
    run: RunSpec
    port_plan: list[PortBandSpec] = []  # checked by `npsim ports`
    # what ``npsim sweep`` varies (``npsim run`` ignores it)
    variants: Annotated[VariantsSpec | None, BeforeValidator(_variant_list)] = None
