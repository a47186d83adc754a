"""Write a synthetic ``kubectl get nodes,services,endpointslices,deployments -A -o yaml``
dump of a large cluster, in the shape kubectl prints (a v1 List; managedFields, status
and annotations included, as the importer must skip them), plus the kube-proxy ConfigMap.

Run: .venv/bin/python scripts/gen_cluster_dump.py OUT.yaml [--nodes 1000] [--services 5000]

Services: the first ``--node-ports`` (default 2000: the default NodePort range holds 2768
ports) are NodePort Services with explicit nodePorts, the rest ClusterIP; each is backed by
a Deployment of 2 pods placed on nodes in turn, listed in one EndpointSlice with the
controller's zone hints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ZONES = ("zone-a", "zone-b", "zone-c")


def _node(i: int) -> dict:
    name = f"node-{i:04d}"
    cidr = f"10.{64 + i // 256}.{i % 256}.0/24"
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": f"uid-node-{i}", "resourceVersion": str(1000 + i),
                     "labels": {"kubernetes.io/hostname": name,
                                "topology.kubernetes.io/zone": ZONES[i % len(ZONES)]},
                     "managedFields": [{"manager": "kubelet", "operation": "Update",
                                        "fieldsV1": {"f:status": {"f:conditions": {}}}}]},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
        "status": {"addresses": [{"type": "InternalIP",
                                  "address": f"172.20.{i // 250}.{i % 250 + 2}"},
                                 {"type": "Hostname", "address": name}],
                   "allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                   "images": [{"names": ["registry.example/app:1"], "sizeBytes": 1234567}]},
    }


def _objects(s: int, n_nodes: int, node_ports: int, pod_counter: list[int]) -> list[dict]:
    name, ns = f"svc-{s:05d}", f"team-{s % 20:02d}"
    selector = {"app": name}
    port: dict = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}
    nodeport = s < node_ports
    if nodeport:
        port["nodePort"] = 30000 + s
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns, "uid": f"uid-svc-{s}",
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
           "spec": {"type": "NodePort" if nodeport else "ClusterIP",
                    "clusterIP": f"10.96.{s // 250}.{s % 250 + 2}",
                    "clusterIPs": [f"10.96.{s // 250}.{s % 250 + 2}"],
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "selector": selector, "ports": [port],
                    "sessionAffinity": "None", "trafficDistribution": "PreferClose",
                    **({"externalTrafficPolicy": "Cluster"} if nodeport else {})},
           "status": {"loadBalancer": {}}}
    endpoints = []
    for _ in range(2):
        k = pod_counter[0]
        pod_counter[0] += 1
        node = k % n_nodes
        host = k // n_nodes + 2
        endpoints.append({"addresses": [f"10.{64 + node // 256}.{node % 256}.{host}"],
                          "conditions": {"ready": True, "serving": True, "terminating": False},
                          "nodeName": f"node-{node:04d}", "zone": ZONES[node % len(ZONES)],
                          "hints": {"forZones": [{"name": ZONES[node % len(ZONES)]}]},
                          "targetRef": {"kind": "Pod", "namespace": ns,
                                        "name": f"{name}-7d9f-{k:06d}"}})
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": f"{name}-abcde", "namespace": ns,
                        "labels": {"kubernetes.io/service-name": name,
                                   "endpointslice.kubernetes.io/managed-by":
                                       "endpointslice-controller.k8s.io"}},
           "addressType": "IPv4",
           "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
           "endpoints": endpoints}
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": ns, "generation": 1,
                        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
           "spec": {"replicas": 2, "selector": {"matchLabels": selector},
                    "template": {"metadata": {"labels": selector},
                                 "spec": {"containers": [{
                                     "name": "app", "image": "registry.example/app:1",
                                     "ports": [{"name": "http", "containerPort": 8080,
                                                "protocol": "TCP"}],
                                     "readinessProbe": {"httpGet": {"path": "/healthz",
                                                                    "port": 8080},
                                                        "periodSeconds": 10}}]}}},
           "status": {"replicas": 2, "readyReplicas": 2}}
    return [svc, eps, dep]


KUBE_PROXY = """apiVersion: v1
kind: ConfigMap
metadata:
  name: kube-proxy
  namespace: kube-system
data:
  config.conf: |-
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: iptables
    clusterCIDR: 10.64.0.0/14
    iptables:
      minSyncPeriod: 1s
      syncPeriod: 30s
"""


def write_dump(path: Path, nodes: int = 1000, services: int = 5000,
               node_ports: int = 2000) -> None:
    """One v1 List (items as JSON flow lines, which YAML reads: keeps the file quick to
    write) followed by the kube-proxy ConfigMap appended without a separator, as
    ``kubectl ... >> dump.yaml`` leaves it."""
    counter = [0]
    with path.open("w", encoding="utf-8") as f:
        f.write("apiVersion: v1\nitems:\n")
        for i in range(nodes):
            f.write(f"- {json.dumps(_node(i))}\n")
        for s in range(services):
            for obj in _objects(s, nodes, min(node_ports, services), counter):
                f.write(f"- {json.dumps(obj)}\n")
        f.write('kind: List\nmetadata:\n  resourceVersion: ""\n')
        f.write(KUBE_PROXY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--services", type=int, default=5000)
    parser.add_argument("--node-ports", type=int, default=2000)
    args = parser.parse_args()
    write_dump(args.out, args.nodes, args.services, args.node_ports)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
