"""Pod servers: a quiet pod, served after the run from the request log (``settle``), must
serve the same requests at the same times with the same outcomes as the event-driven
pod (``PodServer``) that serves every pod the engine cannot leave to ``settle``."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from npsim.dists import batched
from npsim.outcomes import COMPLETED, FAILED, IN_FLIGHT, QUEUE_FULL
from npsim.sim.pods import PodServer, QuietPod, settle
from npsim.sim.records import NAN, RequestLog

COMPARED = ("service_start", "service", "t_end", "outcome", "reason")


def _sampler():  # noqa: ANN202 - one service stream, the same for both ways of serving
    return batched(np.random.default_rng(5).standard_exponential)  # mean service 1


def _log(arrivals: np.ndarray, network: np.ndarray, proxy: np.ndarray) -> RequestLog:
    """Requests sent at ``arrivals``, reaching the pod half a round trip plus kube-proxy's
    cost later, not served yet."""
    log = RequestLog()
    for i, (t, net, cost) in enumerate(zip(arrivals, network, proxy, strict=True)):
        for name in RequestLog.COLUMNS:
            getattr(log, name).append(0 if getattr(log, name).typecode not in "df" else NAN)
        log.t_start[i], log.network[i], log.proxy[i] = t, net, cost
    return log


def _by_events(log: RequestLog, workers: int, limit: int | None,
               until: float | None) -> dict[str, np.ndarray]:
    """The event-driven pod: each arrival an event at the time the engine gives it."""
    env = simpy.Environment()
    server = PodServer(env, 0, workers, limit, _sampler(), log, None)
    for i in range(len(log)):
        at = log.t_start[i] + (log.network[i] * 0.5 + log.proxy[i])  # as Simulation.send
        env.timeout(at, i).callbacks.append(server.arrive)
    env.run(until=until)
    return log.columns()


def _settled(log: RequestLog, workers: int, limit: int | None,
             until: float | None) -> dict[str, np.ndarray]:
    """A quiet pod, given nothing during the run and served from the log after it."""
    server = QuietPod(simpy.Environment(), 0, workers, limit, None, log, None)
    server.stream = _sampler
    settle([server], log, until)
    assert server.sample is None and server.stream is None  # let go once served
    return log.columns()


def _as_frames_see(cols: dict[str, np.ndarray], end: float) -> dict[str, np.ndarray]:
    """What a request frame reports at a timed run's ``end`` (npsim/results/frames.py):
    a service starting after the stop has not started, an end the client sees after it
    is in flight. The event-driven pod leaves those in flight itself; a quiet pod fills
    them in."""
    cols = {name: column.copy() for name, column in cols.items()}
    late = cols["service_start"] > end
    cols["service_start"][late] = cols["service"][late] = NAN
    cols["outcome"][late & (cols["outcome"] == COMPLETED)] = IN_FLIGHT
    cols["outcome"][(cols["outcome"] != IN_FLIGHT) & (cols["t_end"] > end)] = IN_FLIGHT
    cols["t_end"][cols["outcome"] == IN_FLIGHT] = NAN
    return cols


def _requests(n: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Send times, round trips and kube-proxy costs: round trips vary enough that many
    requests reach the pod in another order than they were sent."""
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.exponential(1 / rate, n)), rng.uniform(0.0, 0.6, n),
            rng.uniform(0.0, 0.01, n))


@pytest.mark.parametrize(("workers", "limit", "until"),
                         [(1, None, None), (4, None, None), (2, 0, None), (3, 5, None),
                          (4, None, 900.0), (3, 5, 700.0), (1, 2, 800.0)])
def test_settled_quiet_pod_serves_exactly_as_the_event_driven_pod(workers, limit, until):
    """Same starts, service times, ends and outcomes, request by request: FIFO over c
    workers in arrival order (not send order), service drawn in start order, a full
    queue turning away exactly the same requests, and what arrives after a timed run's
    end left in flight."""
    sent = _requests(4000, rate=0.95 * workers, seed=workers + 10 * (limit or 0))
    events = _by_events(_log(*sent), workers, limit, until)
    settled = _settled(_log(*sent), workers, limit, until)
    arrival = sent[0] + (sent[1] * 0.5 + sent[2])
    assert (np.diff(arrival) < 0).sum() > 100  # many arrive out of send order
    if until is not None:
        # requests in service or queued at the stop: in flight for the event-driven pod,
        # served beyond the end by the quiet one; the frames see both in flight
        assert ((events["outcome"] == IN_FLIGHT) & (arrival < until)).any()
        assert ((settled["outcome"] == IN_FLIGHT) == (arrival >= until)).all()
        events, settled = _as_frames_see(events, until), _as_frames_see(settled, until)
    for column in COMPARED:
        np.testing.assert_array_equal(settled[column], events[column], err_msg=column)
    assert (events["outcome"] == COMPLETED).sum() > 500
    if limit is not None:  # the limit was reached: some requests were turned away
        turned = events["outcome"] == FAILED
        assert turned.any() and (events["reason"][turned] == QUEUE_FULL).all()


def test_quiet_pod_serves_fifo_with_c_workers():
    arrivals, network, proxy = _requests(2000, rate=1.8, seed=3)
    cols = _settled(_log(arrivals, network, proxy), 2, None, None)
    reach = cols["t_start"] + (cols["network"] * 0.5 + cols["proxy"])
    order = np.argsort(reach, kind="stable")
    cols = {name: column[order] for name, column in cols.items()}  # in arrival order
    reach, network = reach[order], cols["network"]
    start, end = cols["service_start"], cols["service_start"] + cols["service"]
    assert np.all(np.diff(start) >= 0)  # FIFO: starts in arrival order
    assert np.all(start >= reach)
    # at any start, at most one other request is in service (two workers)
    in_service = [(end[:i] > start[i]).sum() for i in range(len(start))]
    assert max(in_service) == 1
    np.testing.assert_allclose(cols["t_end"], end + network * 0.5)


def test_quiet_pod_takes_no_event_and_reports_no_ends():
    """A quiet pod is served only by ``settle``: nothing may reach it as an event, and
    no one can ask it for ends (those pods are event-driven PodServers)."""
    with pytest.raises(ValueError, match="PodServer"):
        QuietPod(simpy.Environment(), 0, 1, None, lambda: 1.0, RequestLog(),
                 lambda request, t: None)
    env = simpy.Environment()
    pod = QuietPod(env, 0, 1, None, None, RequestLog(), None)
    env.timeout(1.0, 0).callbacks.append(pod.arrive)
    with pytest.raises(RuntimeError, match="served after the run"):
        env.run()


@pytest.mark.parametrize(("changes", "quiet"), [
    ({}, True),
    ({"cluster.proxyMode": "userspace"}, False),  # a relay hands requests on: events
    ({"cluster.nodes[1].proxyMode": "userspace"}, False),  # one relay is enough
    ({"cluster.proxyMode": "ipvs"}, False),  # IPVS counts connections: ends reported
])
def test_the_engine_decides_once_how_pods_are_served(changes, quiet):
    """Every pod is a QuietPod served after the run, or an event-driven PodServer that
    takes its requests as events: nothing in between."""
    import npsim
    from npsim.sim.engine import Simulation

    sim = Simulation(npsim.bundled("quickstart").with_changes(changes))
    kinds = {type(server) for server in sim.pods}
    assert kinds == ({QuietPod} if quiet else {PodServer})
    assert all((callbacks is None) == quiet for callbacks in sim.registry.arrive)


def test_pods_no_event_touches_stay_quiet_and_change_nothing(monkeypatch):
    """In a node failure, pods on the other nodes run as QuietPods; the run is the same,
    frame for frame, as one with every pod event-driven."""
    import pandas as pd

    import npsim
    import npsim.sim.build as build
    from npsim.sim.engine import Simulation

    scenario = npsim.bundled("node-failure").with_changes({"run.duration": "150s"})
    sim = Simulation(scenario)
    quiet = {p.index for p in sim.pods if isinstance(p, QuietPod)}
    crashed = scenario.spec.events[0].target.node
    on_it = {p.index for p in sim.cluster.pods if sim.cluster.nodes[p.node].name == crashed}
    assert quiet and quiet == set(range(len(sim.pods))) - on_it
    with pytest.raises(RuntimeError, match="judged undisturbed"):
        sim.registry.disturbed(min(quiet))
    mixed = npsim.run(scenario)
    monkeypatch.setattr(build, "quiet_pods", lambda *args: set())  # every pod touched
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
