"""Typed scenario models: what a scenario file may say, with defaults and units.

Unknown keys are rejected (a typo must not silently fall back to a default). Keys are
camelCase as in Kubernetes manifests; Python attributes are snake_case.
"""

from __future__ import annotations

import ipaddress
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
from npsim.units import PerSecond, Seconds, format_duration

PROXY_MODES = ("iptables", "nftables", "ipvs", "userspace")
ProxyMode = Literal["iptables", "nftables", "ipvs", "userspace"]


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


class NodeSpec(Model):
    name: str = Field(min_length=1)
    zone: str = "zone-a"
    proxy_mode: ProxyMode | None = None  # a node half-way through a mode migration
    sync_delay: Seconds = 0.0  # extra delay before this node's kube-proxy applies a change
    cpu: float = Field(default=1.0, gt=0)  # allocatable CPU: weighs topology-mode Auto
    address: str | None = None
    pod_cidr: str | None = Field(default=None, alias="podCIDR")

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
# node. Defaults from measurements.md section 1.6: a cross-node pod hop costs about
# +90 us (routed) to +135 us (VXLAN) over a same-node one on 10 GbE; cross-zone is not in
# the reference: 500 us is an assumption typical of cloud availability zones.
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

    workers: int = Field(default=1, ge=1)
    latency: Distribution = Constant(dist="constant", value=50e-6)


class OtherServices(Model):
    """Services in the cluster whose traffic is not simulated but whose rules cost."""

    count: int = Field(default=0, ge=0)
    endpoints_each: int = Field(default=10, ge=0)


class KubeProxySpec(Model):
    """When each node's kube-proxy applies an endpoint change (kubernetes-semantics 7.3).

    The change reaches a node after ``propagation`` (API server watch); kube-proxy syncs
    no sooner than ``minSyncPeriod`` after its previous sync; the sync itself takes
    ``syncBase`` plus, in iptables mode, ``syncPerRule`` for each NAT rule
    (5 + S x (2 + 3E) rules for S Services of E endpoints, TestNumberIptablesRules).
    """

    min_sync_period: Seconds = 1.0
    propagation: Distribution = LogNormal(dist="lognormal", mean=0.1, cv=0.5)
    sync_base: Seconds = 0.01
    sync_per_rule: Seconds = 1.5e-6


QuantileRow = Annotated[list[Seconds], Field(min_length=4, max_length=4)]


class ClusterSpec(Model):
    proxy_mode: ProxyMode = "iptables"
    nodes: list[NodeSpec] = Field(min_length=1)
    network: NetworkSpec = NetworkSpec()
    ipvs: IpvsSpec = IpvsSpec()
    userspace: UserspaceSpec = UserspaceSpec()
    kube_proxy: KubeProxySpec = KubeProxySpec()
    other_services: OtherServices = OtherServices()
    # per mode: {Services: [p01, p50, p90, p99]} first-packet cost, replacing the published
    # table for that mode (npsim/proxy/cost.py)
    cost_model: dict[Literal["iptables", "nftables", "ipvs"], dict[int, QuantileRow]] = {}

    @model_validator(mode="after")
    def _unique(self) -> ClusterSpec:
        names = [n.name for n in self.nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for link in self.network.links:
            for end in (link.from_, link.to):
                if end not in known:
                    raise ValueError(f"network link names unknown node {end!r}")
        return self


class WorkloadSpec(Model):
    """How the pods of one Deployment behave: the part a manifest cannot say."""

    workers: int = Field(default=1, ge=1)
    service_time: Distribution
    queue_limit: int | None = Field(default=None, ge=0)
    placement: Literal["spread"] | dict[str, Annotated[int, Field(ge=0)]] = "spread"


class RateStep(Model):
    at: Seconds
    rate: PerSecond


class ArrivalSpec(Model):
    """Open loop (``rate`` or ``schedule``) or closed loop (``users`` with ``thinkTime``)."""

    rate: PerSecond | None = None
    schedule: list[RateStep] | None = None
    users: int | None = Field(default=None, ge=1)
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
    ttl: Seconds
    order: Literal["rotate", "random"] = "rotate"


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
    a node's own network namespace (kubernetes-semantics.md 1.6 short-circuit rules)."""

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

    addresses: int = Field(ge=1)
    share: float = Field(gt=0, le=1)


class BalancerSpec(Model):
    """An external load balancer in front. ``snat: true`` makes the nodes see only the
    balancer's own addresses (an L7/proxying or SNAT-ing LB); ``false`` passes the
    client address through. Proxy headers do not change what kube-proxy sees."""

    snat: bool = False
    addresses: int = Field(default=1, ge=1)


class ClientSpec(Model):
    name: str = Field(min_length=1)
    service: str
    source: Annotated[SourceSpec | None, BeforeValidator(_source_shorthand)] = None
    target: Literal["nodePort", "clusterIP"] = "nodePort"
    nat_gateways: list[NatGateway] = []
    balancer: BalancerSpec | None = None
    port: int | str | None = None
    source_ips: int | None = Field(default=None, ge=1, alias="sourceIPs")
    source_ip_base: str | None = Field(default=None, alias="sourceIPBase")
    arrival: ArrivalSpec
    entry: Annotated[EntrySpec, BeforeValidator(_entry_shorthand)] = EntrySpec(random=True)
    requests_per_connection: int = Field(default=1, ge=1)
    rtt: Distribution = Constant(dist="constant", value=0.0)
    # how long a client waits for a connection that gets no answer before it gives up
    connect_timeout: Seconds = 10.0

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
        return self

    @property
    def n_source_ips(self) -> int:
        if self.source_ips is not None:
            return self.source_ips
        return self.arrival.users if self.arrival.users else 100


class RunSpec(Model):
    duration: Seconds | None = None
    requests: int | None = Field(default=None, ge=1)
    warmup: Seconds = 0.0
    seed: int = Field(default=1, ge=0)
    replications: int = Field(default=1, ge=1)

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


class ScaleSpec(Model):
    deployment: str
    replicas: int = Field(ge=0)


class EventSpec(Model):
    """Something that happens during the run (failures come in a later issue)."""

    at: Seconds
    scale: ScaleSpec


def _variant_list(value: Any) -> Any:
    return {"each": value} if isinstance(value, list) else value


class VariantSpec(Model):
    """One named change-set of a sweep: YAML key paths to values (``npsim run --set``)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.=,+-]*$")
    changes: dict[str, Any] = Field(default={}, alias="set")


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
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        return self


class ScenarioSpec(Model):
    npsim_version: str | None = None  # written into scenario.resolved.yaml
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    cluster: ClusterSpec
    manifests: list[str | dict[str, Any]] = Field(min_length=1)
    workloads: dict[str, WorkloadSpec] = Field(min_length=1)
    clients: list[ClientSpec] = Field(min_length=1)
    events: list[EventSpec] = []
    run: RunSpec
    # what ``npsim sweep`` varies (``npsim run`` ignores it)
    variants: Annotated[VariantsSpec | None, BeforeValidator(_variant_list)] = None
