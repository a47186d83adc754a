"""A finished run frees itself: no reference cycle keeps the simulation (and with it the
request columns) alive after the caller lets go, and the collector is restored."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import npsim
from npsim.sim.engine import Simulation

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"


def test_a_finished_simulation_is_freed_by_reference_counting() -> None:
    scenario = npsim.load_scenario(QUICKSTART)
    scenario.run.duration = 6
    was_enabled = gc.isenabled()
    gc.disable()  # only reference counting may free it
    try:
        sim = Simulation(scenario)
        alive = weakref.ref(sim)
        population = weakref.ref(sim.populations[0])
        out = sim.run()
        assert len(out.log) > 0
        del sim
        assert alive() is None
        del out
        assert population() is None
    finally:
        if was_enabled:
            gc.enable()


def test_the_collector_is_restored_after_a_run() -> None:
    scenario = npsim.load_scenario(QUICKSTART)
    scenario.run.duration = 6
    assert gc.isenabled()
    Simulation(scenario).run()
    assert gc.isenabled()
