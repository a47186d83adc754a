"""The control plane keeps little per pod and per node: endpoint versions share their
objects, pod lifecycles and propagation streams are made when first needed."""

from __future__ import annotations

from conftest import build, client

from npsim.sim.engine import Simulation


def test_the_first_version_is_the_cluster_model_s_endpoints() -> None:
    sim = Simulation(build(nodes=2, replicas=4, clients=[client(rate=50.0)], duration=1.0))
    sp = sim.cluster.service_ports[0]
    ready, _hints, terminating = sim.control.published(sp.index, version=0)
    assert ready is sp.endpoints and len(ready) == 4 and terminating == ()
    # no pod has changed yet: no lifecycle object made, every pod ready all the same
    assert len(sim.control.life) == 0 and sim.control.ready == {0, 1, 2, 3}
    assert sim.control.life[2].ready and len(sim.control.life) == 1


def test_propagation_streams_are_made_at_the_first_change_and_dropped_after_the_run() -> None:
    scenario = build(nodes=2, replicas=4, clients=[client(rate=50.0)], duration=4.0)
    scenario.spec.events = [{"at": 1.0, "scale": {"deployment": "web", "replicas": 2}}]
    sim = Simulation(scenario)
    assert all(sync.propagation is None for sync in sim.control.nodes)
    out = sim.run()
    # the change reached both nodes after their own propagation delay
    assert all(sync.history[-1][1] == 1 and sync.history[-1][0] > 1.0
               for sync in sim.control.nodes)
    assert all(sync.propagation is None for sync in sim.control.nodes)
    # the output's record of it: what each kube-proxy had programmed, and when
    assert [h[-1] for h in out.ready_history] == [(sync.history[-1][0], 2)
                                                   for sync in sim.control.nodes]
    later = sim.control.published(0, version=1).ready
    assert len(later) == 2 and all(any(e is f for f in sim.control.published(0, version=0).ready)
                                   for e in later)  # the same endpoint objects
