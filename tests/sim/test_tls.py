"""HTTPS termination costs (tutorial 4.3): handshakes per new connection, where the CPU
and the round trips go."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import client, scenario_dict

import npsim
from npsim.sim.engine import Simulation


def tls_scenario(tls: dict[str, Any], per_connection: int = 4, rate: float = 400.0,
                 rtt: str = "10ms") -> npsim.Scenario:
    data = scenario_dict(
        nodes=2, replicas=2, workers=8, duration=5.0,
        service_time={"dist": "constant", "value": "2ms"},
        clients=[client(rate=rate, requests_per_connection=per_connection,
                        rtt={"dist": "constant", "value": rtt})],
    )
    data["clients"][0]["tls"] = tls
    if tls is not None and tls["terminate"] == "balancer":  # no balancer: a placed error
        data["clients"][0]["balancer"] = {"snat": True}
    return npsim.scenario_from_dict(data)


def run(scenario: npsim.Scenario) -> tuple[Any, Any]:
    out = Simulation(scenario).run()
    cols = out.log.columns()
    return out, cols


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_balancer_termination_adds_round_trips_and_cpu_to_new_connections(version: str
                                                                          ) -> None:
    out, cols = run(tls_scenario({"terminate": "balancer", "version": version,
                                  "handshakeCpu": "1ms", "balancerCores": 64}))
    done = cols["outcome"] == 1
    new, reused = done & (cols["new_conn"] == 1), done & (cols["new_conn"] == 0)
    trips = 1 if version == "1.3" else 2
    extra = cols["network"][new].mean() - cols["network"][reused].mean()
    assert extra == pytest.approx(trips * 0.010 + 0.001, abs=1e-4)  # rtt + CPU, no queue
    # keep-alive: one handshake per connection of 4 requests (100 client slots may end
    # the run part-way through a connection)
    assert done.sum() / 4 <= new.sum() <= done.sum() / 4 + 100
    handshakes = next(d for k, d in zip(out.events.kind, out.events.detail, strict=True)
                      if k == "tls_handshakes")
    opened = int((cols["new_conn"] == 1).sum())
    assert handshakes.startswith(f"terminated at the balancer (64 cores): {opened} full")
    # the pods do no TLS work
    assert np.allclose(cols["service"][done], 0.002)
    assert "tls_handshakes" in out.events.kind


def test_pod_termination_charges_the_pods_worker() -> None:
    out, cols = run(tls_scenario({"terminate": "pod", "handshakeCpu": "1ms",
                                  "resumedCpu": "100us", "resumption": 0.25}))
    done = cols["outcome"] == 1
    new, reused = done & (cols["new_conn"] == 1), done & (cols["new_conn"] == 0)
    assert np.allclose(cols["service"][reused], 0.002)
    first = cols["service"][new] - 0.002
    resumed = np.isclose(first, 0.0001).mean()
    assert np.isclose(first, 0.001).mean() + resumed == pytest.approx(1.0)
    assert resumed == pytest.approx(0.25, abs=0.04)
    # the handshake's round trip reaches the pod: rtt plus the node-to-pod hop
    assert np.allclose(cols["network"][new], 2 * (0.010 + cols["hop"][new]))


def test_balancer_cores_queue_handshakes() -> None:
    """One core and more handshake work than it can do: handshakes queue at the
    balancer, and the queueing shows in the new connections' latency."""
    spec = {"terminate": "balancer", "handshakeCpu": "4ms", "balancerCores": 1}
    out, cols = run(tls_scenario(spec, per_connection=1, rate=300.0))
    t = next(d for k, d in zip(out.events.kind, out.events.detail, strict=True)
             if k == "tls_handshakes")
    assert "queued for a core" in t
    queued = float(t.split(", ")[-1].split("s queued")[0])
    assert queued > 1.0  # 300/s x 4 ms = 1.2 busy: the queue grows


def test_no_tls_no_cost() -> None:
    out, cols = run(tls_scenario(None, per_connection=1))  # type: ignore[arg-type]
    assert Simulation(tls_scenario(None)).tls is None  # type: ignore[arg-type]
    assert np.allclose(cols["network"][cols["outcome"] == 1] - cols["hop"][cols["outcome"] == 1],
                       0.010)
