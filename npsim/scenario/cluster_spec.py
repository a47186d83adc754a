"""The ``cluster:`` section of a scenario: nodes, network, kube-proxy, control plane,
firewalls (their rules are read by the checks, npsim/scenario/checks.py)."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from npsim.dists import Constant, Distribution, LogNormal
from npsim.scenario.limits import Workers
from npsim.scenario.nodeports import PortRange
from npsim.scenario.quantity import memory_bytes
from npsim.scenario.specbase import Integer, Model
from npsim.scenario.unique import repeated
from npsim.units import Seconds

PROXY_MODES = ("iptables", "nftables", "ipvs", "userspace")
ProxyMode = Literal["iptables", "nftables", "ipvs", "userspace"]


# a Node's name is a DNS-1123 subdomain (k8s pkg/apis/core/validation ValidateNodeName:
# apimachinery IsDNS1123Subdomain); a NUL or a 100,000-character name was taken as given
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


class TaintSpec(Model):
    """A node taint (v1 Taint): the scheduler keeps pods that do not tolerate it off the
    node (NoSchedule, NoExecute) or prefers other nodes (PreferNoSchedule)."""

    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


def _memory(value: Any) -> Any:
    return None if value is None else memory_bytes(value)


class NodeSpec(Model):
    name: str = Field(min_length=1)
    zone: str = "zone-a"
    proxy_mode: ProxyMode | None = None  # a node half-way through a mode migration
    sync_delay: Seconds = 0.0  # extra delay before this node's kube-proxy applies a change
    # allocatable CPU: weighs topology-mode Auto
    cpu: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    # what placement: scheduler reads (npsim/cluster/scheduler.py): allocatable memory
    # (a quantity such as 15Gi; not given: not limited), the kubelet's maxPods, labels
    # (kubernetes.io/hostname and topology.kubernetes.io/zone are added), taints, cordon
    memory: Annotated[int | None, BeforeValidator(_memory)] = None
    max_pods: Integer = Field(default=110, ge=1)
    labels: dict[str, str] = {}
    taints: list[TaintSpec] = []
    unschedulable: bool = False
    address: str | None = None
    # a second local address (another NIC, a VIP): where ``address: secondary`` clients
    # aim; only ``kubeProxy.nodePortAddresses`` CIDRs read it (npsim/proxy/nodeport_addresses.py)
    secondary_address: str | None = None
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    firewall: FirewallSpec | None = None  # this node's host firewall (replaces the cluster's)
    # down for the whole run, detected but not yet evicted (npsim/scenario/faultplan.py
    # ``FaultPlan.down``): what ``--each-node-down`` sets, one node at a time
    down: bool = False

    @field_validator("name")
    @classmethod
    def _dns_subdomain(cls, v: str) -> str:
        if len(v) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(v):
            raise ValueError(f"Invalid value: {v[:80]!r}: a node name must be a lowercase "
                             "RFC 1123 subdomain of at most 253 characters: lower case "
                             "alphanumerics, '-' or '.', starting and ending with an "
                             "alphanumeric (e.g. 'node-1')")
        return v

    @field_validator("address", "secondary_address")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.IPv4Address(v)
        return v

    @model_validator(mode="after")
    def _two_addresses(self) -> NodeSpec:
        if self.secondary_address is not None and self.secondary_address == self.address:
            raise ValueError(f"secondaryAddress {self.secondary_address} is the node's "
                             "address; give another local address or leave it out")
        return self

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

    workers: Annotated[Integer, Workers] = Field(default=1, ge=1)
    latency: Distribution = Constant(dist="constant", value=50e-6)


class OtherServices(Model):
    """Services in the cluster whose traffic is not simulated but whose rules cost."""

    count: Integer = Field(default=0, ge=0)
    endpoints_each: Integer = Field(default=10, ge=0)


def _flag_list(value: Any) -> Any:
    """The flag's form too: ``primary`` or ``10.0.0.0/8,192.168.0.0/16``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_node_port_addresses(values: list[str]) -> list[str]:
    """kube-proxy's validateKubeProxyNodePortAddress (pkg/proxy/apis/config/validation):
    "primary" only alone, each other value a CIDR; npsim's clusters are IPv4, so an IPv6
    CIDR (kube-proxy's other family) is refused too."""
    for i, value in enumerate(values):
        if value == "primary":
            if len(values) != 1:
                raise ValueError(f'[{i}]: Invalid value: "primary": can\'t use both '
                                 "'primary' and CIDRs")
            continue
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"[{i}]: Invalid value: {value!r}: must be a valid CIDR "
                             '(e.g. "192.168.0.0/16") or "primary"') from None
        if "/" not in value:
            raise ValueError(f"[{i}]: Invalid value: {value!r}: must be a valid CIDR: "
                             f"write the prefix length (e.g. {value}/32)")
        if net.version != 4:
            raise ValueError(f"[{i}]: Invalid value: {value!r}: npsim clusters are IPv4 "
                             "only; an IPv6 CIDR would apply to kube-proxy's IPv6 family, "
                             "which npsim does not simulate")
    return values


class KubeProxySpec(Model):
    """When each node's kube-proxy applies an endpoint change (``minSyncPeriod`` 1s).

    The change reaches a node after ``propagation`` (API server watch); kube-proxy syncs
    no sooner than ``minSyncPeriod`` after its previous sync; the sync itself takes
    ``syncBase`` plus, in iptables mode, ``syncPerRule`` for each NAT rule
    (5 + S x (2 + 3E) rules for S Services of E endpoints, TestNumberIptablesRules).
    """

    min_sync_period: Seconds = 1.0
    # full resync period; the node health server (/healthz, /livez) fails once a change
    # has waited 2 x syncPeriod for its sync (cmd/kube-proxy/app/server.go)
    sync_period: Seconds = 30.0
    # send to serving-terminating endpoints when none is ready (feature gate
    # ProxyTerminatingEndpoints); default from kubernetesVersion: on from v1.26
    terminating_fallback: bool | None = None
    propagation: Distribution = LogNormal(dist="lognormal", mean=0.1, cv=0.5)
    sync_base: Seconds = 0.01
    sync_per_rule: Seconds = 1.5e-6
    # --iptables-localhost-nodeports (default true, cmd/kube-proxy/app/options.go): a
    # NodePort answers on 127.0.0.1 in iptables mode (route_localnet), guarded by the
    # KUBE-FIREWALL "block incoming localnet connections" rule
    localhost_node_ports: bool = True
    # MASQUERADE --random-fully: written when the node's iptables supports it (1.6.2+,
    # every current distribution); false for an older iptables
    masquerade_random_fully: bool = True
    # the nfacct packet counters kube-proxy attaches when the kernel has xt_nfacct
    # (localhost_nps_accepted_pkts, ct_state_invalid_dropped_pkts; metrics.go)
    nfacct: bool = True
    # --nodeport-addresses: the node addresses NodePorts answer on. Not given (or []): the
    # mode's default, every local address (iptables, ipvs) or ["primary"] (nftables,
    # KEP-3866); "primary" alone: the node's address; else IPv4 CIDRs, 0.0.0.0/0 matching
    # every address (pkg/proxy/util/nodeport_addresses.go; what each mode writes for it:
    # npsim/proxy/nodeport_addresses.py)
    node_port_addresses: Annotated[list[str] | None, BeforeValidator(_flag_list)] = None

    @field_validator("node_port_addresses")
    @classmethod
    def _node_port_addresses(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else check_node_port_addresses(v)


class ControlPlaneSpec(Model):
    """Node-lifecycle timings and eviction limits; each omitted one takes
    ``kubernetesVersion``'s default (npsim/cluster/lifecycle.py gives them with their
    upstream sources; kube-controller-manager flags ``--node-eviction-rate``,
    ``--secondary-node-eviction-rate``, ``--unhealthy-zone-threshold``,
    ``--large-cluster-size-threshold``)."""

    node_lease_renew_interval: Seconds | None = None
    node_monitor_period: Seconds | None = None
    node_monitor_grace_period: Seconds | None = None
    toleration_seconds: Seconds | None = None
    # nodes tainted (then evicted) per second in a zone; 0 stops evictions there
    node_eviction_rate: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    secondary_node_eviction_rate: float | None = Field(default=None, ge=0,
                                                       allow_inf_nan=False)
    unhealthy_zone_threshold: float | None = Field(default=None, gt=0, le=1)
    large_cluster_size_threshold: Integer | None = Field(default=None, ge=0)


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


class SecurityGroupRuleSpec(Model):
    protocol: Literal["tcp", "udp", "all"] = "tcp"
    ports: Integer | str  # 30080 or "30000-32767"
    source: str = "0.0.0.0/0"


class SecurityGroupSpec(Model):
    """A cloud security group in front of every node: allow rules, default deny."""

    rules: list[SecurityGroupRuleSpec] = []
    aliyun: str | None = None  # `aliyun ecs AuthorizeSecurityGroup ...` lines


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
    # when each pod's probes tick: ``random`` (the kubelet's probe worker runs on its own
    # period-long ticker, so against a hang its phase is anywhere in a period: drawn per
    # pod and probe) or ``aligned`` (from the container's start: the worst-case-free
    # timeline the labs teach)
    probe_phase: Literal["random", "aligned"] = "random"
    # per mode: {Services: [p01, p50, p90, p99]} first-packet cost, replacing the published
    # table for that mode (npsim/proxy/cost.py)
    cost_model: dict[Literal["iptables", "nftables", "ipvs"], dict[int, QuantileRow]] = {}
    # kube-apiserver --service-node-port-range (npsim/scenario/nodeports.py)
    service_node_port_range: str = Field(default="30000-32767", alias="serviceNodePortRange")
    # kube-proxy --cluster-cidr: the local-traffic detector and masquerade rules; default:
    # the smallest network holding every node's podCIDR
    cluster_cidr: str | None = Field(default=None, alias="clusterCIDR")
    # kube-apiserver --service-cluster-ip-range (kubeadm's default): nftables mode drops
    # traffic to its unallocated addresses (cluster-ips-check)
    service_cidr: str = Field(default="10.96.0.0/12", alias="serviceCIDR")
    firewall: FirewallSpec | None = None  # every node's host firewall (a node may override)
    security_group: SecurityGroupSpec | None = None

    @field_validator("service_node_port_range")
    @classmethod
    def _port_range(cls, v: str) -> str:
        return str(PortRange.parse(v))

    @field_validator("cluster_cidr", "service_cidr")
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
        dupes = repeated(names)
        if dupes:
            raise ValueError(f"node names must be unique; repeated: {', '.join(dupes)}")
        known = set(names)
        for link in self.network.links:
            for end in (link.from_, link.to):
                if end not in known:
                    raise ValueError(f"network link names unknown node {end!r}")
        return self
