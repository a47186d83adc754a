"""A scenario's manifests: read each by its kind, collect the objects, check changes.

Plain ``apiVersion/kind/metadata/spec`` documents load unchanged (the tutorial's
``nginx-nodeport`` among them), inline or from files next to the scenario. Fields that
change traffic but that npsim does not model yet produce a warning, never a failure
(the kind's table in kinds.py says which); each kind's module reads its own fields.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from npsim.scenario.deployments import deployment_manifest, parse_deployment
from npsim.scenario.files import MAX_MANIFEST_BYTES, FileAccess, FileRefused
from npsim.scenario.kinds import check_shape, not_modelled
from npsim.scenario.netpol import NetworkPolicy, parse_network_policy
from npsim.scenario.objects import SERVICE_NAME_LABEL, Deployment, EndpointSlice, Service
from npsim.scenario.problems import Problem, Problems, ScenarioError
from npsim.scenario.services import parse_service, svc_manifest
from npsim.scenario.slices import parse_endpoint_slice
from npsim.scenario.yamlio import MarkedDict, YamlSyntaxError, load_all

Parsed = Service | Deployment | NetworkPolicy | EndpointSlice
# a StatefulSet is read like a Deployment (replicas, labels, ports)
PARSERS: dict[str, Callable[[Any, Problems, str, str], Parsed | None]] = {
    "Service": parse_service, "Deployment": parse_deployment,
    "StatefulSet": parse_deployment, "EndpointSlice": parse_endpoint_slice,
    "NetworkPolicy": parse_network_policy}


def parse_manifest(doc: Any, p: Problems, pre: str,
                   origin: str) -> Service | Deployment | NetworkPolicy | EndpointSlice | None:
    """One manifest document; ``pre`` prefixes field paths (e.g. ``manifests[1]``)."""
    if not check_shape(doc, p, pre):  # types first: nothing below meets a wrong one
        return None
    kind = doc.get("kind")
    if kind not in PARSERS:
        if kind is None:
            p.at(doc, ["kind"], "Required value: the manifest kind (Service, Deployment, "
                 "StatefulSet, EndpointSlice or NetworkPolicy)", pre)
        else:
            p.warn(doc, ["kind"], f"kind {kind!r} is not modelled by npsim; ignored", pre)
        return None
    if "apiVersion" not in doc:
        p.at(doc, ["apiVersion"], "Required value", pre)
    for section in ("metadata", "spec"):
        if section in doc and not isinstance(doc[section], dict):
            p.at(doc, [section], f"expected a mapping, got {doc[section]!r}", pre)
            return None
    for loc in not_modelled(doc, kind):
        p.warn(doc, loc, "not modelled by npsim; ignored", pre)
    return PARSERS[kind](doc, p, pre, origin)


class _Everything:
    """Stands for the names in a manifest file that could not be read."""

    def __contains__(self, name: object) -> bool:
        return True


# names of Services/Deployments whose manifests were already reported as broken
Unresolved = set[str] | _Everything


@dataclass
class Manifests:
    """What a scenario's manifests define, by name, and the names of those that failed
    (their problems are reported where they are, so references to them are not)."""

    services: dict[str, Service] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    policies: dict[str, NetworkPolicy] = field(default_factory=dict)
    unresolved: Unresolved = field(default_factory=set)


def load_manifests(tree: MarkedDict, raw: list[Any], access: FileAccess,
                   p: Problems) -> Manifests:
    """Parse every manifest of the scenario's list (inline, or files to read)."""
    out = Manifests()
    unresolved: set[str] = set()
    unreadable = False
    slices: list[EndpointSlice] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            path = access.path(item)
            try:
                docs = load_all(access.read(item, "manifest file", MAX_MANIFEST_BYTES), str(path))
            except FileNotFoundError:
                p.at(tree, ["manifests", i], f"manifest file not found: {path}")
                unreadable = True
                continue
            except FileRefused as exc:
                p.at(tree, ["manifests", i], str(exc))
                unreadable = True
                continue
            except YamlSyntaxError as exc:
                if exc.mark is not None:
                    p.errors.append(Problem(exc.mark, exc.path, exc.problem))
                else:
                    p.at(tree, ["manifests", i], str(exc))
                unreadable = True
                continue
            pairs = []
            for j, doc in enumerate(docs):
                if isinstance(doc, dict):
                    pairs.append((doc, f"{item}#{j}", ""))
                else:  # a file that is not a manifest: name it and the entry naming it
                    p.at(tree, ["manifests", i], f"{path}: document {j + 1} is not a "
                         "Kubernetes manifest (a mapping with apiVersion and kind)")
                    unreadable = True
        elif isinstance(item, dict):
            pairs = [(item, f"manifests[{i}]", f"manifests[{i}].")]
        else:  # neither a path nor a manifest: the schema reports it, at its line
            unreadable = True
            continue
        for doc, origin, prefix in pairs:
            n_errors = len(p.errors)
            obj = parse_manifest(doc, p, prefix, origin)  # inline: placed in the scenario
            if obj is None:
                meta = doc.get("metadata") if isinstance(doc, dict) else None
                name = meta.get("name") if isinstance(meta, dict) else None
                # a broken manifest's name: references to it are not reported again;
                # an ignored kind (only a warning) defines nothing, so they are
                if isinstance(name, str) and len(p.errors) > n_errors:
                    unresolved.add(name)
                continue
            if isinstance(obj, EndpointSlice):
                slices.append(obj)  # its Service may come later in the manifests
                continue
            table: dict[str, Any] = (out.services if isinstance(obj, Service) else
                                     out.deployments if isinstance(obj, Deployment) else
                                     out.policies)
            if obj.name in table:
                p.at(doc, ["metadata", "name"],
                     f'Duplicate value: {type(obj).__name__} "{obj.name}" is defined twice '
                     f"(also in {table[obj.name].origin})", prefix)
            else:
                table[obj.name] = obj
    _own_slices(slices, out.services, p)
    out.unresolved = _Everything() if unreadable else unresolved
    return out


def _own_slices(slices: list[EndpointSlice], services: dict[str, Service],
                p: Problems) -> None:
    """Give each hand-made EndpointSlice to its Service (label kubernetes.io/service-name).

    Only a selector-less Service keeps its slices: for a Service with a selector the
    EndpointSlice controller owns the slices and rewrites them from the pods, so a slice
    written by hand there is ignored (with a warning)."""
    for sl in slices:
        svc = services.get(sl.service_name)
        if svc is None or svc.namespace != sl.namespace:
            known = ", ".join(sorted(services)) or "none"
            p.at(sl.doc, ["metadata", "labels", SERVICE_NAME_LABEL],
                 f"no Service named {sl.service_name!r} in namespace {sl.namespace!r} among "
                 f"the manifests (known: {known})", sl.prefix)
        elif svc.selector:
            p.warn(sl.doc, ["metadata", "labels", SERVICE_NAME_LABEL],
                   f"Service {svc.name!r} has a selector: the EndpointSlice controller "
                   "manages its slices from the pods; this hand-made slice is ignored",
                   sl.prefix)
        else:
            svc.endpoint_slices.append(sl)


def check_manifest_change(obj: Any, name: str, value: Any) -> None:
    """Validate ``obj.name = value`` on a Deployment or Service as its manifest would be;
    raise :class:`ScenarioError` naming ``deployments.NAME.FIELD`` when it is invalid."""
    is_dep = isinstance(obj, Deployment)
    where = f"{'deployments' if is_dep else 'services'}.{obj.name}.{name}"
    if name not in type(obj).__dataclass_fields__:
        raise ScenarioError([Problem(None, where, "no such field (fields: " + ", ".join(
            type(obj).__dataclass_fields__) + ")")])
    trial = copy.copy(obj)
    object.__setattr__(trial, name, value)
    p = Problems()
    try:
        manifest = deployment_manifest(trial) if is_dep else svc_manifest(trial)
        parsed = parse_manifest(manifest, p, "", obj.origin)
    except (TypeError, ValueError, AttributeError) as exc:
        raise ScenarioError([Problem(None, where, f"invalid value {value!r} ({exc})")]) from None
    if p.errors:
        raise ScenarioError([Problem(None, f"{where} (set to {value!r})", e.message)
                             for e in p.errors])
    if parsed is not None and getattr(parsed, name, value) != value:
        raise ScenarioError([Problem(None, where, f"invalid value {value!r} (a manifest "
                                     f"would read it as {getattr(parsed, name)!r})")])


def _checked(base: type) -> type:
    """A subclass of a manifest dataclass whose assignments are validated like the
    manifest (``scenario.deployments["nginx"].replicas = -3`` is refused)."""

    def __setattr__(self: Any, name: str, value: Any) -> None:  # noqa: N807
        if name in self.__dict__:  # an assignment, not the dataclass's own __init__
            check_manifest_change(self, name, value)
        object.__setattr__(self, name, value)

    return type(f"Checked{base.__name__}", (base,), {"__setattr__": __setattr__,
                                                      "__module__": __name__})


CheckedDeployment, CheckedService = _checked(Deployment), _checked(Service)
