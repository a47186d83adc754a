"""One table per Kubernetes kind: the keys npsim reads, their types, the keys it ignores.

Each table says, for every key of a manifest of that kind, whether npsim models it (it
changes the simulation), accepts it quietly (descriptive: labels, images, volumes) or
does not know it (a warning, never a failure: "not modelled by npsim; ignored"), and
which type the parser assumes (a mapping where it looks keys up, a list where it
iterates, a string or a whole number where it compares). From one table come both
checks:

* the *shape* check, before any parser reads the manifest: every key of the type the
  parser assumes (strict, no coercion), or the manifest is reported with the key's
  line; everything else passes through unchecked, as the API server's business;
* the *not modelled* warnings: every key the table does not list, inside the keys
  whose insides it lists.

The API server's own rules (port ranges, names, duplicates) are checked by the parsers
afterwards; the shape check only guarantees that they, and the cluster model after them,
never meet a list where they expect a mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from npsim.scenario.problems import Problems

_DERIVED: Any = object()  # a key's type comes from the keys inside it (a mapping)


@dataclass(frozen=True)
class Key:
    """One key of a manifest.

    ``shape``: the type the parser assumes (``Any``: not checked here); by default a
    mapping of ``keys``. ``keys``: the keys inside it (of each item, for a list), each a
    :class:`Key`. ``listed``: a list of such mappings (``null_items``: an item may be
    null). ``warn``: keys inside that ``keys`` does not list are warned about (False: the
    insides are read by the parser, which reports what it does not take). ``quiet``:
    accepted and ignored (documentation: neither is checked further)."""

    shape: Any = _DERIVED
    keys: dict[str, Key] = field(default_factory=dict)
    listed: bool = False
    null_items: bool = False
    warn: bool = True
    quiet: bool = False
    nullable: bool = True  # False: may be left out but not given as null (it is read)

    def value_type(self, name: str) -> Any:
        """The pydantic type of this key's value."""
        if self.shape is not _DERIVED:
            kind = self.shape
        elif not self.keys:
            return Any
        else:
            kind = _model(name, self.keys)
            if self.listed:
                kind = list[kind | None] if self.null_items else list[kind]  # type: ignore[valid-type]
        return kind | None if self.nullable else kind

    def known(self) -> Any:
        """What the not-modelled walk looks for inside: True stops it."""
        if self.quiet or not self.warn or not self.keys:
            return True
        return {name: key.known() for name, key in self.keys.items()}


MODELLED = Key()  # read by npsim; its value is checked by the parser
QUIET = Key(quiet=True)  # accepted and ignored: it does not change traffic
STRING = Key(StrictStr)
SCALAR = StrictStr | StrictInt | float | bool | None
LABELS = dict[SCALAR, Any]  # values are checked (with the API server's message) later


class _Open(BaseModel):
    """Unknown fields pass through; known ones must have their type (no coercion)."""

    model_config = ConfigDict(extra="allow", strict=True)


def _model(name: str, keys: dict[str, Key]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for i, (key, spec) in enumerate(keys.items()):
        default = Field(default=None, alias=key)
        fields[f"k{i}"] = (spec.value_type(f"{name}.{key}"), default)
    return create_model(name, __base__=_Open, **fields)


def _metadata(**more: Key) -> Key:
    """metadata: absent is fine, null is not (it is read)."""
    return Key(keys={"name": MODELLED, "namespace": STRING, "labels": Key(LABELS, quiet=True),
                     "annotations": Key(dict[SCALAR, Any], quiet=True), **more},
               nullable=False)


def _kind(spec: Key | None = None, metadata: Key | None = None, **more: Key) -> Key:
    keys = {"apiVersion": STRING, "kind": STRING, "metadata": metadata or _metadata()}
    if spec is not None:
        keys["spec"] = spec
    return Key(keys={**keys, **more}, nullable=False)


# --- Service (core/v1) -------------------------------------------------------------------

SERVICE = _kind(Key(keys={
    "type": STRING,
    "selector": MODELLED,
    "ports": Key(listed=True, keys={
        "name": STRING, "protocol": STRING, "port": MODELLED,
        "targetPort": Key(StrictInt | StrictStr), "nodePort": MODELLED, "appProtocol": QUIET}),
    "externalTrafficPolicy": STRING,
    "internalTrafficPolicy": STRING,
    "trafficDistribution": STRING,
    "sessionAffinity": STRING,
    "sessionAffinityConfig": Key(keys={"clientIP": Key(keys={"timeoutSeconds": MODELLED})}),
    "clusterIP": MODELLED,
    "clusterIPs": QUIET,
    "healthCheckNodePort": MODELLED,
    "allocateLoadBalancerNodePorts": MODELLED,
    "ipFamilies": QUIET,
    "ipFamilyPolicy": QUIET,
    "externalIPs": Key(list[Any]),
    "loadBalancerSourceRanges": Key(list[Any]),
}), status=Key(keys={"loadBalancer": Key(keys={"ingress": Key(listed=True, null_items=True, keys={
    "ip": STRING, "ipMode": STRING, "hostname": QUIET, "ports": QUIET})}),
    "conditions": QUIET}))

# --- Deployment (apps/v1) and StatefulSet, read like a Deployment -----------------------

# a probe's numbers: key -> (Probe attribute, npsim/cluster/lifecycle.py; the least valid)
PROBE_NUMBERS = {"periodSeconds": ("period", 1), "timeoutSeconds": ("timeout", 1),
                 "failureThreshold": ("failure_threshold", 1),
                 "successThreshold": ("success_threshold", 1),
                 "initialDelaySeconds": ("initial_delay", 0),
                 # a liveness kill's own grace period (KEP-2238; not on readiness probes)
                 "terminationGracePeriodSeconds": ("termination_grace", 1)}
PROBE = Key(keys={  # its numbers are checked by the parser; it must be a mapping to look in
    **dict.fromkeys(PROBE_NUMBERS, MODELLED),
    "httpGet": QUIET, "tcpSocket": QUIET, "exec": QUIET, "grpc": QUIET,
})
CONTAINER = Key(listed=True, keys={
    "name": QUIET, "image": QUIET, "imagePullPolicy": QUIET,
    "ports": Key(listed=True, warn=False,
                 keys={"name": STRING, "containerPort": MODELLED, "protocol": STRING}),
    # requests (or limits, their default) are read by npsim/scenario/scheduling.py
    "resources": Key(keys={"requests": Key(dict[Any, Any]), "limits": Key(dict[Any, Any]),
                           "claims": QUIET}),
    "env": QUIET, "args": QUIET, "command": QUIET, "volumeMounts": QUIET,
    "readinessProbe": PROBE,
    "livenessProbe": PROBE,
    # sleep's seconds are checked by the parser, with Kubernetes' wording
    "lifecycle": Key(keys={"preStop": Key(keys={"sleep": Key(Any, keys={"seconds": MODELLED}),
                                                "exec": Key(keys={"command": Key(list[Any])})})}),
})
_DEPLOYMENT_SPEC = {
    "replicas": MODELLED,
    "selector": Key(warn=False, keys={"matchLabels": MODELLED, "matchExpressions": MODELLED}),
    "template": Key(keys={
        "metadata": Key(keys={"labels": MODELLED, "annotations": QUIET, "name": QUIET}),
        "spec": Key(keys={"containers": CONTAINER, "volumes": QUIET, "nodeSelector": MODELLED,
                          "terminationGracePeriodSeconds": MODELLED,
                          # read by npsim/scenario/scheduling.py (pod affinity is not)
                          "affinity": Key(keys={"nodeAffinity": Key(warn=False, keys={
                              "requiredDuringSchedulingIgnoredDuringExecution": Key(
                                  keys={"nodeSelectorTerms": Key(list[Any])}),
                              "preferredDuringSchedulingIgnoredDuringExecution": Key(
                                  list[Any])})}),
                          "tolerations": Key(list[Any])}),
    }),
    "strategy": Key(keys={"type": STRING, "rollingUpdate": Key(
        dict[Any, Any], keys={"maxSurge": MODELLED, "maxUnavailable": MODELLED})}),
    "revisionHistoryLimit": QUIET,
    "progressDeadlineSeconds": QUIET,
}
DEPLOYMENT = _kind(Key(keys=_DEPLOYMENT_SPEC), status=QUIET)
# its own fields (stable names, volume claims) do not change traffic
STATEFULSET = _kind(Key(keys={**_DEPLOYMENT_SPEC, **dict.fromkeys((
    "serviceName", "volumeClaimTemplates", "podManagementPolicy", "updateStrategy",
    "persistentVolumeClaimRetentionPolicy", "ordinals", "minReadySeconds"), QUIET)}),
    status=QUIET)

# --- EndpointSlice (discovery.k8s.io/v1) ------------------------------------------------

ENDPOINT_SLICE = _kind(
    metadata=_metadata(labels=Key(LABELS), generateName=QUIET, ownerReferences=QUIET),
    addressType=MODELLED,
    # each port's and endpoint's mapping is checked by the parser
    ports=Key(list[Any], keys={"name": MODELLED, "port": MODELLED, "protocol": MODELLED,
                               "appProtocol": QUIET}),
    endpoints=Key(Any, keys={
        "addresses": MODELLED, "nodeName": MODELLED, "zone": MODELLED, "targetRef": QUIET,
        "conditions": Key(keys={"ready": MODELLED, "serving": MODELLED,
                                "terminating": MODELLED}),
        "hints": Key(keys={"forZones": Key(keys={"name": MODELLED}),
                           "forNodes": Key(keys={"name": MODELLED})}),
        "hostname": QUIET}),
)

# --- NetworkPolicy (networking.k8s.io/v1): its parser reports what it does not take ----

_POLICY_PORT = Key(listed=True, null_items=True,
                   keys={"protocol": STRING, "port": Key(StrictInt | StrictStr)})
_PEER = Key(listed=True, null_items=True, keys={
    "ipBlock": Key(keys={"cidr": MODELLED, "except": Key(list[Any])})})
NETWORK_POLICY = _kind(Key(warn=False, keys={
    "policyTypes": Key(list[StrictStr]),
    "ingress": Key(listed=True, null_items=True, keys={"from": _PEER, "ports": _POLICY_PORT}),
}))

TABLES: dict[str, Key] = {"Service": SERVICE, "Deployment": DEPLOYMENT,
                          "StatefulSet": STATEFULSET, "EndpointSlice": ENDPOINT_SLICE,
                          "NetworkPolicy": NETWORK_POLICY}
ANY_KIND = _kind()  # another kind: only apiVersion, kind and metadata are read

_KNOWN = {kind: table.known() for kind, table in TABLES.items()}

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


@cache
def _shape(kind: str | None) -> Any:
    """The pydantic model of a kind's table (None: any other kind), made when a manifest
    of that kind is first checked: the 58 models of every table took 21 ms of the
    scenario loader's import (-X importtime), most of it for kinds a scenario never has
    (issue 23)."""
    return ANY_KIND.value_type("Manifest") if kind is None else TABLES[kind].value_type(kind)


def check_shape(doc: Any, p: Problems, pre: str) -> bool:
    """Report (with marks) every field of ``doc`` whose type npsim cannot read; True if
    the manifest may be parsed. ``pre`` prefixes field paths (``manifests[1].``)."""
    if not isinstance(doc, dict):
        p.at(doc, [], "expected a Kubernetes manifest (a mapping with apiVersion and kind), "
             f"got {describe_value(doc)}", pre)
        return False
    kind = doc.get("kind")
    model = _shape(kind if isinstance(kind, str) and kind in TABLES else None)
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
            p.at(doc, list(key),
                 f"expected {' or '.join(whats)}, got {describe_value(found[key])}", pre)
        return False
    return True


def not_modelled(doc: Any, kind: str) -> list[list[Any]]:
    """The paths of the keys of ``doc`` that a ``kind``'s table does not list."""
    out: list[list[Any]] = []
    _walk(doc, _KNOWN[kind], [], out)
    return out


def _walk(doc: Any, known: Any, loc: list[Any], out: list[list[Any]]) -> None:
    if known is True:
        return
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            _walk(item, known, [*loc, i], out)
        return
    if not isinstance(doc, dict):
        return
    for key, value in doc.items():
        if key not in known:
            out.append([*loc, key])
        else:
            _walk(value, known[key], [*loc, key], out)
