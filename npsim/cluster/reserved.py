"""Addresses of a node's pod CIDR no pod can have: the network address, the node's
``cni0`` bridge (the CIDR's first host, the gateway the bridge and host-local IPAM
plugins give the bridge; npsim sends same-node traffic from it, ``Node.bridge_ip``)
and the broadcast address. A hand-placed pod (``workloads.NAME.pods[i].ip``) at one of
them would share its address with the node's own interface.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from npsim.scenario.schema import ScenarioSpec


def reserved_pod_addresses(spec: ScenarioSpec, nets: list[ipaddress.IPv4Network]
                           ) -> list[tuple[list[object], str]]:
    """(field path, message) for each hand-placed pod at a reserved address of its
    node's pod CIDR (``nets``: each node's, given or default)."""
    index = {node.name: i for i, node in enumerate(spec.cluster.nodes)}
    out: list[tuple[list[object], str]] = []
    for name, workload in spec.workloads.items():
        for j, pod in enumerate(workload.pods or []):
            i = index.get(pod.node)
            if i is None:  # an unknown node is its own problem (scenario/checks.py)
                continue
            net, ip = nets[i], ipaddress.IPv4Address(pod.ip)
            if net.num_addresses < 4:
                continue
            what = {net.network_address: "the network address",
                    net.network_address + 1: "the node's cni0 bridge address (the first "
                                             "host, the pods' gateway)",
                    net.broadcast_address: "the broadcast address"}.get(ip)
            if what is not None:
                out.append((["workloads", name, "pods", j, "ip"],
                            f"address {ip} is {what} of the pod CIDR {net} of node "
                            f"{pod.node!r}: no pod can have it; give the pod another "
                            "address of the CIDR"))
    return out
