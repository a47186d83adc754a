"""Typed scenario models: what a scenario file may say, with defaults and units.

The whole file (:class:`ScenarioSpec`) and its sections but the two largest, which
have modules of their own: ``cluster:`` (cluster_spec.py) and ``clients:``
(client_spec.py). Every section is a :class:`~npsim.scenario.specbase.Model`: unknown
keys are rejected, keys are camelCase as in Kubernetes manifests, Python attributes
snake_case.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from npsim.dists import Distribution
from npsim.scenario.calls_spec import CallStep
from npsim.scenario.client_spec import ClientSpec
from npsim.scenario.cluster_spec import ClusterSpec
from npsim.scenario.limits import MAX_VARIANTS, Horizon, Workers
from npsim.scenario.nodeports import PortRange
from npsim.scenario.specbase import Integer, Model
from npsim.scenario.unique import repeated
from npsim.units import Seconds, format_duration


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

    workers: Annotated[Integer, Workers] = Field(default=1, ge=1)
    service_time: Distribution
    queue_limit: Integer | None = Field(default=None, ge=0)
    # spread: each Deployment's pods dealt over the nodes in turn; {node: count}: by hand;
    # scheduler: kube-scheduler's default profile (npsim/cluster/scheduler.py). Not
    # given: scheduler when the Deployment's pods request CPU or memory, else spread
    placement: Literal["spread", "scheduler"] | dict[str, Annotated[Integer, Field(ge=0)]] \
        | None = None
    # a new pod's container starts this long after it is scheduled (image present)
    startup: Seconds = 1.0
    # on SIGTERM: ``exit`` at once (in-flight requests reset) or ``drain``: refuse new
    # connections, finish what it has, then exit
    on_sigterm: Literal["exit", "drain"] = "drain"
    pods: list[PodSpec] | None = None
    labels: dict[str, str] | None = None
    namespace: str | None = None
    # requests to other Services while serving one (npsim/scenario/calls_spec.py);
    # blocking: the worker waits for them (synchronous RPC) or is freed (async server)
    calls: list[CallStep] = []
    blocking: bool = True

    def placement_for(self, requests: bool) -> str | dict[str, int]:
        """The placement in force: as given, else ``scheduler`` for a Deployment whose
        pods carry resource requests (``requests``) and ``spread`` for one without."""
        if self.placement is not None:
            return self.placement
        return "scheduler" if requests else "spread"

    @model_validator(mode="after")
    def _explicit_pods(self) -> WorkloadSpec:
        if self.pods is not None and isinstance(self.placement, dict):
            raise ValueError("give either 'placement' or explicit 'pods', not both")
        if self.pods is None and (self.labels is not None or self.namespace is not None):
            raise ValueError("'labels' and 'namespace' describe explicit 'pods'; without "
                             "'pods' they come from the Deployment")
        if self.pods is not None:
            dupes = repeated(p.ip for p in self.pods)
            if dupes:
                raise ValueError(f"pod addresses must be unique; repeated: {', '.join(dupes)}")
        return self


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
    duration: Horizon | None = None
    requests: Integer | None = Field(default=None, ge=1)
    warmup: Horizon = 0.0
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
    window: Seconds = Field(default=30.0, gt=0)


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
    window: Seconds = Field(default=30 * 86400.0, gt=0)  # the period the budget belongs to


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

    factor: float = Field(gt=0, allow_inf_nan=False)


class RolloutSpec(Model):
    """A rolling update of a Deployment to a new pod template (same behaviour, new pods),
    following the Deployment's ``strategy.rollingUpdate`` (maxSurge, maxUnavailable)."""

    deployment: str


FAULT_KINDS = ("scale", "node_crash", "node_partition", "kubelet_stop", "kube_proxy_stop",
               "pod_crash", "pod_hang", "pod_slowdown", "rollout")


class EventSpec(Model):
    """Something that happens at ``at``: exactly one kind; ``until`` ends a fault
    (recovery of a node, kubelet or kube-proxy; end of a hang, slowdown or crash loop)."""

    at: Horizon
    until: Horizon | None = None
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
