"""The validated scenario: the typed spec plus the Kubernetes objects its manifests define.

What the loader (loader.py) makes of a file and everything after it reads: the cluster
model, preflight, the simulation. Assignments to it are validated as the file would be.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from npsim.scenario.changes import with_changes
from npsim.scenario.deployments import deployment_manifest
from npsim.scenario.manifests import CheckedDeployment, CheckedService
from npsim.scenario.netpol import NetworkPolicy
from npsim.scenario.objects import Deployment, Service
from npsim.scenario.problems import Problem
from npsim.scenario.schema import ScenarioSpec
from npsim.scenario.services import svc_manifest
from npsim.scenario.specbase import label_paths
from npsim.scenario.userset import set_fields

__all__ = ["Scenario"]


class Scenario:
    """A validated scenario: the typed spec plus the Services and Deployments it names.

    Attributes of the spec are reachable directly (``scenario.run.duration = 120``);
    assignments are validated. Change what you like, then :func:`npsim.run` it. Each
    Scenario is independent: two can live in one notebook.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        services: dict[str, Service],
        deployments: dict[str, Deployment],
        base_dir: Path,
        source: str,
        warnings: list[Problem] | None = None,
        reader: Callable[[Any, Path, str], Scenario] | None = None,
    ) -> None:
        self.spec = spec
        self.services = services
        self.deployments = deployments
        self.base_dir = base_dir
        self.source = source
        self.warnings = warnings if warnings is not None else []
        self.tree: Any = None  # the marked YAML it came from (error marks for later checks)
        # a changed copy (--set, variants) is re-read from generated text: later checks
        # place their errors at the lines of the file the user wrote
        self.original_tree: Any = None
        # a changed copy: where the user wrote each change (concrete path -> mark)
        self.change_marks: dict[str, Any] = {}
        self.network_policies: dict[str, NetworkPolicy] = {}  # by name
        # what validates data as a file (the loader's scenario_from_dict): a changed copy
        # (``with_changes``) is read by it, as the file was
        self.reader = reader
        check_assignments(self)

    @property
    def makes_calls(self) -> bool:
        """Whether some workload's pods call Services (``calls:``)."""
        return any(w.calls for w in self.spec.workloads.values() if w is not None)

    @property
    def marks(self) -> Any:
        """The YAML tree errors are placed in: the user's own file, also for a changed
        copy (``--set``, variants)."""
        return self.original_tree or self.tree

    def __getattr__(self, name: str) -> Any:
        if name in ScenarioSpec.model_fields:
            return getattr(self.__dict__["spec"], name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        """``scenario.run = {...}`` sets the spec's section, validated (not a stray
        attribute the run would never see)."""
        if name in ScenarioSpec.model_fields and "spec" in self.__dict__:
            setattr(self.spec, name, value)
        else:
            super().__setattr__(name, value)

    def __repr__(self) -> str:
        return (
            f"<Scenario {self.spec.name!r}: {len(self.spec.cluster.nodes)} nodes, "
            f"{len(self.services)} services, {len(self.deployments)} deployments, "
            f"{len(self.spec.clients)} client populations>"
        )

    def copy(self) -> Scenario:
        """A deep copy to vary without touching this one (what-if comparisons)."""
        return copy.deepcopy(self)

    def with_changes(self, changes: dict[str, Any], marks: dict[str, Any] | None = None
                     ) -> Scenario:
        """A validated copy with ``changes`` applied: YAML key paths to YAML values,
        e.g. ``{"cluster.proxyMode": "ipvs", "deployments.nginx.replicas": 6}`` (the
        paths ``npsim run --set`` takes; see npsim/scenario/changes.py). ``marks``: where
        each change is written (its problems point there)."""
        return with_changes(self, changes, marks)

    def to_dict(self, only_set: bool = False) -> dict[str, Any]:
        """The fully defaulted scenario, manifests inlined, units written out exactly.
        ``only_set``: the spec's keys as the user set them (in the file or by
        assignment), without the defaults (what ``with_changes`` re-reads)."""
        data = (set_fields(self.spec) if only_set
                else self.spec.model_dump(mode="json", by_alias=True))
        if data.get("variants") is None:
            data.pop("variants", None)
        data["manifests"] = [svc_manifest(s) for s in self.services.values()] + [
            deployment_manifest(d) for d in self.deployments.values()
        ] + [policy.manifest for policy in self.network_policies.values()] + [
            sl.manifest() for s in self.services.values() for sl in s.endpoint_slices]
        # an event is one kind: leave out the kinds (and the until) it does not use
        if "events" in data:
            data["events"] = [{k: v for k, v in e.items() if v is not None}
                              for e in data["events"]]
        return data


def check_assignments(scenario: Scenario) -> None:
    """Make later assignments on ``scenario``'s spec and manifests validate."""
    if scenario.spec is not None:
        label_paths(scenario.spec, "")
    for dep in scenario.deployments.values():
        if type(dep) is Deployment:
            dep.__class__ = CheckedDeployment
    for svc in scenario.services.values():
        if type(svc) is Service:
            svc.__class__ = CheckedService
