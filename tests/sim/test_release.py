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


def test_a_run_with_probes_and_a_balancer_is_freed_by_reference_counting() -> None:
    """A balancer's health checks and blackbox probes answer from the simulation: the
    run drops those callbacks, so the simulation still goes without the collector."""
    scenario = npsim.bundled("node-failure-lb").with_changes({"run.duration": "8s"})
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        sim = Simulation(scenario)
        assert any(pop.balancer is not None for pop in sim.populations)
        alive, log = weakref.ref(sim), weakref.ref(sim.log)
        out = sim.run()
        del sim
        assert alive() is None
        del out
        assert log() is None
    finally:
        if was_enabled:
            gc.enable()


def test_the_collector_is_restored_after_a_run() -> None:
    scenario = npsim.load_scenario(QUICKSTART)
    scenario.run.duration = 6
    assert gc.isenabled()
    Simulation(scenario).run()
    assert gc.isenabled()
