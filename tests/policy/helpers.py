"""Small builders for the traffic-policy, topology and affinity tests.

Scenarios are plain data validated by :func:`npsim.scenario_from_dict`, so durations and
rates carry units ("5ms", "500/s"). Everything here is deterministic: each scenario
names its seed. Tolerances are binomial: a share p estimated from n independent draws
has standard deviation sqrt(p (1 - p) / n), and the tests allow ``Z`` of them.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import npsim

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
Z = 4.5  # standard deviations allowed around a theoretical share (two-sided p ~ 7e-6)


def service(
    name: str = "web",
    *,
    app: str = "web",
    node_port: int = 30080,
    etp: str | None = None,
    itp: str | None = None,
    affinity: str | None = None,
    timeout: Any = None,
    config: Any = None,
    distribution: str | None = None,
    topology_mode: str | None = None,
) -> dict[str, Any]:
    """A NodePort Service manifest selecting ``app``."""
    spec: dict[str, Any] = {
        "type": "NodePort",
        "selector": {"app": app},
        "ports": [{"port": 80, "targetPort": 8080, "nodePort": node_port}],
    }
    if etp is not None:
        spec["externalTrafficPolicy"] = etp
    if itp is not None:
        spec["internalTrafficPolicy"] = itp
    if affinity is not None:
        spec["sessionAffinity"] = affinity
    if timeout is not None:
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": timeout}}
    if config is not None:
        spec["sessionAffinityConfig"] = config
    if distribution is not None:
        spec["trafficDistribution"] = distribution
    metadata: dict[str, Any] = {"name": name}
    if topology_mode is not None:
        metadata["annotations"] = {"service.kubernetes.io/topology-mode": topology_mode}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def deployment(name: str = "web", replicas: int = 3, app: str | None = None) -> dict[str, Any]:
    app = app or name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": name, "ports": [{"containerPort": 8080}]}]},
            },
        },
    }


def population(name: str = "users", service_name: str = "web", *, rate: str | None = None,
               users: int | None = None, think: Any = None, **extra: Any) -> dict[str, Any]:
    """A client population: ``rate`` (open loop) or ``users`` + ``think`` (closed loop);
    ``extra`` keys are scenario keys (camelCase) passed through."""
    if rate is not None:
        arrival: dict[str, Any] = {"rate": rate}
    else:
        assert users is not None
        arrival = {"users": users, "thinkTime": think if think is not None else "0s"}
    return {"name": name, "service": service_name, "arrival": arrival, **extra}


def scenario(
    *,
    nodes: Iterable[str | tuple[str, str]],
    manifests: list[dict[str, Any]],
    clients: list[dict[str, Any]],
    placement: Any = "spread",
    workloads: Mapping[str, Any] | None = None,
    mode: str = "iptables",
    duration: str = "10s",
    warmup: str | int = 0,
    seed: int = 1,
    kube_proxy: Mapping[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> npsim.Scenario:
    """A validated scenario. ``nodes`` are names or (name, zone) pairs. Without
    ``workloads`` every Deployment gets 4 workers, exponential 2 ms service."""
    node_list = [{"name": n} if isinstance(n, str) else {"name": n[0], "zone": n[1]}
                 for n in nodes]
    if workloads is None:
        workloads = {
            m["metadata"]["name"]: {"workers": 4,
                                    "serviceTime": {"dist": "exponential", "mean": "2ms"},
                                    "placement": placement}
            for m in manifests if m["kind"] == "Deployment"
        }
    cluster: dict[str, Any] = {"proxyMode": mode, "nodes": node_list}
    if kube_proxy is not None:
        cluster["kubeProxy"] = dict(kube_proxy)
    data: dict[str, Any] = {
        "name": "policy-test",
        "cluster": cluster,
        "manifests": manifests,
        "workloads": dict(workloads),
        "clients": clients,
        "run": {"duration": duration, "warmup": warmup, "seed": seed},
    }
    if events:
        data["events"] = events
    return npsim.scenario_from_dict(data)


def measured(result: npsim.Result, population_name: str | None = None) -> pd.DataFrame:
    """Post-warm-up requests, optionally of one population."""
    req = result.requests
    req = req[~req["warmup"].to_numpy()]
    if population_name is not None:
        req = req[(req["population"] == population_name).to_numpy()]
    return req


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["outcome"] == "completed").to_numpy()]


def decided(frame: pd.DataFrame) -> pd.DataFrame:
    """Requests whose fate is known at the end of the run (not in flight)."""
    return frame[(frame["outcome"] != "in_flight").to_numpy()]


def shares(frame: pd.DataFrame, column: str = "pod") -> dict[str, float]:
    counts = frame[column].astype(str).value_counts()
    return {k: v / counts.sum() for k, v in counts.items()}


def assert_share(observed: float, p: float, n: int, what: str = "") -> None:
    """``observed`` is a share of ``n`` independent draws with probability ``p``."""
    sd = math.sqrt(p * (1 - p) / n) if 0 < p < 1 else 0.0
    assert abs(observed - p) <= Z * sd + 1e-12, (
        f"{what}: observed {observed:.4f}, theory {p:.4f} (n={n}, {Z} sd = {Z * sd:.4f})")


def assert_shares(frame: pd.DataFrame, expected: Mapping[str, float], column: str = "pod",
                  what: str = "") -> None:
    """Each category's share of ``frame`` rows matches ``expected`` (missing keys: 0)."""
    n = len(frame)
    assert n > 0, f"{what}: no rows"
    got = shares(frame, column)
    for key in set(got) | set(expected):
        assert_share(got.get(key, 0.0), expected.get(key, 0.0), n, f"{what} {column}={key}")


def bridge_ip(pod_cidr: str) -> str:
    """The pod bridge (.1) of a node's pod CIDR."""
    return str(ipaddress.IPv4Network(pod_cidr).network_address + 1)


def node_table(result: npsim.Result) -> pd.DataFrame:
    """Per node (replication 0): zone, node_ip, pod_cidr, pods, indexed by node name."""
    nodes = result.nodes[result.nodes["replication"] == 0]
    return nodes.set_index("node")[["zone", "node_ip", "pod_cidr", "pods"]]


def pods_on(result: npsim.Result) -> dict[str, str]:
    """Pod name -> node name."""
    pods = result.pods[result.pods["replication"] == 0]
    return dict(zip(pods["pod"], pods["node"], strict=True))
