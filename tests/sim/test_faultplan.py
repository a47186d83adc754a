"""The fault plan maps every event kind the schema declares, once, to its typed outage."""

from __future__ import annotations

import math

from pydantic.alias_generators import to_camel

from npsim.scenario.faultplan import (
    KINDS,
    FaultPlan,
    NodeCrash,
    NodePartition,
    PodCrash,
    Scale,
    answers_again,
)
from npsim.scenario.schema import FAULT_KINDS, EventSpec


def test_every_schema_kind_has_one_outage_class_with_its_yaml_key() -> None:
    assert set(KINDS) == set(FAULT_KINDS)
    assert all(KINDS[kind].key == to_camel(kind) for kind in FAULT_KINDS)


def test_events_become_outages_with_what_they_touch_and_when_they_end() -> None:
    events = [EventSpec.model_validate(e) for e in (
        {"at": 1, "scale": {"deployment": "web", "replicas": 3}},
        {"at": 2, "until": 5, "nodeCrash": {"node": "n1"}},
        {"at": 3, "until": 9, "podCrash": {"pod": "web-0", "runsFor": 2}},
        {"at": 4, "until": 6, "nodePartition": {"node": "n1"}},
    )]
    plan = FaultPlan.of(events)
    scale, crash, pod, cut = plan.outages
    assert isinstance(scale, Scale) and (scale.deployment, scale.replicas) == ("web", 3)
    assert isinstance(crash, NodeCrash) and crash.node == "n1" and crash.until == 5.0
    assert isinstance(pod, PodCrash) and pod.runs_for == 2.0 and pod.index == 2
    assert isinstance(cut, NodePartition) and cut.partitioned and not crash.partitioned
    windows = plan.silent_windows({"n1": 0, "n2": 1}.__getitem__, 2)
    assert windows == [((2.0, 5.0), (4.0, 6.0)), ()]
    assert answers_again(windows[0], 4.5) == 6.0  # the last given outage covering now
    assert answers_again(windows[0], 2.5) == 5.0
    assert answers_again(windows[1], 3.0) == math.inf
