"""The ``clients:`` section of a scenario: who sends, how often, from where, through
which balancer, with which retries and timeouts."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from npsim.dists import Constant, Distribution
from npsim.outcomes import REASONS
from npsim.scenario.limits import BalancerCores, Horizon, Retries
from npsim.scenario.specbase import Integer, Model
from npsim.units import PerSecond, Seconds, Timeout


class RateStep(Model):
    at: Horizon
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
    endpoint, else 503 (k8s pkg/proxy/healthcheck/service_health.go); ``proxyHealthz``
    and ``proxyLivez`` ask kube-proxy's node health server (port 10256), what cloud
    balancers check for Cluster-policy Services (KEP-3836): 200 unless a change has
    waited longer than 2 x ``syncPeriod`` for its sync (pkg/proxy/healthcheck/
    proxy_health.go).
    """

    interval: Seconds = 2.0
    timeout: Seconds = 1.0
    rise: Integer = Field(default=2, ge=1)
    fall: Integer = Field(default=3, ge=1)
    port: Literal["nodePort", "healthCheckNodePort", "proxyHealthz", "proxyLivez"] = \
        "nodePort"

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
    connect_timeout: Timeout = 5.0
    # after a failed connect to a node, try this many other nodes (nginx
    # proxy_next_upstream / proxy_next_upstream_tries; HAProxy retries + redispatch);
    # each try is a row of its own (attempt, retry_of), sent as the failure is known
    next_upstream: Annotated[Integer, Retries] = Field(default=0, ge=0)

    @property
    def in_front(self) -> bool:
        """The balancer picks the node (not the client's ``entry``)."""
        return (self.algorithm is not None or self.health_check is not None
                or self.passive is not None or self.next_upstream > 0)


class BackoffSpec(Model):
    """Wait before retry k (k = 1, 2, ...): min(max, base x multiplier^(k-1)), with
    ``full`` jitter a uniform draw below that (AWS "full jitter")."""

    base: Seconds = 0.1
    multiplier: float = Field(default=2.0, ge=1, allow_inf_nan=False)
    max: Seconds = 10.0
    jitter: Literal["none", "full"] = "full"


class RetryBudgetSpec(Model):
    """Finagle's RetryBudget: retries within the last ``window`` may number at most
    ``minPerSecond`` x window + ``ratio`` x first attempts sent in that window."""

    ratio: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    min_per_second: float = Field(default=10.0, ge=0, allow_inf_nan=False)
    window: Seconds = Field(default=10.0, gt=0)


class RetrySpec(Model):
    """A failed request is sent again (on a new connection) after a backoff, at most
    ``attempts`` more times; ``retryOn`` limits which failure reasons are retried
    (default: every reason)."""

    attempts: Annotated[Integer, Retries] = Field(default=2, ge=1)
    backoff: BackoffSpec = BackoffSpec()
    retry_on: list[str] | None = None
    budget: RetryBudgetSpec | None = None


def check_retry_on(retries: RetrySpec | None) -> None:
    """Refuse a ``retryOn`` reason npsim never gives a failure (a misspelt one would
    silently retry nothing), for a client population and a pod's call alike."""
    if retries is not None and retries.retry_on is not None:
        unknown = sorted(set(retries.retry_on) - set(REASONS.values()) - {""})
        if unknown:
            raise ValueError(f"retries.retryOn: unknown failure reason(s) {', '.join(unknown)} "
                             f"(known: {', '.join(r for r in REASONS.values() if r)})")


class TlsSpec(Model):
    """HTTPS termination for a population (npsim/sim/tls.py): where, and its costs."""

    terminate: Literal["pod", "balancer"]
    version: Literal["1.2", "1.3"] = "1.3"
    handshake_cpu: Seconds = 1e-3  # assumption: RSA-2048 signature + ECDHE, one core
    resumed_cpu: Seconds = 1e-4
    resumption: float = Field(default=0.0, ge=0, le=1)  # share of new connections resuming
    # cores for handshakes at the balancer
    balancer_cores: Annotated[Integer, BalancerCores] = Field(default=2, ge=1)


class ClientSpec(Model):
    name: str = Field(min_length=1)
    service: str
    source: Annotated[SourceSpec | None, BeforeValidator(_source_shorthand)] = None
    # what the client sends to: a node's NodePort, the ClusterIP (pods only), the
    # Service's first spec.externalIPs entry or its LoadBalancer ingress IP (VIP mode:
    # packets reach a node with the VIP as destination, as MetalLB or GCP deliver them)
    target: Literal["nodePort", "clusterIP", "externalIP", "loadBalancerIP"] = "nodePort"
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
    connect_timeout: Timeout | None = 10.0
    syn_retries: Integer = Field(default=6, ge=0, le=20)  # net.ipv4.tcp_syn_retries
    # the clients' Linux kernel ("5.15", "6.12"): from 6.5 SYNs are retransmitted 1 s
    # apart tcpSynLinearTimeouts (4) times first; default from kubernetesVersion
    # (npsim/cluster/lifecycle.py VERSION_DEFAULTS)
    kernel: str | None = None
    tcp_syn_linear_timeouts: Integer | None = Field(default=None, ge=0, le=20)
    request_timeout: Timeout | None = None  # wait for the response once the request is sent
    retries: RetrySpec | None = None
    # when the population sends: from ``start``, until ``stop``, at most ``requests``
    start: Horizon = 0.0
    stop: Horizon | None = None
    requests: Integer | None = Field(default=None, ge=1)
    tls: TlsSpec | None = None  # HTTPS: handshake per new connection (tutorial 4.3)

    @field_validator("source_ip_base")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is not None:
            ipaddress.IPv4Address(v)
        return v

    @field_validator("kernel", mode="before")
    @classmethod
    def _kernel_version(cls, v: Any) -> Any:
        if v is not None and not (isinstance(v, str)
                                  and re.fullmatch(r"[0-9]+\.[0-9]+(\.[0-9]+)?", v)):
            raise ValueError(f'expected a Linux kernel version in quotes such as "6.12" or '
                             f'"5.15", got {v!r}')
        return v

    @model_validator(mode="after")
    def _linear_needs_6_5(self) -> ClientSpec:
        if self.tcp_syn_linear_timeouts is not None and self.kernel is not None:
            major, minor = (int(x) for x in self.kernel.split(".")[:2])
            if (major, minor) < (6, 5):
                raise ValueError(f"tcpSynLinearTimeouts needs kernel 6.5 or later (the "
                                 f"sysctl does not exist on {self.kernel})")
        return self

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
        if self.balancer is not None and self.target in ("externalIP", "loadBalancerIP"):
            raise ValueError(f"a balancer sends to NodePorts; 'target: {self.target}' is "
                             "the path of packets that reach a node with the VIP itself")
        if self.balancer is not None and self.balancer.in_front and self.entry.kind != "random":
            raise ValueError("a balancer with algorithm/healthCheck/passive picks the node "
                             "itself: leave 'entry' out")
        if self.stop is not None and self.stop <= self.start:
            raise ValueError("'stop' must be after 'start'")
        check_retry_on(self.retries)
        return self

    @property
    def n_source_ips(self) -> int:
        if self.source_ips is not None:
            return self.source_ips
        return self.arrival.users if self.arrival.users else 100
