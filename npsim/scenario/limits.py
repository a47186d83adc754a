"""The guards npsim applies before a run, and which of them apply to a scenario.

Defaults follow the Kubernetes scalability envelope ("Considerations for large
clusters", kubernetes.io/docs/setup/best-practices/cluster-large: at most 5,000 nodes
and 150,000 pods); ``run.limits`` and the CLI flags raise or lower them (preflight.limits_for).
Key paths (``cluster.nodes = N``), the schema (variants) and preflight read them here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_NODES = 5_000
MAX_PODS = 150_000
MAX_SERVICES = 20_000  # Service ports simulated (otherServices only cost rules, not memory)
MAX_REQUESTS = 100_000_000  # over all replications
MAX_VARIANTS = 1_000  # a sweep's variants (each is validated before it runs)


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
