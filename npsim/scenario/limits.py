"""The guards npsim applies before a run, and which of them apply to a scenario.

Defaults follow the Kubernetes scalability envelope ("Considerations for large
clusters", kubernetes.io/docs/setup/best-practices/cluster-large: at most 5,000 nodes
and 150,000 pods); ``run.limits`` and the CLI flags raise or lower them (preflight.limits_for).
Key paths (``cluster.nodes = N``), the schema (variants) and preflight read them here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator

from npsim.units import Seconds

MAX_NODES = 5_000
MAX_PODS = 150_000
MAX_SERVICES = 20_000  # Service ports simulated (otherServices only cost rules, not memory)
MAX_REQUESTS = 100_000_000  # over all replications
MAX_VARIANTS = 1_000  # a sweep's variants (each is validated before it runs)

# Counts a run allocates per unit (a list entry per worker or core) or repeats per request:
# a billion workers were a MemoryError, a billion retries a run without end.
# A pod's concurrent requests: one process holds at most fs.nr_open descriptors, whose
# Linux default is 1024 x 1024 (Documentation/admin-guide/sysctl/fs.rst, nr_open).
MAX_WORKERS = 1_048_576
# TLS handshake cores of one balancer: Linux builds for at most 8,192 CPUs (x86-64
# CONFIG_NR_CPUS, arch/x86/Kconfig: range 2 8192).
MAX_BALANCER_CORES = 8_192
# Retries of one request (and a balancer's next-upstream tries): each is a row of its own,
# and the request frame's attempt column is one byte (127 at most).
MAX_RETRIES = 100
# Simulated time: a run's duration, warmup, event times, a population's start and stop.
# Past a year a float's step (4 ns at 3e7 s, 0.1 ms at 1e12 s) nears a service time's.
MAX_HORIZON = 365 * 86400.0


def _at_most(limit: float, what: str, why: str) -> AfterValidator:
    """A bound stated in the error: the limit, and why the limit is there."""

    def check(value: Any) -> Any:
        if value is not None and value > limit:
            raise ValueError(f"at most {what} ({why})")
        return value

    return AfterValidator(check)


Workers = _at_most(MAX_WORKERS, f"{MAX_WORKERS:,} workers", "one process holds at most "
                   "fs.nr_open = 1,048,576 connections on Linux")
BalancerCores = _at_most(MAX_BALANCER_CORES, f"{MAX_BALANCER_CORES:,} cores",
                         "Linux runs on at most 8,192 CPUs")
Retries = _at_most(MAX_RETRIES, f"{MAX_RETRIES:,} retries of a request",
                   "each is a row of the request frame, numbered in one byte")
Horizon = Annotated[Seconds, _at_most(MAX_HORIZON, "365 days of simulated time",
                                      "npsim's horizon; see README, Limits")]
"""A point in simulated time (or a run's length): at most :data:`MAX_HORIZON`."""


def default_max_memory() -> int:
    """Half of this machine's physical memory."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


@dataclass(frozen=True)
class Limits:
    max_requests: int = MAX_REQUESTS
    max_memory: int = 0  # 0: half of this machine's memory
    max_nodes: int = MAX_NODES
    max_pods: int = MAX_PODS
    max_services: int = MAX_SERVICES
