"""A finished run frees itself: no reference cycle keeps the simulation (and with it the
request columns) alive after the caller lets go, and the collector is restored."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import npsim
from npsim.sim.engine import Simulation

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"


def _freed_without_the_collector(scenario: npsim.Scenario) -> None:
    """Run ``scenario`` with the cyclic collector off: the simulation, its first
    population and its request log must go by reference counting alone."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        sim = Simulation(scenario)
        alive, log = weakref.ref(sim), weakref.ref(sim.log)
        population = weakref.ref(sim.populations[0])
        out = sim.run()
        assert len(out.log) > 0
        del sim
        assert alive() is None
        del out
        assert population() is None and log() is None
    finally:
        if was_enabled:
            gc.enable()


def test_a_finished_simulation_is_freed_by_reference_counting() -> None:
    scenario = npsim.load_scenario(QUICKSTART)
    scenario.run.duration = 6
    _freed_without_the_collector(scenario)


def test_a_run_with_probes_and_a_balancer_is_freed_by_reference_counting() -> None:
    """A balancer's health checks and blackbox probes answer from the simulation: the
    run drops those callbacks and ends their loops, so it still goes without the
    collector."""
    scenario = npsim.bundled("node-failure-lb").with_changes({"run.duration": "8s"})
    assert scenario.spec.monitoring is not None and any(
        c.balancer is not None for c in scenario.spec.clients)
    _freed_without_the_collector(scenario)


def test_a_run_whose_pods_call_services_is_freed_by_reference_counting() -> None:
    """Calls still waiting when the run stops (their jobs hold the call plans, whose
    steps hold the call populations) are let go with the run."""
    scenario = npsim.bundled("three-tier-shop").with_changes({"run.duration": "6s"})
    _freed_without_the_collector(scenario)


def test_the_collector_is_restored_after_a_run() -> None:
    scenario = npsim.load_scenario(QUICKSTART)
    scenario.run.duration = 6
    assert gc.isenabled()
    Simulation(scenario).run()
    assert gc.isenabled()


def test_endpoint_columns_are_shared_within_a_run_and_go_with_it() -> None:
    """Every node's tables share columns per endpoint tuple through a cache the run owns:
    two simulations in one process never share one, and a finished run lets go of its
    own (a notebook or a sweep running many big clusters keeps none of their endpoints)."""

    scenario = npsim.load_scenario(QUICKSTART).with_changes(
        {"manifests[1].spec.replicas": 12, "run.duration": "6s"})
    first, second = Simulation(scenario), Simulation(scenario)
    shared = first.proxies[0].shared_columns
    assert shared is not None and len(shared) > 0
    assert all(proxy.shared_columns is shared for proxy in first.proxies)
    tables = [proxy.tables[0] for proxy in first.proxies]
    assert all(table.keys is tables[0].keys for table in tables)  # one column, every node
    assert second.proxies[0].shared_columns is not shared
    assert second.proxies[0].tables[0].keys is not tables[0].keys
    assert second.proxies[0].tables[0].keys == tables[0].keys
    cache = weakref.ref(shared)
    del shared
    first.run()
    assert all(proxy.shared_columns is None for proxy in first.proxies)
    assert cache() is None  # gone with the run, while its output and tables stay
    assert first.proxies[0].tables[0].keys == second.proxies[0].tables[0].keys
