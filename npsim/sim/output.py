"""What one run leaves behind: plain records, nothing of the live simulation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npsim.cluster.model import Cluster
from npsim.sim.clients import Population
from npsim.sim.probes import Blackbox
from npsim.sim.records import RequestLog
from npsim.sim.rpc import CallRecords
from npsim.sim.timeline import EventLog


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What the frames read of a client population once the run is over."""

    name: str
    client_ips: np.ndarray  # its source addresses, as the client has them
    wire_ips: np.ndarray  # the same, as the receiving node sees them (after a NAT)
    retry_of: dict[int, int]  # request -> the failed request it repeats (retries only)
    attempt: dict[int, int]  # request -> its attempt number (retries only)
    balanced: bool  # sent through an external balancer


@dataclass
class RunOutput:
    """What one replication leaves behind: the cluster it ran, its request columns and
    timeline, and plain records of the rest. Nothing in it refers to the live
    simulation (populations, kube-proxies, control plane, SimPy environment), so all of
    that is freed before the frames are built (at 10,000 pods, several MB)."""

    replication: int
    seed: int
    cluster: Cluster
    log: RequestLog
    clients: list[ClientRecord]
    # per node: its kube-proxy relays every connection itself (userspace), so its pods
    # see the node's address whatever the policy
    pod_sees_node: list[bool]
    # per node: (time, ready endpoints of the simulated Services) as its kube-proxy
    # programmed them, from the start
    ready_history: list[list[tuple[float, int]]]
    events: EventLog
    end_time: float
    warmup: float
    wall_seconds: float
    probes: dict[str, Blackbox] = field(default_factory=dict)  # alert rule -> its samples
    calls: CallRecords | None = None  # pods' calls (npsim/sim/rpc.py): None without any


def client_record(pop: Population) -> ClientRecord:
    return ClientRecord(pop.name, np.asarray(pop.client_ips, dtype=np.int64)[:pop.n_ips],
                        np.asarray(pop.wire_ips, dtype=np.int64)[:pop.n_ips], pop.retry_of,
                        pop.attempt, getattr(pop, "balancer", None) is not None)
