"""Changing a scenario by YAML key path: ``--set``, ``with_changes`` and checked assignment.

A *path* names a key as the scenario file spells it: ``cluster.proxyMode``,
``clients[0].arrival.rate``, ``workloads.nginx.workers``. Two conveniences:

- a list item may be picked by its ``name`` instead of its index
  (``clients[users].arrival.rate``, ``cluster.nodes.node-1.cpu``);
- ``deployments.NAME.X`` and ``services.NAME.X`` reach into the manifest of that
  Deployment or Service, under ``spec`` unless ``X`` starts with ``metadata``
  (``deployments.nginx.replicas`` is the manifest's ``spec.replicas``);
- ``cluster.nodes = N`` (a count) keeps the first N nodes or adds nodes like the last
  one (``node-<i>``), which is how a planner varies the cluster size.

Values are what the file would say (``3000/s``, ``5ms``, ``{dist: exponential, mean:
4ms}``). The changed scenario is validated exactly like a file; a problem names the path
that was changed.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from npsim.preflight import MAX_NODES
from npsim.scenario.problems import Problem, Problems, ScenarioError
from npsim.scenario.yamlio import YamlSyntaxError, format_path, load_all, plain

if TYPE_CHECKING:
    from npsim.scenario.loader import Scenario

_TOKEN = re.compile(r'\.?([^.\[\]"]+)|\["([^"]*)"\]|\[([^\]"]+)\]')
_MANIFEST_TOP = ("apiVersion", "kind", "metadata", "spec")
_KINDS = {"deployments": "Deployment", "services": "Service"}


class ChangeError(ValueError):
    """A path that names nothing in the scenario."""


def parse_path(path: str) -> list[str | int]:
    """``clients[0].arrival.rate`` -> ``['clients', 0, 'arrival', 'rate']``.

    ``[N]`` is an index; ``[name]`` or ``["key.with.dots"]`` a name or key.
    """
    steps: list[str | int] = []
    pos = 0
    text = path.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos or (pos == 0 and text.startswith(".")):
            raise ChangeError(f"cannot read the key path {path!r} (write e.g. "
                              "clients[0].arrival.rate or workloads.nginx.workers)")
        plain, quoted, bracket = match.groups()
        if bracket is not None and bracket.strip().lstrip("-").isdigit():
            steps.append(int(bracket))
        else:
            steps.append(plain if plain is not None else quoted if quoted is not None
                         else bracket)
        pos = match.end()
    if not steps:
        raise ChangeError("empty key path")
    return steps


def parse_assignment(text: str) -> tuple[str, Any]:
    """``PATH=VALUE`` from the command line; VALUE is read as YAML (``8``, ``ipvs``,
    ``3000/s``, ``{dist: constant, value: 2ms}``)."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise ChangeError(f"--set {text!r}: expected PATH=VALUE, e.g. "
                          "workloads.nginx.workers=8")
    if not value.strip():
        return path.strip(), ""
    try:  # the scenario's own bounded reader: no alias bomb, 500-deep list or huge integer
        docs = load_all(value, "--set")
    except YamlSyntaxError as exc:
        raise ChangeError(f"--set {text[:200]!r}: the value is not valid YAML "
                          f"({exc.problem})") from None
    if len(docs) > 1:
        raise ChangeError(f"--set {text[:200]!r}: the value is several YAML documents")
    return path.strip(), plain(docs[0]) if docs else None


def resolve(data: dict[str, Any], path: str) -> list[str | int]:
    """The concrete location of ``path`` in a scenario's data (``Scenario.to_dict``)."""
    steps = parse_path(path)
    if steps[0] in _KINDS and len(steps) >= 3 and isinstance(steps[1], str):
        kind = _KINDS[str(steps[0])]
        names = [m["metadata"]["name"] for m in data["manifests"] if m.get("kind") == kind]
        index = next((i for i, m in enumerate(data["manifests"])
                      if m.get("kind") == kind and m["metadata"]["name"] == steps[1]), None)
        if index is None:
            raise ChangeError(f"{path}: no {kind} named {steps[1]!r} "
                              f"(known: {', '.join(names) or 'none'})")
        rest = steps[2:]
        if rest[0] not in _MANIFEST_TOP:
            rest = ["spec", *rest]
        steps = ["manifests", index, *rest]
    out: list[str | int] = []
    node: Any = data
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(node, list):
            if isinstance(step, str):
                found = [j for j, item in enumerate(node)
                         if isinstance(item, dict) and item.get("name") == step]
                if not found:
                    names = [str(item.get("name")) for item in node if isinstance(item, dict)]
                    raise ChangeError(f"{path}: no item named {step!r} in "
                                      f"{format_path(out)} (names: {', '.join(names)})")
                step = found[0]
            if not -len(node) <= step < len(node):
                raise ChangeError(f"{path}: {format_path(out)} has {len(node)} items; "
                                  f"index {step} is out of range")
            step = step % len(node)
        elif isinstance(node, dict):
            if isinstance(step, int):
                raise ChangeError(f"{path}: {format_path(out) or 'the scenario'} is a "
                                  f"mapping, not a list: use a key, not [{step}]")
            if step not in node and not last:
                node[step] = {}
        else:
            raise ChangeError(f"{path}: {format_path(out)} is a single value "
                              f"({node!r}); it has no {step!r}")
        out.append(step)
        if not last:
            node = node[step]
    return out


def _set(data: dict[str, Any], location: list[str | int], value: Any) -> str:
    """Set the value; return a hint when the key is new (a likely misspelling)."""
    node: Any = data
    for step in location[:-1]:
        node = node[step]
    hint = ""
    if isinstance(node, dict) and location[-1] not in node:
        close = difflib.get_close_matches(str(location[-1]), [str(k) for k in node], n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
    if location == ["cluster", "nodes"] and isinstance(value, int) and not isinstance(
            value, bool):
        limits = (data.get("run") or {}).get("limits") or {}
        value = _resize_nodes(node["nodes"], value, limits.get("maxNodes") or MAX_NODES)
    node[location[-1]] = copy.deepcopy(value)
    return hint


def _resize_nodes(nodes: list[dict[str, Any]], count: int,
                  limit: int) -> list[dict[str, Any]]:
    """The first ``count`` nodes, or these plus copies of the last one (fresh names,
    addresses left to npsim); never more than the node limit (a count of 10**40 is not
    built first and refused after)."""
    if count < 1:
        raise ChangeError(f"cluster.nodes: a cluster needs at least one node, got {count}")
    if count > limit:
        raise ChangeError(f"cluster.nodes: {count:,} nodes is more than the limit of "
                          f"{limit:,}; raise it with run.limits.maxNodes")
    out = [dict(n) for n in nodes[:count]]
    taken = {n["name"] for n in out}
    i = len(out)
    while len(out) < count:
        i += 1
        name = f"node-{i}"
        while name in taken:
            i += 1
            name = f"node-{i}"
        extra = {k: v for k, v in nodes[-1].items() if k not in ("address", "podCIDR")}
        extra["name"] = name
        out.append(extra)
        taken.add(name)
    return out


def with_changes(scenario: Scenario, changes: Mapping[str, Any]) -> Scenario:
    """A new, validated scenario with ``changes`` (path -> YAML value) applied.

    Raises :class:`ScenarioError` naming the changed path when the result is invalid;
    ``scenario`` itself is left as it was.
    """
    from npsim.scenario.loader import scenario_from_dict

    data = scenario.to_dict()
    data.pop("npsimVersion", None)
    located: list[tuple[str, str, Any, str]] = []  # (user path, concrete path, value, hint)
    problems: list[Problem] = []
    for path, value in changes.items():
        try:
            location = resolve(data, path)
            hint = _set(data, location, value)
        except ChangeError as exc:
            problems.append(Problem(None, "", str(exc)))
            continue
        located.append((path, format_path(location), value, hint))
    try:
        changed = scenario_from_dict(data, scenario.base_dir, f"{scenario.source} (changed)")
    except ScenarioError as exc:  # every problem at once, path problems first
        raise ScenarioError(problems + [_rename(p, located) for p in exc.problems]) from None
    if problems:
        raise ScenarioError(problems)
    changed.warnings = [_rename(w, located, unrelated="") for w in changed.warnings]
    changed.original_tree = scenario.marks
    return changed


def _rename(problem: Problem, located: list[tuple[str, str, Any, str]],
            unrelated: str = " (after the changes)") -> Problem:
    """A problem in the changed data, named by the path the user changed (line numbers
    of generated text would mean nothing)."""
    for user_path, concrete, value, hint in located:
        if problem.path == concrete or problem.path.startswith((concrete + ".",
                                                                concrete + "[")):
            tail = problem.path[len(concrete):]
            return Problem(None, f"{user_path}{tail} (set to {value!r})",
                           problem.message + (hint if problem.path == concrete else ""))
    return Problem(None, problem.path, problem.message + unrelated)


# --- checked attribute assignment ----------------------------------------------------


def path_of(model: BaseModel, key: str = "") -> str:
    """``cluster.ipvs`` (+ ``.key``) for a model of a loaded scenario; the class name for
    one that is not part of a scenario."""
    private = getattr(model, "__pydantic_private__", None) or {}
    path = private.get("_npsim_path")
    if path is None:
        path = type(model).__name__
    return f"{path}.{key}" if path and key else path or key


def label_paths(model: BaseModel, path: str) -> None:
    """Remember each model's YAML path, so an assignment's error can name it."""
    if model.__pydantic_private__ is not None and "_npsim_path" in model.__pydantic_private__:
        model.__pydantic_private__["_npsim_path"] = path
    for name, info in type(model).model_fields.items():
        value = model.__dict__.get(name)
        at = f"{path}.{info.alias or name}" if path else (info.alias or name)
        if isinstance(value, BaseModel):
            label_paths(value, at)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    label_paths(item, f"{at}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    label_paths(item, f"{at}.{key}")


def checked_field(model: BaseModel, name: str) -> str:
    """The Python field an assignment means: the field itself or its YAML key (so
    ``cluster.proxyMode = ...`` works like ``cluster.proxy_mode = ...``)."""
    fields = type(model).model_fields
    if name in fields:
        return name
    for field, info in fields.items():
        if info.alias == name:
            return field
    keys = sorted({*fields, *(i.alias for i in fields.values() if i.alias)})
    close = difflib.get_close_matches(name, keys, n=2)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ScenarioError([Problem(None, path_of(model, name),
                                 f"no such field{hint} (fields: {', '.join(sorted(fields))})")])


def assignment_error(model: BaseModel, name: str, exc: ValidationError) -> ScenarioError:
    """A pydantic assignment error, worded like a scenario file's."""
    info = type(model).model_fields.get(name)
    key = info.alias if info is not None and info.alias else name
    p = Problems()
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        loc = [s for s in err["loc"] if s != name]
        where = path_of(model, key) + (f".{format_path(loc)}" if loc else "")
        p.errors.append(Problem(None, where, msg))
    return ScenarioError(p.errors)


def check_manifest_change(obj: Any, name: str, value: Any) -> None:
    """Validate ``obj.name = value`` on a Deployment or Service as its manifest would be;
    raise :class:`ScenarioError` naming ``deployments.NAME.FIELD`` when it is invalid."""
    from npsim.scenario.loader import deployment_manifest, svc_manifest
    from npsim.scenario.manifests import Deployment, parse_manifest

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


def _manifest_classes() -> tuple[type, type]:
    from npsim.scenario.manifests import Deployment, Service

    return _checked(Deployment), _checked(Service)


CheckedDeployment, CheckedService = _manifest_classes()


def check_assignments(scenario: Scenario) -> None:
    """Make later assignments on ``scenario``'s spec and manifests validate."""
    if scenario.spec is not None:
        label_paths(scenario.spec, "")
    for dep in scenario.deployments.values():
        if type(dep) is CheckedDeployment.__mro__[1]:
            dep.__class__ = CheckedDeployment
    for svc in scenario.services.values():
        if type(svc) is CheckedService.__mro__[1]:
            svc.__class__ = CheckedService
