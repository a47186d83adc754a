"""NodePort allocation as the Kubernetes API server does it.

Sources (kubernetes/kubernetes):

* ``pkg/registry/core/service/portallocator/allocator.go``: one bitmap over the range
  ``--service-node-port-range`` (default ``30000-32767``); ``calculateRangeOffset`` splits
  it into a *static* (lower) band of ``min(max(16, size // 32), 128)`` ports (none when
  the range has 16 ports or fewer) and a *dynamic* (upper) band. Errors ``ErrFull``
  ("range is full"), ``ErrAllocated`` ("provided port is already allocated"),
  ``ErrNotInRange`` ("provided port is not in the valid range. The range of valid ports
  is 30000-32767"). KEP-3668 (reserved NodePort range, GA 1.29).
* ``pkg/registry/core/service/allocator/bitmap.go`` ``randomScanStrategyWithOffset``:
  an automatic allocation draws a uniform start in the dynamic band and scans forward,
  wrapping inside the band, to the first free port; only when the dynamic band is full
  does it do the same inside the static band.
* ``pkg/registry/core/service/storage/alloc.go`` ``initNodePorts``: ports of one Service
  with the same ``port`` number (53/TCP and 53/UDP) share one nodePort; a port that
  requests a value allocates it, else the first port of that number allocates the next
  free one. A failure rejects the whole Service (its ports are released).
  ``allocHealthCheckNodePort``: LoadBalancer Services with ``externalTrafficPolicy:
  Local`` get one more port from the same range.

One allocator covers every protocol and the health-check ports. Services are created
in manifest order; the random stream is seeded from the run seed, so a scenario always
gets the same ports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from npsim.streams import Streams  # a leaf module: named seeded generators

if TYPE_CHECKING:
    import numpy as np

    from npsim.scenario.objects import Service

DEFAULT_RANGE = "30000-32767"  # kube-apiserver DefaultServiceNodePortRange
STATIC, DYNAMIC = "static", "dynamic"


class AllocationError(Exception):
    """An allocation failed; the message is the API server's."""


class NotInRange(AllocationError):
    pass


class AlreadyAllocated(AllocationError):
    pass


class RangeFull(AllocationError):
    pass


def range_offset(size: int) -> int:
    """Size of the static band (calculateRangeOffset): integer division, 16..128 ports,
    and no static band at all for a range of 16 ports or fewer."""
    if size <= 16:
        return 0
    return min(max(16, size // 32), 128)


@dataclass(frozen=True)
class PortRange:
    """A NodePort range: ``base`` and ``size`` (both ends counted), as net.PortRange."""

    base: int
    size: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """``"30000-32767"`` (or one port ``"30000"``), as --service-node-port-range."""
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
        if m is None:
            raise ValueError(f"expected a port range such as {DEFAULT_RANGE}, got {text!r}")
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) is not None else low
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"port range {text!r} must satisfy 1 <= low <= high <= 65535")
        return cls(low, high - low + 1)

    @property
    def last(self) -> int:
        return self.base + self.size - 1

    @property
    def offset(self) -> int:
        return range_offset(self.size)

    def contains(self, port: int) -> bool:
        return self.base <= port <= self.last

    def band(self, port: int) -> str:
        return STATIC if port < self.base + self.offset else DYNAMIC

    def bands(self) -> dict[str, tuple[int, int] | None]:
        """The (first, last) port of each band; None for an empty static band."""
        cut = self.base + self.offset
        return {STATIC: (self.base, cut - 1) if self.offset else None,
                DYNAMIC: (cut, self.last)}

    def __str__(self) -> str:
        return f"{self.base}-{self.last}"


class NodePortAllocator:
    """The API server's bitmap over one range (one for every protocol)."""

    def __init__(self, port_range: PortRange, rng: np.random.Generator) -> None:
        self.range = port_range
        self.rng = rng
        self._used = bytearray(port_range.size)  # 1 = allocated, by offset from base
        self.count = 0

    def has(self, port: int) -> bool:
        return self.range.contains(port) and bool(self._used[port - self.range.base])

    @property
    def free(self) -> int:
        return self.range.size - self.count

    def allocate(self, port: int) -> None:
        """Reserve a requested port (Allocate)."""
        if not self.range.contains(port):
            raise NotInRange("provided port is not in the valid range. The range of valid "
                             f"ports is {self.range}")
        at = port - self.range.base
        if self._used[at]:
            raise AlreadyAllocated("provided port is already allocated")
        self._used[at] = 1
        self.count += 1

    def allocate_next(self) -> int:
        """A free port by random start and forward scan, dynamic band first
        (randomScanStrategyWithOffset.AllocateBit)."""
        size, offset = self.range.size, self.range.offset
        if self.count >= size:
            raise RangeFull("range is full")
        used = self._used
        for low, span in ((offset, size - offset), (0, offset)):
            if span == 0:
                continue
            start = int(self.rng.integers(span))
            # first free offset in [low + start, low + span), then wrap to [low, low + start)
            at = used.find(0, low + start, low + span)
            if at < 0:
                at = used.find(0, low, low + start)
            if at >= 0:
                used[at] = 1
                self.count += 1
                return self.range.base + at
        raise RangeFull("range is full")  # pragma: no cover - count said otherwise

    def take(self, requested: int) -> int:
        """The requested port if one is asked for (0: none), else the next free one."""
        if requested:
            self.allocate(requested)
            return requested
        return self.allocate_next()

    def release(self, port: int) -> None:
        """Give a port back; releasing a free or out-of-range port is a no-op."""
        if self.has(port):
            self._used[port - self.range.base] = 0
            self.count -= 1


@dataclass
class ServicePorts:
    """What the allocator gave one Service: a nodePort per port index (0: none) and
    its healthCheckNodePort (0: none)."""

    service: str
    node_ports: list[int]
    requested: list[bool]
    health_check_node_port: int = 0
    health_check_requested: bool = False


@dataclass(frozen=True)
class Rejection:
    """A Service the API server refuses: the field path and the message."""

    service: str
    path: str  # e.g. "spec.ports[1].nodePort"; "" for an internal error
    message: str
    port: int | None = None  # the requested value, for "Invalid value: N"

    def __str__(self) -> str:
        if self.path:
            return f"{self.path}: Invalid value: {self.port}: {self.message}"
        return self.message


def needs_node_ports(service: Service) -> bool:
    """shouldAllocateNodePorts: NodePort always; LoadBalancer unless
    ``allocateLoadBalancerNodePorts: false``."""
    if service.type == "NodePort":
        return True
    return service.type == "LoadBalancer" and service.allocate_lb_node_ports


def needs_health_check(service: Service) -> bool:
    """apiservice.NeedsHealthCheck: LoadBalancer with externalTrafficPolicy Local."""
    return service.type == "LoadBalancer" and service.external_traffic_policy == "Local"


def allocate_service(allocator: NodePortAllocator,
                     service: Service) -> tuple[ServicePorts | None, Rejection | None]:
    """Create one Service's ports (initNodePorts, allocHealthCheckNodePort); on failure
    nothing stays allocated."""
    taken: list[int] = []
    by_port: dict[int, int] = {}
    result = ServicePorts(service.name, [0] * len(service.ports), [False] * len(service.ports))

    def rollback(rejection: Rejection) -> tuple[None, Rejection]:
        for port in taken:
            allocator.release(port)
        return None, rejection

    if service.type in ("NodePort", "LoadBalancer"):
        for i, sp in enumerate(service.ports):
            requested = sp.node_port or 0
            result.requested[i] = bool(requested)
            if not requested and not needs_node_ports(service):
                continue
            shared = by_port.get(sp.port, 0)
            if shared and requested in (0, shared):
                result.node_ports[i] = shared
                continue
            if not shared and not requested:
                # findRequestedNodePort: a later port of the same number may ask for one
                requested = next((later.node_port for later in service.ports[i + 1:]
                                  if later.port == sp.port and later.node_port), 0)
            try:
                value = allocator.take(requested)
            except RangeFull as exc:
                return rollback(Rejection(service.name, "",
                                          f"failed to allocate a nodePort: {exc}"))
            except AllocationError as exc:
                return rollback(Rejection(service.name, f"spec.ports[{i}].nodePort", str(exc),
                                          requested))
            taken.append(value)
            result.node_ports[i] = value
            by_port.setdefault(sp.port, value)
    if needs_health_check(service):
        requested = service.health_check_node_port or 0
        try:
            value = allocator.take(requested)
        except AllocationError as exc:
            text = (f"failed to allocate requested HealthCheck NodePort {requested}: {exc}"
                    if requested else f"failed to allocate a HealthCheck NodePort 0: {exc}")
            return rollback(Rejection(service.name, "", text))
        taken.append(value)
        result.health_check_node_port = value
        result.health_check_requested = bool(requested)
    return result, None


@dataclass
class Allocation:
    """Every Service's ports, in creation order, and the Services refused."""

    range: PortRange
    services: dict[str, ServicePorts] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)


def allocate_all(services: list[Service], port_range: PortRange,
                 rng: np.random.Generator) -> Allocation:
    """Create ``services`` one after another, as ``kubectl apply`` of the manifests would."""
    return _create(NodePortAllocator(port_range, rng), services)


def _create(allocator: NodePortAllocator, services: list[Service]) -> Allocation:
    out = Allocation(allocator.range)
    for service in services:
        ports, rejection = allocate_service(allocator, service)
        if ports is not None:
            out.services[service.name] = ports
        else:
            assert rejection is not None
            out.rejected.append(rejection)
    return out


def scenario_range(cluster_spec: object | None) -> PortRange:
    """The scenario's ``cluster.serviceNodePortRange`` (default when not given)."""
    text = getattr(cluster_spec, "service_node_port_range", None) or DEFAULT_RANGE
    return PortRange.parse(text)


def allocate_scenario(services: list[Service], cluster_spec: object | None = None,
                      seed: int = 1) -> Allocation:
    """The ports the API server gives a scenario's Services, created in manifest order
    with a random stream of its own (``nodeports``) seeded by the run seed."""
    return allocate_all(services, scenario_range(cluster_spec),
                        Streams(seed).generator("nodeports"))


class _DrawsMatter(Exception):
    """An explicit request met a band holding automatic ports: its fate is random."""


class _LowestFree:
    """Stands in for the random stream: every scan starts at the band's first port."""

    def integers(self, span: int) -> int:
        return 0


class _DrawFreeAllocator(NodePortAllocator):
    """The allocator without its random stream, for the outcomes that do not depend on it.

    Which Services are refused depends on the random starts only when an explicit
    request lands in a band where an automatic allocation already sits (the collision
    KEP-3668's static band exists to avoid); every other refusal (out of range, taken by
    another explicit request, range full) follows from counts and explicit ports alone.
    So automatic ports go to the lowest free port, and such a request raises
    :class:`_DrawsMatter`."""

    def __init__(self, port_range: PortRange) -> None:
        super().__init__(port_range, _LowestFree())  # type: ignore[arg-type]
        self.automatic: set[int] = set()
        self.automatic_in = {STATIC: 0, DYNAMIC: 0}

    def allocate(self, port: int) -> None:
        taken_explicitly = self.has(port) and port not in self.automatic
        if (not taken_explicitly and self.range.contains(port)
                and self.automatic_in[self.range.band(port)]):
            raise _DrawsMatter(port)
        super().allocate(port)

    def allocate_next(self) -> int:
        port = super().allocate_next()
        self.automatic.add(port)
        self.automatic_in[self.range.band(port)] += 1
        return port

    def release(self, port: int) -> None:
        if port in self.automatic:
            self.automatic.discard(port)
            self.automatic_in[self.range.band(port)] -= 1
        super().release(port)


def scenario_refusals(services: list[Service], cluster_spec: object | None = None,
                      seed: int = 1) -> Allocation:
    """The Services the API server refuses, as :func:`allocate_scenario` finds them, but
    without numpy when no refusal depends on the random stream (``npsim validate``
    starts fast). Automatic ports are 0 in the result unless the stream was drawn."""
    allocator = _DrawFreeAllocator(scenario_range(cluster_spec))
    try:
        out = _create(allocator, services)
    except _DrawsMatter:
        return allocate_scenario(services, cluster_spec, seed)
    for ports in out.services.values():  # not the run's ports: hide them
        ports.node_ports = [0 if p in allocator.automatic else p for p in ports.node_ports]
        if ports.health_check_node_port in allocator.automatic:
            ports.health_check_node_port = 0
    return out
