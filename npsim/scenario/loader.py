"""Scenario files in, a validated :class:`~npsim.scenario.scenario.Scenario` out, or
every problem at once.

The steps: read the YAML (bounded: yamlio.py), validate each section (schema.py), read
the manifests (manifests.py) and the sample files, then the checks across sections
(checks.py); problems are collected from every step and raised together.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from npsim.dists import Empirical
from npsim.scenario.checks import check_partial, check_scenario
from npsim.scenario.files import (
    MAX_SAMPLES_BYTES,
    MAX_SCENARIO_BYTES,
    FileAccess,
    FileRefused,
    read_text,
)
from npsim.scenario.manifests import Manifests, load_manifests
from npsim.scenario.problems import Problem, Problems, ScenarioError
from npsim.scenario.scenario import Scenario
from npsim.scenario.schema import ScenarioSpec
from npsim.scenario.yamlio import (
    MAX_DEPTH,
    Mark,
    MarkedDict,
    YamlSyntaxError,
    load_all,
    plain,
)

__all__ = ["load_scenario", "revalidate", "scenario_from_dict"]

# What these imports made (pydantic, the scenario's models: about 37,000 objects the
# collector tracks) lives as long as the process. Frozen, it is out of the cyclic
# collector's sight: no full collection walks it again, nor does the interpreter's
# exit, which took 0.085 CPU-s of a process that imported this module (0.009 frozen;
# issue 23). Objects made later are collected as before.
gc.freeze()


def _validation_problems(exc: ValidationError, tree: Any, p: Problems) -> None:
    # the members of a union fail at the same place: one problem naming every type
    # ("Input should be a valid string or a valid dictionary"), not one line per member
    types: dict[tuple[Any, ...], list[str]] = {}
    messages: dict[tuple[Any, ...], list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(step for step in err["loc"] if not _is_union_tag(step))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the scenario reference in README)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        msg = _CLASS_NAME.sub("", msg)  # "... or instance of CallSpec": npsim's class
        if msg.startswith("Input should be a valid "):
            types.setdefault(loc, []).append(msg[len("Input should be "):])
            messages.setdefault(loc, [])
        else:
            messages.setdefault(loc, []).append(msg)
    for loc, msgs in messages.items():
        if loc in types:
            msgs.insert(0, "Input should be " + " or ".join(dict.fromkeys(types[loc])))
        for msg in dict.fromkeys(msgs):
            p.at(tree, list(loc), msg)


_CLASS_NAME = re.compile(r" or instance of [A-Za-z_][A-Za-z0-9_]*")


def _is_union_tag(step: Any) -> bool:
    return isinstance(step, str) and (
        step in ("exponential", "constant", "lognormal", "uniform", "empirical")
        or step.startswith(("function-", "tagged-union", "str", "dict[", "int", "list[", "bool"))
        or step.startswith("literal[")
    )


def scenario_from_dict(data: Any, base_dir: Path | str = ".", source: str = "<dict>",
                       allow_outside_files: bool = False) -> Scenario:
    """Validate a scenario given as Python data (e.g. built in a notebook).

    Manifest and sample files it names are read from ``base_dir`` (and only from inside
    it unless ``allow_outside_files``)."""
    if not isinstance(data, MarkedDict):
        try:
            text = yaml.safe_dump(plain(data), sort_keys=False)
            docs = load_all(text, source)
        except YamlSyntaxError as exc:
            raise ScenarioError([Problem(exc.mark, exc.path, exc.problem)]) from None
        except yaml.YAMLError as exc:  # an object YAML cannot hold (a class instance)
            raise ScenarioError([Problem(None, source, "a scenario holds only YAML data "
                                         f"(mappings, lists, strings, numbers): {exc}")]) from None
        except RecursionError:
            raise ScenarioError([Problem(None, source, "nested more than "
                                         f"{MAX_DEPTH} levels deep")]) from None
        if not docs:
            raise ScenarioError([Problem(None, source, "a scenario is a mapping, got nothing")])
        data = docs[0]
    return _build(data, FileAccess(Path(base_dir), allow_outside_files), source)


def load_scenario(path: str | Path, allow_outside_files: bool = False) -> Scenario:
    """Read and validate a scenario file; raises :class:`ScenarioError` with every problem.

    Manifest and sample files must be regular files inside the scenario's folder unless
    ``allow_outside_files`` (``npsim run --allow-outside-files``)."""
    path = Path(path)
    try:
        text = read_text(path, "scenario file", MAX_SCENARIO_BYTES)
    except FileNotFoundError:
        raise ScenarioError([Problem(None, str(path), "no such scenario file")]) from None
    except FileRefused as exc:
        raise ScenarioError([Problem(None, "", str(exc))]) from None
    try:
        docs = load_all(text, str(path))
    except YamlSyntaxError as exc:
        where = exc.path or ("" if exc.mark else str(path))
        raise ScenarioError([Problem(exc.mark, where, exc.problem)]) from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        where = (docs[1] if len(docs) > 1 else docs[0] if docs else None)
        mark = getattr(where, "mark", None) or Mark(str(path), 1, 1)
        raise ScenarioError([Problem(mark, "(top level)",
                                     "a scenario file holds exactly one YAML mapping")])
    if not SCENARIO_KEYS & set(docs[0]):
        # e.g. `npsim validate /etc/shadow`: its unknown keys would print the file
        raise ScenarioError([Problem(docs[0].mark, "(top level)", "not an npsim scenario: "
                                     f"none of {', '.join(sorted(SCENARIO_KEYS))} is there "
                                     "(the file's keys are not shown)")])
    return _build(docs[0], FileAccess(path.parent, allow_outside_files), str(path))


SCENARIO_KEYS = {"name", "cluster", "manifests", "workloads", "clients", "run"}  # required


def _build(tree: MarkedDict, access: FileAccess, source: str) -> Scenario:
    p = Problems()
    spec: ScenarioSpec | None = None
    try:
        spec = ScenarioSpec.model_validate(tree, context={"yaml": True})
    except ValidationError as exc:
        _validation_problems(exc, tree, p)
    raw_manifests = tree.get("manifests") if isinstance(tree, dict) else None
    found = (load_manifests(tree, raw_manifests, access, p)
             if isinstance(raw_manifests, list) else Manifests())
    scenario = None
    base_dir = access.base_dir
    if spec is not None:
        spec = _resolve_files(spec, tree, access, p)
        scenario = Scenario(spec, found.services, found.deployments, base_dir, source,
                            p.warnings, scenario_from_dict)
        scenario.tree = tree
        scenario.network_policies = found.policies
        check_scenario(scenario, tree, p, found.unresolved)
    else:
        partial = Scenario(None, found.services, found.deployments, base_dir,  # type: ignore[arg-type]
                           source)
        check_partial(partial, tree, p, found.unresolved)
    p.raise_if_any()
    assert scenario is not None
    return scenario


def _resolve_files(spec: ScenarioSpec, tree: Any, access: FileAccess,
                   p: Problems) -> ScenarioSpec:
    """Read empirical sample files now, so a missing file is a load-time error.

    Every distribution in the spec is visited (service, think and link times, rtt), not
    only service times: an unread file would leave an empirical distribution empty.
    """

    def visit(model: BaseModel, loc: list[Any]) -> None:
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            at = [*loc, info.alias or name]
            if isinstance(value, Empirical):
                if value.file:
                    try:
                        setattr(model, name, value.resolved(
                            access.base_dir,
                            lambda f: access.read(f, "samples file", MAX_SAMPLES_BYTES)))
                    except FileNotFoundError:
                        p.at(tree, [*at, "file"], "samples file not found: "
                             f"{(access.base_dir / value.file).resolve()}")
                    except (OSError, ValueError) as exc:
                        p.at(tree, [*at, "file"], str(exc))
            elif isinstance(value, BaseModel):
                visit(value, at)
            elif isinstance(value, list | tuple | dict):
                items = value.items() if isinstance(value, dict) else enumerate(value)
                for key, item in items:
                    if isinstance(item, BaseModel):
                        visit(item, [*at, key])

    visit(spec, [])
    return spec


def revalidate(scenario: Scenario) -> None:
    """Check a scenario again after it was changed in Python (notebooks)."""
    p = Problems()
    try:
        ScenarioSpec.model_validate(scenario.spec.model_dump(by_alias=True))
    except ValidationError as exc:
        _validation_problems(exc, None, p)
    if not p.errors:
        check_scenario(scenario, None, p)
    p.raise_if_any()


