"""``scenario.resolved.yaml`` as a person reads it: durations and rates in the unit a
person would write (``100ms``, ``1.5us``, ``5m``, ``100/s`` rather than ``9e-05s``,
``1.5e-06s``, ``300.0s``, ``100.0/s``), and the defaults a run derives written in
(the control plane's timings for the Kubernetes version, the cluster CIDR kube-proxy
uses). Every value is written only in a form that reads back to the very same float,
so a rerun from the file repeats the run bit for bit.
"""

from __future__ import annotations

import re
from typing import Any

from npsim.cluster.lifecycle import timing_for, version_default
from npsim.cluster.model import Cluster
from npsim.scenario.scenario import Scenario
from npsim.units import parse_duration, parse_rate

_SECONDS = re.compile(r"^-?\d[\d.]*(e[-+]?\d+)?s$")
_RATE = re.compile(r"^-?\d[\d.]*(e[-+]?\d+)?/s$")
UNITS = (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9))


def _shortest(value: float, scale: float, parse: Any, unit: str) -> str | None:
    """The fewest significant digits (up to 12) that read back exactly, or None."""
    for digits in range(1, 13):
        text = f"{value / scale:.{digits}g}"
        if "e" in text:  # 9e+01: more digits read 90
            continue
        if parse(f"{text}{unit}") == value:
            return f"{text}{unit}"
    return None


def human_seconds(value: float) -> str | None:
    """``1.5e-06`` -> ``"1.5us"``, ``300.0`` -> ``"5m"``, ``0.1`` -> ``"100ms"``: a text
    that reads back to exactly this float, in a unit where the number is 1 to 999 if
    one reads back, else the shortest (``9e-05`` -> ``"90000ns"``: ``90us`` reads as
    90 x 1e-6, one bit away from 9e-05); None if none does (the caller keeps the
    exact repr)."""
    if value == 0:
        return "0s"
    found = [(not 1 <= abs(value) / scale < 1000, len(text), text) for unit, scale in UNITS
             if (text := _shortest(value, scale, parse_duration, unit)) is not None]
    return min(found)[2] if found else None


def human_rate(value: float) -> str | None:
    """``100.0`` -> ``"100/s"``, ``0.5`` -> ``"0.5/s"``, ``1/60`` -> ``"1/m"``: the first
    unit that reads back exactly."""
    if value == 0:
        return "0/s"
    for unit, scale in (("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        for digits in range(1, 13):
            text = f"{value * scale:.{digits}g}"
            if "e" not in text and parse_rate(f"{text}/{unit}") == value:
                return f"{text}/{unit}"
    return None


def in_human_units(data: Any) -> Any:
    """Every ``<number>s`` and ``<number>/s`` string in a scenario dict rewritten in a
    readable unit (manifests are left as the user wrote them)."""
    if isinstance(data, dict):
        return {k: (v if k == "manifests" else in_human_units(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [in_human_units(v) for v in data]
    if isinstance(data, str):
        if _SECONDS.match(data):
            return human_seconds(parse_duration(data)) or data
        if _RATE.match(data):
            return human_rate(parse_rate(data)) or data
    return data


# controlPlane key -> (ControlPlaneTiming attribute, whether it is a duration)
CONTROL_PLANE = {
    "nodeLeaseRenewInterval": ("lease_renew_interval", True),
    "nodeMonitorPeriod": ("monitor_period", True),
    "nodeMonitorGracePeriod": ("grace_period", True),
    "tolerationSeconds": ("toleration_seconds", True),
    "nodeEvictionRate": ("eviction_rate", False),
    "secondaryNodeEvictionRate": ("secondary_eviction_rate", False),
    "unhealthyZoneThreshold": ("unhealthy_zone_threshold", False),
    "largeClusterSizeThreshold": ("large_cluster_size_threshold", False),
}


def fill_derived_defaults(data: dict, scenario: Scenario, cluster: Cluster) -> None:
    """Write in what a run derives when the file leaves it out: each control-plane
    setting the file leaves null, from the Kubernetes version's table
    (``cluster/lifecycle.py``), and the cluster CIDR (the smallest network holding
    every node's podCIDR, what kube-proxy's local-traffic detector uses)."""
    spec = scenario.spec.cluster
    timing = timing_for(spec.kubernetes_version, spec.control_plane)
    plane = data["cluster"].get("controlPlane") or {}
    for key, value in list(plane.items()):
        if value is not None or key not in CONTROL_PLANE:
            continue
        attribute, duration = CONTROL_PLANE[key]
        if hasattr(timing, attribute):
            used = getattr(timing, attribute)
            plane[key] = f"{float(used)!r}s" if duration else used
    data["cluster"]["controlPlane"] = plane
    if data["cluster"].get("clusterCIDR") is None:
        data["cluster"]["clusterCIDR"] = str(cluster.pod_network)
    # the other per-version defaults (VERSION_DEFAULTS): kube-proxy's terminating
    # fallback and each client's kernel
    version = spec.kubernetes_version
    proxy = data["cluster"].get("kubeProxy")
    if isinstance(proxy, dict) and proxy.get("terminatingFallback") is None:
        proxy["terminatingFallback"] = bool(version_default(
            "cluster.kubeProxy.terminatingFallback", version))
    for client in data.get("clients") or []:
        if isinstance(client, dict) and client.get("kernel") is None:
            client["kernel"] = str(version_default("clients[].kernel", version))
