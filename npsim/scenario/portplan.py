"""Port planning: the NodePort table, a declared plan of named bands, and churn.

The tutorial (section 3.3) keeps NodePorts in bands by kind of Service: web
30000-30099, api 30100-30199, db 30200-30299, monitor 30300-30399. The API server knows
nothing of such a plan; it only splits its range into a static band, which automatic
allocation avoids while it can, and a dynamic band (KEP-3668). A plan band reaching into
the dynamic band therefore invites collisions: an automatic allocation may take the very
port a team later asks for. :func:`check_plan` says so; :func:`churn` measures it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from npsim.scenario.nodeports import (
    DYNAMIC,
    STATIC,
    Allocation,
    AllocationError,
    NodePortAllocator,
    PortRange,
)

if TYPE_CHECKING:
    from npsim.scenario.objects import Service

AUTOMATIC, EXPLICIT = 1, 2  # who holds a port, in the churn model


@dataclass(frozen=True)
class Band:
    """A named band of a port plan and the Services that belong to it."""

    name: str
    first: int
    last: int
    services: tuple[str, ...] = ()

    def __contains__(self, port: int) -> bool:
        return self.first <= port <= self.last

    def __str__(self) -> str:
        return f"{self.name} {self.first}-{self.last}"


@dataclass(frozen=True)
class Row:
    """One line of the allocation table."""

    namespace: str
    service: str
    port_name: str
    protocol: str
    port: int
    target_port: int | str
    node_port: int
    band: str  # static / dynamic
    how: str  # requested / assigned
    plan_band: str = ""  # the plan band the Service belongs to
    violation: str = ""


def check_plan(plan: list[Band], port_range: PortRange) -> list[str]:
    """Problems of the plan itself: bands outside the range, overlapping each other, or
    reaching into the dynamic band (where automatic allocations land)."""
    out = []
    bands = port_range.bands()
    static = bands[STATIC]
    for i, band in enumerate(plan):
        if not (port_range.contains(band.first) and port_range.contains(band.last)):
            out.append(f"band {band} is not inside the NodePort range {port_range}")
        for other in plan[:i]:
            if band.first <= other.last and other.first <= band.last:
                out.append(f"band {band} overlaps band {other}")
        if static is None or band.last > static[1]:
            first_dynamic = max(band.first, bands[DYNAMIC][0])
            if first_dynamic <= band.last:
                out.append(
                    f"band {band}: {first_dynamic}-{band.last} lies in the dynamic band "
                    f"{bands[DYNAMIC][0]}-{bands[DYNAMIC][1]}, where automatic allocations "
                    "land: an explicit request there can find its port already taken "
                    + (f"(only {static[0]}-{static[1]} is safe)" if static else
                       "(this range has no static band)"))
    return out


def allocation_table(services: list[Service], allocation: Allocation,
                     plan: list[Band] | None = None) -> list[Row]:
    """Every allocated nodePort (and healthCheckNodePort), with its band, whether it was
    requested, and where it breaks the plan."""
    plan = plan or []
    member = {name: band for band in plan for name in band.services}
    rows = []
    port_range = allocation.range
    for svc in services:
        given = allocation.services.get(svc.name)
        if given is None:
            continue
        band = member.get(svc.name) or member.get(f"{svc.namespace}/{svc.name}")
        entries = [(p.name, p.protocol, p.port, p.target_port, given.node_ports[i],
                    given.requested[i]) for i, p in enumerate(svc.ports) if given.node_ports[i]]
        if given.health_check_node_port:
            entries.append(("(healthCheckNodePort)", "TCP", 0, "", given.health_check_node_port,
                            given.health_check_requested))
        for name, proto, port, target, node_port, requested in entries:
            violation = ""
            if band is not None and node_port not in band:
                violation = f"outside its band {band}"
            elif band is None and plan:
                inside = next((b for b in plan if node_port in b), None)
                if inside is not None:
                    violation = f"in band {inside} but not one of its Services"
            rows.append(Row(svc.namespace, svc.name, name, proto, port, target, node_port,
                            port_range.band(node_port),
                            "requested" if requested else "assigned",
                            band.name if band else "", violation))
    return rows


def format_table(rows: list[Row]) -> str:
    head = ("NAMESPACE", "SERVICE", "PORT-NAME", "PROTOCOL", "PORT", "TARGET", "NODEPORT",
            "BAND", "HOW", "PLAN", "VIOLATION")
    cells = [head] + [(r.namespace, r.service, r.port_name or "-", r.protocol,
                       str(r.port or "-"), str(r.target_port or "-"), str(r.node_port), r.band,
                       r.how, r.plan_band or "-", r.violation) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


@dataclass
class ChurnResult:
    """What a churn run found. Times in seconds from the start."""

    created: int = 0  # Services created (allocations that succeeded)
    deleted: int = 0
    explicit: int = 0  # explicit requests made (first tries)
    collisions: int = 0  # explicit requests that found their port taken
    with_automatic: int = 0  # ... taken by an automatic allocation
    with_explicit: int = 0  # ... taken by another explicit request
    gave_up: int = 0  # explicit requests that found no free port in their band
    full_at: float | None = None  # first 'range is full'
    alive_at_full: int = 0
    end: float = 0.0
    per_band: dict[str, list[int]] = field(default_factory=dict)  # name -> [asked, collided]

    @property
    def collision_rate(self) -> float:
        return self.collisions / self.explicit if self.explicit else 0.0


def churn(port_range: PortRange, rng: np.random.Generator, rate: float, lifetime: float,
          explicit_share: float, bands: list[Band] | None = None,
          horizon: float = float("inf"), retries: int = 10) -> ChurnResult:
    """Services created as a Poisson stream (``rate`` per second), each living an
    exponential ``lifetime`` (``inf``: never deleted), until the range is full or
    ``horizon`` passes. A share of creations asks for an explicit port drawn uniformly
    from a plan band (uniformly chosen), or from the whole range without a plan; a
    request that finds its port taken is counted and retried with another draw, as a
    person would, up to ``retries`` times."""
    if rate <= 0:
        raise ValueError("the creation rate must be > 0")
    if horizon == float("inf") and (lifetime != float("inf") or explicit_share >= 1):
        raise ValueError("Services that are deleted, or only explicit requests, may never "
                         "fill the range: give a horizon")
    allocator = NodePortAllocator(port_range, rng)
    holder = bytearray(port_range.size + 1)
    deaths: list[tuple[float, int]] = []  # heap of (time, port)
    targets = bands or [Band("range", port_range.base, port_range.last)]
    out = ChurnResult(per_band={b.name: [0, 0] for b in targets})
    now = 0.0
    while True:
        now += float(rng.exponential(1.0 / rate))
        if now > horizon:
            out.end = horizon
            return out
        while deaths and deaths[0][0] <= now:
            _, port = heapq.heappop(deaths)
            allocator.release(port)
            holder[port - port_range.base] = 0
            out.deleted += 1
        port = None
        if rng.random() < explicit_share:
            band = targets[int(rng.integers(len(targets)))]
            out.explicit += 1
            out.per_band[band.name][0] += 1
            collided = False
            for _ in range(retries + 1):
                want = int(rng.integers(band.first, band.last + 1))
                try:
                    allocator.allocate(want)
                except AllocationError:
                    if not collided:
                        collided = True
                        out.collisions += 1
                        out.per_band[band.name][1] += 1
                        if holder[want - port_range.base] == AUTOMATIC:
                            out.with_automatic += 1
                        else:
                            out.with_explicit += 1
                    continue
                port, kind = want, EXPLICIT
                break
            else:
                out.gave_up += 1
                continue
        else:
            try:
                port, kind = allocator.allocate_next(), AUTOMATIC
            except AllocationError:
                out.full_at = now
                out.alive_at_full = allocator.count
                out.end = now
                return out
        holder[port - port_range.base] = kind
        out.created += 1
        if lifetime != float("inf"):
            heapq.heappush(deaths, (now + float(rng.exponential(lifetime)), port))
