"""Changing a scenario by YAML key path: ``--set`` and ``with_changes``.

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
that was changed. (An attribute assigned in Python is checked where it lives: the spec's
sections in specbase.py, Services and Deployments in manifests.py.)
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from npsim.scenario.limits import MAX_NODES
from npsim.scenario.problems import Problem, ScenarioError
from npsim.scenario.yamlio import Mark, YamlSyntaxError, format_path, load_all, locate, plain

_TOKEN = re.compile(r'\.?([^.\[\]"]+)|\["([^"]*)"\]|\[([^\]"]+)\]')
_MANIFEST_TOP = ("apiVersion", "kind", "metadata", "spec")
_KINDS = {"deployments": "Deployment", "services": "Service"}


class Changeable(Protocol):
    """What a change needs of a scenario: its data, where it came from, and the reader
    that validates data as a file (the loader's ``scenario_from_dict``)."""

    base_dir: Path
    source: str
    warnings: list[Problem]
    original_tree: Any

    @property
    def marks(self) -> Any: ...

    def to_dict(self, only_set: bool = False) -> dict[str, Any]: ...

    reader: Callable[[Any, Path, str], Any]


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


def _reach(data: dict[str, Any], full: dict[str, Any],
           location: list[str | int]) -> dict[str, Any]:
    """``data`` (the keys the user set) with every step above ``location`` present: a
    section left at its default becomes an empty one (the reader fills it in), a list
    left at its default is copied whole from ``full``."""
    node: Any = data
    source: Any = full
    for step in location[:-1]:
        if isinstance(node, dict) and step not in node:
            node[step] = {} if isinstance(source[step], dict) else copy.deepcopy(source[step])
        node, source = node[step], source[step]
    return data


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


def with_changes(scenario: Changeable, changes: Mapping[str, Any],
                 marks: Mapping[str, Mark] | None = None) -> Any:
    """A new, validated scenario with ``changes`` (path -> YAML value) applied.

    Raises :class:`ScenarioError` naming the changed path when the result is invalid;
    ``scenario`` itself is left as it was. ``marks``: where the user wrote each change
    (a variant's line in the scenario file); a problem with a change points there, and
    one elsewhere at its line in the scenario file. The changed scenario's
    ``change_marks`` keep them by concrete path, for the checks that come later.
    """
    marks = marks or {}
    # paths are resolved (and misspellings hinted) in the fully defaulted data; what is
    # re-read is only what the user set plus the changes, so the reader derives every
    # default again (npsim/scenario/userset.py)
    full = scenario.to_dict()
    data = scenario.to_dict(only_set=True)
    data.pop("npsimVersion", None)
    located: list[tuple[str, str, Any, str]] = []  # (user path, concrete path, value, hint)
    problems: list[Problem] = []
    for path, value in changes.items():
        try:
            location = resolve(full, path)
            hint = _set(full, location, value)
            _set(_reach(data, full, location), location, value)
        except ChangeError as exc:
            problems.append(Problem(None, "", str(exc)))
            continue
        located.append((path, format_path(location), value, hint, marks.get(path)))
    try:
        changed = scenario.reader(data, scenario.base_dir, f"{scenario.source} (changed)")
    except ScenarioError as exc:  # every problem at once, path problems first
        raise ScenarioError(problems + [_rename(p, located, scenario.marks)
                                        for p in exc.problems]) from None
    if problems:
        raise ScenarioError(problems)
    changed.warnings = [_rename(w, located, scenario.marks, unrelated="")
                        for w in changed.warnings]
    changed.original_tree = scenario.marks
    changed.change_marks = {concrete: mark for _, concrete, _, _, mark in located
                            if mark is not None}
    return changed


def _rename(problem: Problem, located: list[tuple[str, str, Any, str, Mark | None]],
            tree: Any, unrelated: str = " (after the changes)") -> Problem:
    """A problem in the changed data, named by the path the user changed and placed where
    the user wrote the change (line numbers of generated text would mean nothing); a
    problem elsewhere at its line in the user's file, when the file has that key."""
    for user_path, concrete, value, hint, mark in located:
        if under(problem.path, concrete):
            tail = problem.path[len(concrete):]
            return Problem(mark, f"{user_path}{tail} (set to {value!r})",
                           problem.message + (hint if problem.path == concrete else ""))
    return Problem(_mark_in(tree, problem.path), problem.path, problem.message + unrelated)


def under(path: str, concrete: str) -> bool:
    """Whether ``path`` is ``concrete`` or a key inside it."""
    return path == concrete or path.startswith((concrete + ".", concrete + "["))


def _mark_in(tree: Any, path: str) -> Mark | None:
    """The mark of ``path`` in the user's file, if the file has every step of it."""
    try:
        steps = parse_path(path)
    except ChangeError:
        return None
    mark, found = locate(tree, steps)
    return mark if tree is not None and len(found) == len(steps) else None
