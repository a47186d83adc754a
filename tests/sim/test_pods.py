"""Pod servers: the event-driven FIFO server and the quiet one, served after the run from
the request log, must serve the same requests at the same times with the same outcomes."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from npsim.dists import batched
from npsim.sim.pods import PodServer, QuietPod, settle
from npsim.sim.records import COMPLETED, FAILED, NAN, QUEUE_FULL, RequestLog


def _serve(cls: type[PodServer], arrivals: np.ndarray, network: np.ndarray, workers: int,
           limit: int | None, until: float | None = None, after: bool = False) -> RequestLog:
    """Requests sent at ``arrivals`` reach the pod half a round trip later, as events
    (``after=False``) or served after the run as the engine does for quiet pods."""
    env = simpy.Environment()
    log = RequestLog()
    sample = batched(np.random.default_rng(5).standard_exponential)  # mean service 1
    server = cls(env, 0, workers, limit, sample, log, None)
    for i, (t, net) in enumerate(zip(arrivals, network, strict=True)):
        for name in RequestLog.COLUMNS:
            getattr(log, name).append(0 if getattr(log, name).typecode not in "df" else NAN)
        log.t_start[i] = t
        log.network[i] = net
        log.proxy[i] = 0.0
        if not after:
            env.timeout(t + (net * 0.5 + 0.0), i).callbacks.append(server.arrive)
    if after:
        settle([server], [True], log, until)
    else:
        env.run(until=until)
    return log


def _arrivals(n: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.exponential(1 / rate, n)), rng.uniform(0.0, 0.2, n)


@pytest.mark.parametrize(("workers", "limit"), [(1, None), (4, None), (2, 0), (3, 5)])
def test_quiet_pod_serves_exactly_as_the_event_driven_pod(workers, limit):
    arrivals, network = _arrivals(4000, rate=0.9 * workers, seed=workers)
    events = _serve(PodServer, arrivals, network, workers, limit).columns()
    quiet = _serve(QuietPod, arrivals, network, workers, limit).columns()
    for column in ("service_start", "service", "t_end", "outcome", "reason"):
        np.testing.assert_array_equal(quiet[column], events[column], err_msg=column)
    assert (events["outcome"] == COMPLETED).any()
    if limit is not None:  # the limit was reached: some requests were turned away
        turned = events["outcome"] == FAILED
        assert turned.any() and (events["reason"][turned] == QUEUE_FULL).all()


@pytest.mark.parametrize(("workers", "limit", "until"),
                         [(1, None, None), (4, None, 900.0), (2, 0, None), (3, 5, 700.0)])
def test_quiet_pods_served_after_the_run_match_the_event_driven_pod(workers, limit, until):
    """The engine hands a quiet pod nothing during the run: it is served afterwards from
    the log, in arrival order, as if each arrival had been an event; a timed run leaves
    what arrives after its end in flight. (A timed run's requests that end after the stop
    are in flight for the event-driven pod and completed-after-the-end for a quiet one:
    the frames count both in flight, so a timed run compares quiet pods.)"""
    arrivals, network = _arrivals(4000, rate=0.9 * workers, seed=workers + 10)
    events = _serve(PodServer if until is None else QuietPod, arrivals, network, workers,
                    limit, until).columns()
    after = _serve(QuietPod, arrivals, network, workers, limit, until, after=True).columns()
    for column in ("service_start", "service", "t_end", "outcome", "reason"):
        np.testing.assert_array_equal(after[column], events[column], err_msg=column)
    if until is not None:  # some requests were still on their way at the end
        assert (after["outcome"] == 0).any() and np.isnan(after["service"]).any()


def test_quiet_pod_serves_fifo_with_c_workers():
    arrivals, network = _arrivals(2000, rate=1.8, seed=3)
    cols = _serve(QuietPod, arrivals, network, 2, None, after=True).columns()
    order = np.argsort(cols["t_start"] + cols["network"] * 0.5, kind="stable")
    cols = {name: column[order] for name, column in cols.items()}  # in arrival order
    network = cols["network"]
    start, end = cols["service_start"], cols["service_start"] + cols["service"]
    assert np.all(np.diff(start) >= 0)  # FIFO: starts in arrival order
    assert np.all(start >= cols["t_start"] + network * 0.5)
    # at any start, at most one other request is in service (two workers)
    in_service = [(end[:i] > start[i]).sum() for i in range(len(start))]
    assert max(in_service) == 1
    np.testing.assert_allclose(cols["t_end"], end + network * 0.5)


def test_quiet_pod_refuses_end_notifications():
    with pytest.raises(ValueError, match="PodServer"):
        QuietPod(simpy.Environment(), 0, 1, None, lambda: 1.0, RequestLog(),
                 lambda request, t: None)


def test_pods_no_event_touches_stay_quiet_and_change_nothing(monkeypatch):
    """In a node failure, pods on the other nodes run as QuietPods; the run is the same,
    frame for frame, as one with every pod event-driven."""
    import pandas as pd

    import npsim
    import npsim.sim.engine as engine
    from npsim.sim.engine import Simulation

    scenario = npsim.bundled("node-failure").with_changes({"run.duration": "150s"})
    sim = Simulation(scenario)
    quiet = {p.index for p in sim.pods if isinstance(p, QuietPod)}
    crashed = scenario.spec.events[0].target.node
    on_it = {p.index for p in sim.cluster.pods if sim.cluster.nodes[p.node].name == crashed}
    assert quiet and quiet == set(range(len(sim.pods))) - on_it
    with pytest.raises(RuntimeError, match="judged undisturbed"):
        sim.disturbed(min(quiet))
    mixed = npsim.run(scenario)
    monkeypatch.setattr(engine, "pods_touched",
                        lambda events, cluster: set(range(len(cluster.pods))))
    evented = npsim.run(scenario)
    for frame in ("requests", "pods", "events", "timeseries"):
        pd.testing.assert_frame_equal(getattr(mixed, frame), getattr(evented, frame))


def test_quiet_pods_settled_in_blocks_serve_the_same(monkeypatch):
    """Settling takes pods in blocks, and a pod's arrivals in chunks, to bound its
    memory; blocks and chunks of a few requests give the same run as one of each."""
    import pandas as pd

    import npsim
    import npsim.sim.pods as pods

    scenario = npsim.bundled("topology-three-zones").with_changes({"run.duration": "20s"})
    whole = npsim.run(scenario).requests
    monkeypatch.setattr(pods, "SETTLE_BLOCK", 50)
    monkeypatch.setattr(pods, "TAKE_CHUNK", 7)
    blocks = npsim.run(scenario).requests
    assert (whole["outcome"] == "completed").sum() > 1000
    pd.testing.assert_frame_equal(whole, blocks)
