"""``--jobs`` changes how many processes run the replications, never the result: every
frame of a bundled scenario is the same with one process and with two."""

from __future__ import annotations

import pandas as pd
import pytest

import npsim

FRAMES = ("requests", "pods", "nodes", "summary", "timeseries", "pod_timeseries",
          "node_timeseries", "events")


@pytest.mark.slow
@pytest.mark.parametrize(("name", "duration"), [("quickstart", 8.0), ("node-failure", 66.0)])
def test_one_and_two_processes_give_identical_frames(name: str, duration: float) -> None:
    scenario = npsim.bundled(name)
    scenario.run.duration, scenario.run.warmup, scenario.run.replications = duration, 2.0, 3
    one, two = npsim.run(scenario, jobs=1), npsim.run(scenario, jobs=2)
    for frame in FRAMES:
        pd.testing.assert_frame_equal(getattr(one, frame), getattr(two, frame), obj=frame)
    if name == "node-failure":  # the fault is inside the shortened run
        assert (one.requests["pod"].isna() & ~one.requests["warmup"]).any()
