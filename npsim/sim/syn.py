"""The client kernel's SYN retransmissions: when a connect attempt that gets no answer
sends again, and when it gives up (net/ipv4/tcp_timer.c), per kernel version."""

from __future__ import annotations

import math

SYN_RTO = 1.0  # initial retransmission timeout of a SYN (TCP_TIMEOUT_INIT, RFC 6298 2.1)

TCP_RTO_MAX = 120.0  # the kernel caps every retransmission timeout (include/net/tcp.h)
LINEAR_FROM = (6, 5)  # tcp_syn_linear_timeouts: Linux 6.5 on (default 4)
DEFAULT_LINEAR_TIMEOUTS = 4


def syn_linear_timeouts(kernel: str, setting: int | None = None) -> int:
    """``net.ipv4.tcp_syn_linear_timeouts`` on a client running ``kernel``: the setting,
    or 4 from Linux 6.5 on; 0 before (the sysctl did not exist)."""
    major, minor = (int(x) for x in kernel.split(".")[:2])
    if (major, minor) < LINEAR_FROM:
        return 0
    return DEFAULT_LINEAR_TIMEOUTS if setting is None else setting


def _syn_rtos(syn_retries: int, linear: int) -> list[float]:
    """The retransmission timeout after the SYN and after each retransmission.

    ``tcp_write_timeout`` gives up after ``tcp_syn_retries + tcp_syn_linear_timeouts``
    retransmissions; ``tcp_retransmit_timer`` keeps the 1 s RTO for the first
    ``linear`` of them and doubles it after each later one, up to ``TCP_RTO_MAX``
    (net/ipv4/tcp_timer.c)."""
    rtos, rto = [], SYN_RTO
    for k in range(syn_retries + linear + 1):
        if k > linear:
            rto = min(rto * 2, TCP_RTO_MAX)
        rtos.append(rto)
    return rtos


def syn_send_times(syn_retries: int, give_up: float = math.inf, linear: int = 0
                   ) -> list[float]:
    """When a connecting client sends its SYN and each retransmission, from 0.

    Before Linux 6.5 (``linear`` 0) the RTO starts at 1 s and doubles per retransmission,
    ``tcp_syn_retries`` (default 6) times: 0, 1, 3, 7, ... 63 s, giving up at 127 s
    (kernel Documentation/networking/ip-sysctl.rst, tcp_syn_retries). From 6.5,
    ``tcp_syn_linear_timeouts`` (default 4) more retransmissions come first at 1 s
    apart: 0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s, giving up at 131 s. A retransmission
    reuses the conntrack entry, so it goes where the first SYN went (kube-proxy flushes
    no TCP conntrack entries: k8s pkg/proxy/conntrack/cleanup.go ``CleanStaleEntries``
    touches only UDP).
    """
    if linear == 0 and syn_retries <= 6:  # the exponential schedule, as it always was
        times = [SYN_RTO * (2**k - 1) for k in range(syn_retries + 1)]
    else:
        times, t = [], 0.0
        for rto in _syn_rtos(syn_retries, linear)[:-1]:
            times.append(t)
            t += rto
        times.append(t)
    return [t for t in times if t < give_up]


def connect_give_up(syn_retries: int, timeout: float | None, linear: int = 0) -> float:
    """How long a connection that gets no answer takes to fail: the last retransmission's
    RTO running out (127 s by default before Linux 6.5, 131 s after), or the client's own
    connect timeout if shorter."""
    if linear == 0 and syn_retries <= 6:
        kernel = SYN_RTO * (2 ** (syn_retries + 1) - 1)
    else:
        kernel = sum(_syn_rtos(syn_retries, linear))
    return kernel if timeout is None else min(timeout, kernel)
