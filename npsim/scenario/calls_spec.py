"""A workload's ``calls:``: the requests its pods send to other Services while serving one.

Each call goes from the caller pod through its own node's kube-proxy to the callee
Service's ClusterIP, as an in-cluster client would (``source: {pod: NODE}``,
``target: clusterIP``); ``target`` may instead name the Service's NodePort (on the
caller's own node, or on ``node``), its ``externalIP`` or its ``loadBalancerIP``
(npsim/sim/call_targets.py says which kube-proxy handles each). An ``external:`` call
goes to an address outside the cluster (a SaaS API, a managed database). Steps run in
order; a ``parallel:`` step fans out and waits for every branch (a gRPC or HTTP client
that issues the requests concurrently and joins them). ``timeout`` is a per-call
deadline (gRPC's deadline, an HTTP client's read timeout); ``retries`` reuses the
client retry model; ``onFailure`` says whether a failed call fails the request being
served (an error handler that returns 5xx) or is ignored (a best-effort call whose
error is logged).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from npsim.dists import Distribution
from npsim.scenario.client_spec import RetrySpec, check_retry_on
from npsim.scenario.specbase import Integer, Model
from npsim.units import Timeout


class CountSpec(Model):
    """How many calls in a row, drawn per request: ``{dist: poisson, mean: 2}`` or
    ``{dist: uniform, low: 1, high: 4}`` (whole numbers, both ends included)."""

    dist: Literal["poisson", "uniform"]
    mean: float | None = Field(default=None, ge=0)
    low: Integer | None = Field(default=None, ge=0)
    high: Integer | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _shape(self) -> CountSpec:
        if self.dist == "poisson" and (self.mean is None or self.low is not None
                                       or self.high is not None):
            raise ValueError("a poisson count takes 'mean' only")
        if self.dist == "uniform" and (self.low is None or self.high is None
                                       or self.mean is not None or self.low > self.high):
            raise ValueError("a uniform count takes 'low' <= 'high' only")
        return self


def _count_kind(value: Any) -> str:
    return COUNT_DIST if isinstance(value, (dict, CountSpec)) else COUNT_WHOLE


# a mapping is a distribution, anything else a whole number: each mistake is reported
# against the form the user wrote, not against both (npsim/scenario/loader.py drops the
# ``tagged-union`` steps from the paths it prints)
COUNT_DIST, COUNT_WHOLE = "tagged-union-count-dist", "tagged-union-count-whole"
Count = Annotated[Annotated[CountSpec, Tag(COUNT_DIST)] | Annotated[Integer, Tag(COUNT_WHOLE)],
                  Discriminator(_count_kind)]


HOST_PORT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[0-9]{1,5}$")


class ExternalSpec(Model):
    """A dependency outside the cluster (``address: host:port``): the round trip from
    the caller's node to it (``latency``), the time it holds one of its ``concurrency``
    slots per call (``serviceTime``; calls beyond the slots wait, first come first
    served, as at a connection-limited API or database), and the share of calls it
    answers with an error (``failureProbability``)."""

    address: str | None = None
    name: str | None = Field(default=None, min_length=1)
    latency: Distribution
    service_time: Distribution | None = None
    failure_probability: float = Field(default=0.0, ge=0.0, le=1.0)
    concurrency: Integer | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _named(self) -> ExternalSpec:
        if self.address is None and self.name is None:
            raise ValueError("an external call needs 'address' (host:port) or 'name'")
        if self.address is not None:
            if not HOST_PORT.match(self.address):
                raise ValueError(f"address {self.address!r} is not host:port (e.g. "
                                 "api.example.com:443 or 203.0.113.7:5432)")
            if not 1 <= int(self.address.rsplit(":", 1)[1]) <= 65535:
                raise ValueError(f"address {self.address!r}: the port must be between 1 "
                                 "and 65535, inclusive")
        return self

    @property
    def label(self) -> str:
        """The dependency's name in frames and the call graph."""
        return self.name if self.name is not None else self.address  # type: ignore[return-value]


class CallSpec(Model):
    """One call (or ``count`` calls in a row) to a Service port, or to an address
    outside the cluster (``external``)."""

    service: str | None = Field(default=None, min_length=1)
    port: Integer | str | None = None
    # where the call is addressed: the ClusterIP (default), the NodePort of the caller's
    # own node or of ``node``, the Service's first externalIP or its LoadBalancer VIP
    target: Literal["clusterIP", "nodePort", "externalIP", "loadBalancerIP"] = "clusterIP"
    node: str | None = Field(default=None, min_length=1)
    external: ExternalSpec | None = None
    # how many times in a row: a whole number, or a distribution rounded to one (>= 0)
    count: Count = Field(default=1)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)  # the call is made at all
    timeout: Timeout | None = None  # deadline for the response once the call is sent
    retries: RetrySpec | None = None
    on_failure: Literal["fail", "continue"] = "fail"
    requests_per_connection: Integer = Field(default=1, ge=1)  # keep-alive to the Service
    connect_timeout: Timeout | None = 10.0

    @model_validator(mode="after")
    def _count(self) -> CallSpec:
        if isinstance(self.count, int) and self.count < 0:
            raise ValueError("count must be 0 or more")
        if (self.service is None) == (self.external is None):
            raise ValueError("give exactly one of 'service' (a Service of the manifests) "
                             "or 'external' (an address outside the cluster)")
        if self.external is not None and (self.port is not None or self.node is not None
                                          or self.target != "clusterIP"):
            raise ValueError("an external call takes no 'port', 'target' or 'node' (its "
                             "address is external.address)")
        if self.node is not None and self.target != "nodePort":
            raise ValueError("'node' names whose NodePort is called: it needs "
                             "'target: nodePort'")
        check_retry_on(self.retries)
        return self

    @property
    def callee(self) -> str:
        """The Service called, or the external dependency's name."""
        return self.service if self.external is None else self.external.label  # type: ignore[return-value]


class ParallelSpec(Model):
    """Calls sent at once; the step ends when every one of them has ended."""

    parallel: list[CallSpec] = Field(min_length=1)


# the union's tags appear in pydantic's error locations; the loader drops steps named
# ``tagged-union...`` from the paths it prints (npsim/scenario/loader.py)
PARALLEL, CALL = "tagged-union-parallel", "tagged-union-call"


def _kind(value: Any) -> str:
    if isinstance(value, ParallelSpec) or (isinstance(value, dict) and "parallel" in value):
        return PARALLEL
    return CALL


# a step: one call (or ``count`` in a row), or ``parallel:`` calls
CallStep = Annotated[Annotated[ParallelSpec, Tag(PARALLEL)] | Annotated[CallSpec, Tag(CALL)],
                     Discriminator(_kind)]


def mean_count(call: CallSpec) -> float:
    """Mean calls in a row of one call step (its ``count``)."""
    count = call.count
    if isinstance(count, int):
        return float(count)
    if count.dist == "poisson":
        return float(count.mean)
    return (count.low + count.high) / 2


def leaves(steps: list[CallStep]) -> list[tuple[tuple[int, int], CallSpec]]:
    """Every call of a ``calls:`` list with its place: (step, branch; -1 outside a
    ``parallel:``)."""
    out: list[tuple[tuple[int, int], CallSpec]] = []
    for i, step in enumerate(steps):
        if isinstance(step, ParallelSpec):
            out.extend(((i, j), call) for j, call in enumerate(step.parallel))
        else:
            out.append(((i, -1), step))
    return out


def call_path(workload: str, place: tuple[int, int]) -> list[Any]:
    """The YAML path of a call, for a placed error."""
    step, branch = place
    base: list[Any] = ["workloads", workload, "calls", step]
    return base if branch < 0 else [*base, "parallel", branch]


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle of the workload call graph (``edges``: caller -> callee workloads), as
    the path that closes it (``a, b, a``), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found is not None:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found is not None:
                return found
    return None
