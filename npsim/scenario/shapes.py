"""The shape of a manifest, checked before any code reads it.

A typed model of the parts of a Service or Deployment that npsim reads: each of them
must have the type the parser assumes (a mapping where it looks keys up, a list where
it iterates, a string or a whole number where it compares), or the manifest is
reported, with the field's line, before the parser touches it. Everything else in a
manifest passes through unchecked (``extra="allow"``): it is the API server's business,
and npsim warns about fields it does not model elsewhere.

The API server's own rules (port ranges, names, duplicates) are checked afterwards by
:mod:`npsim.scenario.manifests`; this module only guarantees that those checks, and the
cluster model after them, never meet a list where they expect a mapping.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from npsim.scenario.problems import Problems


class _Open(BaseModel):
    """Unknown fields pass through; known ones must have their type (no coercion)."""

    model_config = ConfigDict(extra="allow", strict=True)


Scalar = StrictStr | StrictInt | float | bool | None
Labels = dict[Scalar, Any]  # values are checked (with the API server's message) later


class Metadata(_Open):
    name: Any = None  # required-ness and type reported by the parser, with its wording
    namespace: StrictStr | None = None
    labels: Labels | None = None
    annotations: dict[Scalar, Any] | None = None


class ClientIPConfig(_Open):
    timeoutSeconds: Any = None  # noqa: N815 - Kubernetes field name


class AffinityConfig(_Open):
    clientIP: ClientIPConfig | None = None  # noqa: N815


class ServicePortShape(_Open):
    name: StrictStr | None = None
    protocol: StrictStr | None = None
    port: Any = None
    targetPort: StrictInt | StrictStr | None = None  # noqa: N815
    nodePort: Any = None  # noqa: N815


class ServiceSpecShape(_Open):
    type: StrictStr | None = None
    selector: Any = None
    ports: list[ServicePortShape] | None = None
    externalTrafficPolicy: StrictStr | None = None  # noqa: N815
    internalTrafficPolicy: StrictStr | None = None  # noqa: N815
    sessionAffinity: StrictStr | None = None  # noqa: N815
    sessionAffinityConfig: AffinityConfig | None = None  # noqa: N815
    trafficDistribution: StrictStr | None = None  # noqa: N815


class ContainerPortShape(_Open):
    name: StrictStr | None = None
    containerPort: Any = None  # noqa: N815
    protocol: StrictStr | None = None


class ProbeShape(_Open):
    """A probe: its numbers are checked by the parser; it must be a mapping to look in."""


class ExecShape(_Open):
    command: list[Any] | None = None


class HandlerShape(_Open):
    exec: ExecShape | None = None
    sleep: Any = None  # its seconds are checked by the parser, with Kubernetes' wording


class LifecycleShape(_Open):
    preStop: HandlerShape | None = None  # noqa: N815


class ContainerShape(_Open):
    ports: list[ContainerPortShape] | None = None
    readinessProbe: ProbeShape | None = None  # noqa: N815
    livenessProbe: ProbeShape | None = None  # noqa: N815
    lifecycle: LifecycleShape | None = None


class PodSpecShape(_Open):
    containers: list[ContainerShape] | None = None


class TemplateMetadata(_Open):
    labels: Any = None


class TemplateShape(_Open):
    metadata: TemplateMetadata | None = None
    spec: PodSpecShape | None = None


class SelectorShape(_Open):
    matchLabels: Any = None  # noqa: N815
    matchExpressions: Any = None  # noqa: N815


class StrategyShape(_Open):
    type: StrictStr | None = None
    rollingUpdate: dict[Any, Any] | None = None  # noqa: N815


class DeploymentSpecShape(_Open):
    replicas: Any = None
    selector: SelectorShape | None = None
    template: TemplateShape | None = None
    strategy: StrategyShape | None = None


class ManifestShape(_Open):
    apiVersion: StrictStr | None = None  # noqa: N815
    kind: StrictStr | None = None
    metadata: Metadata = Field(default=None)  # absent is fine, null is not (it is read)


class ServiceShape(ManifestShape):
    spec: ServiceSpecShape | None = None


class DeploymentShape(ManifestShape):
    spec: DeploymentSpecShape | None = None


class EndpointSliceShape(ManifestShape):
    ports: list[Any] | None = None  # each port's mapping is checked by the parser
    endpoints: Any = None


class PolicyPortShape(_Open):
    protocol: StrictStr | None = None
    port: StrictInt | StrictStr | None = None


class IPBlockShape(_Open):
    cidr: Any = None
    except_: list[Any] | None = Field(default=None, alias="except")


class PeerShape(_Open):
    ipBlock: IPBlockShape | None = None  # noqa: N815


class IngressRuleShape(_Open):
    from_: list[PeerShape | None] | None = Field(default=None, alias="from")
    ports: list[PolicyPortShape | None] | None = None


class NetworkPolicySpecShape(_Open):
    policyTypes: list[StrictStr] | None = None  # noqa: N815
    ingress: list[IngressRuleShape | None] | None = None


class NetworkPolicyShape(ManifestShape):
    spec: NetworkPolicySpecShape | None = None


SHAPES: dict[str, type[ManifestShape]] = {"Service": ServiceShape,
                                          "Deployment": DeploymentShape,
                                          "StatefulSet": DeploymentShape,
                                          "EndpointSlice": EndpointSliceShape,
                                          "NetworkPolicy": NetworkPolicyShape}

_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "float_type": "a number",
    "bool_type": "true or false",
    "none_required": "nothing (null)",
}


def describe_value(value: Any) -> str:
    """What a value is, never what it says ("a string", "a number"): an error about a
    file that is not a manifest must not print its content."""
    return _kind_of(value)


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _tree_path(doc: Any, loc: tuple[Any, ...]) -> tuple[list[Any], Any]:
    """The steps of a pydantic location that exist in the YAML tree (pydantic adds
    union-member names), and the value found there."""
    node = doc
    path: list[Any] = []
    for step in loc:
        if (isinstance(node, dict) and step in node
                or isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)):
            node = node[step]
            path.append(step)
    return path, node


def check_shape(doc: Any, p: Problems, pre: str) -> bool:
    """Report (with marks) every field of ``doc`` whose type npsim cannot read; True if
    the manifest may be parsed. ``pre`` prefixes field paths (``manifests[1].``)."""
    if not isinstance(doc, dict):
        p.at(doc, [], "expected a Kubernetes manifest (a mapping with apiVersion and kind), "
             f"got {_kind_of(doc)}", pre)
        return False
    kind = doc.get("kind")
    model = SHAPES.get(kind) if isinstance(kind, str) else ManifestShape
    if model is None:  # another kind: only apiVersion/kind/metadata are read
        model = ManifestShape
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        wanted: dict[tuple[Any, ...], list[str]] = {}
        found: dict[tuple[Any, ...], Any] = {}
        for err in exc.errors(include_url=False):
            path, value = _tree_path(doc, err["loc"])
            key = tuple(path)
            found[key] = value
            what = _EXPECTED.get(err["type"], err["msg"])
            if what not in wanted.setdefault(key, []):
                wanted[key].append(what)
        for key, whats in wanted.items():
            # a field given as null where a value is optional is not wrong; skip those
            whats = [w for w in whats if w != "nothing (null)"] or whats
            p.at(doc, list(key), f"expected {' or '.join(whats)}, got {_kind_of(found[key])}",
                 pre)
        return False
    return True

