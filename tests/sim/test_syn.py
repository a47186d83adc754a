"""The client kernel's SYN schedule per kernel version (npsim/sim/syn.py).

net/ipv4/tcp_timer.c: ``tcp_write_timeout`` gives up a SYN_SENT socket after
``tcp_syn_retries + tcp_syn_linear_timeouts`` retransmissions; ``tcp_retransmit_timer``
keeps the 1 s RTO while ``total_rto <= tcp_syn_linear_timeouts`` and doubles it after.
Before Linux 6.5 there is no linear part: 0, 1, 3, ... 63 s, failing at 127 s
(tcp_syn_retries 6). From 6.5 (tcp_syn_linear_timeouts 4): 0, 1, 2, 3, 4, 5, 7, 11, 19,
35, 67 s, failing at 131 s (11 SYNs; measured on 6.12: retransmissions 1.0 x 5, then
2, 4, 8, 16, 32 s apart, giving up after about 133 s).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import client, constant, scenario_dict

import npsim
from npsim.cluster.lifecycle import version_default
from npsim.scenario.problems import ScenarioError
from npsim.sim.syn import connect_give_up, syn_linear_timeouts, syn_send_times


def test_exponential_schedule_before_linux_6_5() -> None:
    assert syn_send_times(6) == [0, 1, 3, 7, 15, 31, 63]
    assert connect_give_up(6, None) == 127.0


def test_linear_timeouts_from_linux_6_5() -> None:
    assert syn_send_times(6, linear=4) == [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]
    assert connect_give_up(6, None, 4) == 131.0
    assert syn_send_times(2, linear=1) == [0, 1, 2, 4]  # RTOs 1, 1, 2, 4
    assert connect_give_up(2, None, 1) == 8.0
    assert syn_send_times(6, 10.0, 4) == [0, 1, 2, 3, 4, 5, 7]
    # TCP_RTO_MAX 120 s caps a long exponential tail
    assert connect_give_up(8, None) == 127.0 + 120.0 + 120.0


@pytest.mark.parametrize(("kernel", "setting", "linear"), [
    ("5.15", None, 0), ("6.1", None, 0), ("6.4.16", None, 0), ("6.5", None, 4),
    ("6.12", None, 4), ("6.12", 2, 2), ("6.6", 0, 0)])
def test_linear_timeouts_per_kernel(kernel: str, setting: int | None, linear: int) -> None:
    assert syn_linear_timeouts(kernel, setting) == linear


def test_default_kernel_per_kubernetes_version() -> None:
    """Scenarios for v1.32 and earlier keep the exponential schedule; from v1.33 the
    clients run the current LTS kernel, 6.12 (VERSION_DEFAULTS)."""
    assert version_default("clients[].kernel", "1.32") == "5.15"
    assert version_default("clients[].kernel", "1.33") == "6.12"


@pytest.mark.parametrize(("kernel", "version", "waited"), [
    (None, "1.32", 127.0), (None, "1.33", 131.0), ("6.12", "1.28", 131.0),
    ("5.15", "1.34", 127.0)])
def test_an_unanswered_connection_gives_up_per_kernel(kernel: str | None, version: str,
                                                      waited: float) -> None:
    """ETP Local with no pod on node-2: a SYN there is never answered; the client fails
    when its kernel gives up."""
    c = client(rate=2.0, entry={"node": "node-2"})
    c["connectTimeout"] = None
    if kernel is not None:
        c["kernel"] = kernel
    d = scenario_dict(nodes=2, replicas=1, placement={"node-1": 1}, clients=[c],
                      service_time=constant(1e-3), duration=150.0)
    d["manifests"][0]["spec"]["externalTrafficPolicy"] = "Local"
    d["cluster"]["kubernetesVersion"] = version
    failed = npsim.run(npsim.scenario_from_dict(d)).requests
    failed = failed[(failed["outcome"] == "failed").to_numpy()]
    assert len(failed) > 0 and np.allclose(failed["latency"], waited)


def test_linear_timeouts_need_a_6_5_kernel() -> None:
    c = client(rate=1.0)
    c["kernel"] = "5.15"
    c["tcpSynLinearTimeouts"] = 4
    d = scenario_dict(nodes=1, clients=[c], duration=1.0)
    with pytest.raises(ScenarioError, match="tcpSynLinearTimeouts needs kernel 6.5"):
        npsim.scenario_from_dict(d)
