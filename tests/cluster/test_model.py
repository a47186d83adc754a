"""The cluster model's per-pod and per-endpoint objects: what a large cluster keeps."""

from __future__ import annotations

import pickle

from conftest import build

from npsim.cluster.model import Endpoint, build_cluster, endpoints_for, ip_str


def test_pods_of_a_deployment_share_their_template_labels_and_ports() -> None:
    cluster = build_cluster(build(nodes=2, replicas=4, duration=1.0))
    first, *others = cluster.pods
    assert first.labels == {"app": "web"}
    assert all(p.labels is first.labels and p.container_ports is first.container_ports
               for p in others)
    assert not hasattr(first, "__dict__")  # slots: no dict per pod


def test_an_endpoint_is_ordered_by_its_ip_port_key_and_compared_by_its_fields() -> None:
    a = Endpoint(0, 0, int.from_bytes(bytes([10, 244, 0, 9]), "big"), 8080)
    b = Endpoint(1, 0, int.from_bytes(bytes([10, 244, 0, 10]), "big"), 8080)
    assert (a.key, b.key) == ("10.244.0.9:8080", "10.244.0.10:8080")
    assert sorted([a, b], key=lambda e: e.key) == [b, a]  # lexicographic, as kube-proxy
    assert a == Endpoint(0, 0, a.ip, 8080) and hash(a) == hash(Endpoint(0, 0, a.ip, 8080))
    assert pickle.loads(pickle.dumps(a)).key == a.key
    assert not hasattr(a, "__dict__")


def test_endpoints_made_before_are_reused_with_the_same_result() -> None:
    cluster = build_cluster(build(nodes=3, replicas=6, duration=1.0))
    sp = cluster.service_ports[0]
    made: dict = {}
    first = endpoints_for(sp.service, sp.port, cluster.pods, made)
    again = endpoints_for(sp.service, sp.port, cluster.pods[:4], made)
    assert first == sp.endpoints and len(made) == 6
    assert [ip_str(e.ip) for e in again] == [ip_str(e.ip) for e in
                                             endpoints_for(sp.service, sp.port,
                                                           cluster.pods[:4])]
    assert all(any(e is f for f in first) for e in again)  # the same objects
