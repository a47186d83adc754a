"""The variants of a sweep: a scenario's ``variants:`` expanded into named, validated
scenarios (each a :meth:`Scenario.with_changes` of the base).

Every variant keeps the base's seed, so replication ``r`` of every variant draws from
the same named random streams (common random numbers): arrivals, source addresses and
service times differ only where a change makes them differ.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from npsim.scenario.problems import Problem, Problems, ScenarioError
from npsim.scenario.scenario import Scenario


@dataclass
class Variant:
    name: str
    changes: dict[str, Any]
    scenario: Scenario = field(repr=False)


def _short(path: str) -> str:
    return re.split(r"[.\[]", path.rstrip("]"))[-1].strip('"]') or path


def _value_text(value: Any) -> str:
    return str(value).replace(" ", "")


def expand(scenario: Scenario, extra: dict[str, Any] | None = None) -> tuple[list[Variant], str]:
    """The variants (in order) and the baseline's name. A scenario without ``variants:``
    is one variant, ``base``. ``extra`` changes (``--set``) apply to every variant.

    Every variant is validated before anything runs; problems name the variant.
    """
    spec = scenario.spec.variants
    base = {"variants": None, **(extra or {})}
    sets: list[tuple[str, dict[str, Any]]] = (
        [(v.name, dict(v.changes)) for v in spec.each] if spec and spec.each else [("base", {})])
    if spec and spec.grid:
        paths = list(spec.grid)
        crossed = []
        for name, changes in sets:
            for combo in itertools.product(*(spec.grid[p] for p in paths)):
                label = ",".join(f"{_short(p)}={_value_text(v)}" for p, v in zip(paths, combo,
                                                                                  strict=True))
                crossed.append((label if not spec.each else f"{name},{label}",
                                {**changes, **dict(zip(paths, combo, strict=True))}))
        sets = crossed
    variants: list[Variant] = []
    problems: list[Problem] = []
    names: set[str] = set()
    for name, changes in sets:
        safe = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", name)
        if safe in names:
            problems.append(Problem(None, f"variants: {name}", "two variants have this name"))
            continue
        names.add(safe)
        try:
            variants.append(Variant(safe, changes, scenario.with_changes({**base, **changes})))
        except ScenarioError as exc:
            problems += [Problem(p.mark, f"variants: {name}: {p.path}".rstrip(": "), p.message)
                         for p in exc.problems]
    if spec and spec.report:  # the report table's metrics: one no run writes was dropped
        from npsim.sweep.targets import known_metrics, unknown_metric

        known = set(known_metrics())
        problems += [Problems.problem(scenario.marks, ["variants", "report", i],
                                      unknown_metric(metric))
                     for i, metric in enumerate(spec.report) if metric not in known]
    if problems:
        raise ScenarioError(problems)
    baseline = spec.baseline if spec and spec.baseline else variants[0].name
    if baseline not in names:
        raise ScenarioError([Problems.problem(scenario.marks, ["variants", "baseline"],
                                              f"no variant named {baseline!r} (variants: "
                                              f"{', '.join(v.name for v in variants)})")])
    return variants, baseline


def change_text(changes: dict[str, Any]) -> str:
    """A change-set as it would be written on the command line: ``path=value; ...``
    (values in YAML flow style)."""
    from collections.abc import Mapping

    import yaml

    def plain(value: Any) -> Any:  # the loader's mappings and sequences as dicts and lists
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value if isinstance(value, bool | int | float | str) or value is None \
            else str(value)

    def show(value: Any) -> str:
        if isinstance(value, Mapping | list | tuple):
            return yaml.safe_dump(plain(value), default_flow_style=True,
                                  sort_keys=False, width=1 << 16).strip()
        return str(value)

    return "; ".join(f"{path}={show(value)}" for path, value in changes.items()) or "(none)"
