"""Small scenarios and hand-made endpoint tables for the kube-proxy tests.

Scenarios are plain data validated by :func:`npsim.scenario_from_dict`, so every duration
and rate carries its unit ("5ms", "200/s"). Network hops are zero unless asked for, and
kube-proxy's propagation delay is a constant, so sync times are exact.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

import npsim
from npsim.cluster.model import Endpoint, Node, ServicePortModel
from npsim.results.frames import request_frame
from npsim.scenario.objects import Service, ServicePort
from npsim.sim.engine import Simulation

ZERO = {"dist": "constant", "value": 0}
APP = {"app": "web"}


def const(value: str) -> dict[str, Any]:
    return {"dist": "constant", "value": value}


def service_manifest(node_port: int = 30080) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": dict(APP),
                 "ports": [{"port": 80, "targetPort": 80, "nodePort": node_port}]},
    }


def deployment_manifest(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(APP)},
            "template": {"metadata": {"labels": dict(APP)},
                         "spec": {"containers": [{"name": "web",
                                                  "ports": [{"containerPort": 80}]}]}},
        },
    }


def client(name: str = "c", *, rate: str = "200/s", entry: Any = "random",
           rpc: int = 1, source_ips: int | None = None, connect_timeout: str | None = None,
           ) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "service": "web", "arrival": {"rate": rate},
                           "entry": entry, "requestsPerConnection": rpc}
    if source_ips is not None:
        out["sourceIPs"] = source_ips
    if connect_timeout is not None:
        out["connectTimeout"] = connect_timeout
    return out


def scenario_dict(
    *,
    nodes: int | Sequence[Mapping[str, Any]] = 1,
    replicas: int = 4,
    mode: str = "iptables",
    clients: Sequence[Mapping[str, Any]] | None = None,
    events: Sequence[Mapping[str, Any]] = (),
    duration: str | None = None,
    requests: int | None = None,
    seed: int = 1,
    service_time: str = "1ms",
    workers: int = 4,
    placement: Any = "spread",
    cluster: Mapping[str, Any] | None = None,
    kube_proxy: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One NodePort Service "web" (nodePort 30080) over one Deployment "web"."""
    node_list = ([{"name": f"node-{i + 1}"} for i in range(nodes)] if isinstance(nodes, int)
                 else [dict(n) for n in nodes])
    kp = {"propagation": const("10ms")}
    kp.update(kube_proxy or {})
    cluster_spec: dict[str, Any] = {
        "proxyMode": mode, "nodes": node_list,
        "network": {"sameNode": ZERO, "sameZone": ZERO, "crossZone": ZERO},
        "kubeProxy": kp,
    }
    cluster_spec.update(cluster or {})
    run: dict[str, Any] = {"seed": seed}
    if requests is not None:
        run["requests"] = requests
    else:
        run["duration"] = duration or "5s"
    return {
        "name": "proxy-test",
        "cluster": cluster_spec,
        "manifests": [service_manifest(), deployment_manifest(replicas)],
        "workloads": {"web": {"workers": workers, "serviceTime": const(service_time),
                              "placement": placement}},
        "clients": list(clients or [client()]),
        "events": list(events),
        "run": run,
    }


def scenario(**kwargs: Any) -> npsim.Scenario:
    return npsim.scenario_from_dict(scenario_dict(**kwargs))


def scale(at: str, replicas: int) -> dict[str, Any]:
    return {"at": at, "scale": {"deployment": "web", "replicas": replicas}}


def run_frame(scn: npsim.Scenario) -> tuple[Simulation, Any]:
    """One replication: the finished simulation (its kube-proxies' tables, the control
    plane's history) and its request frame."""
    sim = Simulation(scn)
    return sim, request_frame(sim.run())


# --- hand-made tables ------------------------------------------------------------------------


def service_port(namespace: str = "default", name: str = "web", port_name: str = "",
                 protocol: str = "TCP", endpoints: tuple[Endpoint, ...] = ()) -> ServicePortModel:
    port = ServicePort(name=port_name, protocol=protocol, port=80, target_port=80,
                       node_port=30080)
    svc = Service(name=name, namespace=namespace, type="NodePort", ports=(port,),
                  selector=dict(APP), external_traffic_policy="Cluster", origin="test")
    return ServicePortModel(0, svc, port, 30080, endpoints)


def node(index: int = 0, ip: str = "172.18.0.2", cidr: str = "10.244.0.0/24") -> Node:
    return Node(index, f"node-{index + 1}", "zone-a", int(ipaddress.IPv4Address(ip)),
                ipaddress.IPv4Network(cidr))


def endpoints(n: int, base: str = "10.1.0.0", port: int = 80) -> tuple[Endpoint, ...]:
    """n endpoints at consecutive addresses, in kube-proxy's (lexicographic) order."""
    start = int(ipaddress.IPv4Address(base))
    eps = [Endpoint(pod=i, node=0, ip=start + 1 + i, port=port) for i in range(n)]
    return tuple(sorted(eps, key=lambda e: e.key))


# --- statistics ----------------------------------------------------------------------------


def chi_square_uniform(counts: Sequence[int] | np.ndarray) -> float:
    """p-value of a chi-square goodness-of-fit test against equal shares."""
    return float(stats.chisquare(np.asarray(counts, dtype=float)).pvalue)
