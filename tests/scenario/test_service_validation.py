"""The API server's Service checks (validation.go, alloc.go), facts 5-18 of the
reference: each message in its exact words and field path."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import deployment_manifest

import npsim
from npsim.scenario.problems import ScenarioError


def scenario(*ports: dict[str, Any], spec: dict[str, Any] | None = None,
             extra: list[dict[str, Any]] | None = None, cluster: dict[str, Any] | None = None,
             seed: int = 1) -> dict[str, Any]:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": list(ports),
                        **(spec or {})}}
    return {
        "name": "validation",
        "cluster": {"nodes": [{"name": "node-1"}], **(cluster or {})},
        "manifests": [service, *(extra or []), deployment_manifest()],
        "workloads": {"web": {"serviceTime": {"dist": "constant", "value": "1ms"}}},
        "clients": [{"name": "c", "service": "web", "arrival": {"rate": "10/s"}}],
        "run": {"duration": "1s", "seed": seed},
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        npsim.scenario_from_dict(data)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def loads(data: dict[str, Any]) -> npsim.Scenario:
    return npsim.scenario_from_dict(data)


def test_fact_12_two_unnamed_ports_each_need_a_name() -> None:
    assert problems(scenario({"port": 80}, {"port": 81})) == [
        "manifests[0].spec.ports[0].name: Required value",
        "manifests[0].spec.ports[1].name: Required value"]
    loads(scenario({"port": 80}))


def test_fact_13_duplicate_port_name() -> None:
    assert problems(scenario({"name": "http", "port": 80}, {"name": "http", "port": 81})) == [
        'manifests[0].spec.ports[1].name: Duplicate value: "http"']


def test_port_name_must_be_a_dns_1123_label() -> None:
    assert problems(scenario({"name": "Http_1", "port": 80})) == [
        'manifests[0].spec.ports[0].name: Invalid value: "Http_1": a lowercase RFC 1123 '
        "label must consist of lower case alphanumeric characters or '-', and must start "
        "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
        "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]


@pytest.mark.parametrize("field", ["port", "targetPort"])
def test_port_numbers_are_inclusive_1_to_65535(field: str) -> None:
    port = {"port": 80, field: 70000}
    assert problems(scenario(port)) == [
        f"manifests[0].spec.ports[0].{field}: Invalid value: 70000: must be between 1 and "
        "65535, inclusive"]


def test_target_port_zero_defaults_to_port() -> None:
    """SetDefaults_Service: targetPort 0 (or "") means "same as port"; it is accepted."""
    sp = loads(scenario({"port": 8080, "targetPort": 0})).services["web"].ports[0]
    assert sp.target_port == 8080


@pytest.mark.parametrize(("name", "messages"), [
    ("a--b", ["must not contain consecutive hyphens"]),
    ("-web", ["must not begin or end with a hyphen"]),
    ("8080x_", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
    ("1234", ["must contain at least one letter (a-z)"]),
    ("a-very-long-port-name", ["must be no more than 15 characters"]),
])
def test_named_target_port_rules(name: str, messages: list[str]) -> None:
    assert problems(scenario({"port": 80, "targetPort": name})) == [
        f'manifests[0].spec.ports[0].targetPort: Invalid value: "{name}": {m}' for m in messages]


def test_duplicate_protocol_and_port() -> None:
    assert problems(scenario({"name": "a", "port": 80}, {"name": "b", "port": 80})) == [
        'manifests[0].spec.ports[1]: Duplicate value: core.ServicePort{Name:"", '
        'Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString'
        '{Type:0, IntVal:0, StrVal:""}, NodePort:0}']
    loads(scenario({"name": "a", "port": 80}, {"name": "b", "port": 80, "protocol": "UDP"}))


def test_fact_16_node_port_shared_across_protocols_not_within_one() -> None:
    ok = loads(scenario({"name": "dns-tcp", "port": 53, "nodePort": 30053},
                        {"name": "dns-udp", "port": 53, "protocol": "UDP", "nodePort": 30053}))
    from npsim.cluster.model import build_cluster

    assert [sp.node_port for sp in build_cluster(ok).service_ports] == [30053, 30053]
    assert problems(scenario({"name": "a", "port": 53, "nodePort": 30053},
                             {"name": "b", "port": 54, "nodePort": 30053})) == [
        "manifests[0].spec.ports[1].nodePort: Duplicate value: 30053"]


def test_fact_14_node_port_out_of_range() -> None:
    assert problems(scenario({"port": 80, "nodePort": 80})) == [
        "manifests[0].spec.ports[0].nodePort: Invalid value: 80: provided port is not in the "
        "valid range. The range of valid ports is 30000-32767"]


def test_the_range_is_configurable() -> None:
    custom = {"serviceNodePortRange": "20000-20999"}
    assert problems(scenario({"port": 80, "nodePort": 30080}, cluster=custom)) == [
        "manifests[0].spec.ports[0].nodePort: Invalid value: 30080: provided port is not in "
        "the valid range. The range of valid ports is 20000-20999"]
    from npsim.cluster.model import build_cluster

    auto = build_cluster(loads(scenario({"port": 80}, cluster=custom))).service_ports[0]
    assert 20031 <= auto.node_port <= 20999  # offset 999 // 32 = 31


def test_fact_15_port_already_allocated_by_another_service() -> None:
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
             "spec": {"type": "NodePort", "selector": {"app": "web"},
                      "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30080}]}}
    found = problems(scenario({"port": 80, "nodePort": 30080}, extra=[other]))
    assert found == ["manifests[1].spec.ports[0].nodePort: Invalid value: 30080: provided "
                     "port is already allocated (held by Service 'web')"]


def test_range_full_is_an_internal_error() -> None:
    more = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
             "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}}
            for i in range(2)]
    found = problems(scenario({"port": 80}, extra=more,
                              cluster={"serviceNodePortRange": "30000-30001"}))
    assert found == ["manifests[2].metadata.name: Service 's1': Internal error occurred: "
                     "failed to allocate a nodePort: range is full"]


def test_fact_17_local_policy_on_cluster_ip() -> None:
    found = problems(scenario({"port": 80}, spec={"type": "ClusterIP",
                                                  "externalTrafficPolicy": "Local"}))
    assert ('manifests[0].spec.externalTrafficPolicy: Invalid value: "Local": may only be set '
            "for externally-accessible services") in found


@pytest.mark.parametrize("policy", ["Local", "Cluster"])
def test_any_external_traffic_policy_on_cluster_ip_is_refused(policy: str) -> None:
    """validateServiceExternalTrafficPolicy: a Service that is not externally accessible
    (apiservice.ExternallyAccessible: no NodePort, LoadBalancer or externalIPs) may carry
    no externalTrafficPolicy at all, Cluster included; with externalIPs it may."""
    found = problems(scenario({"port": 80}, spec={"type": "ClusterIP",
                                                  "externalTrafficPolicy": policy}))
    assert (f'manifests[0].spec.externalTrafficPolicy: Invalid value: "{policy}": may only be '
            "set for externally-accessible services") in found
    with_ips = problems(scenario({"port": 80}, spec={
        "type": "ClusterIP", "externalTrafficPolicy": policy, "externalIPs": ["192.0.2.10"]}))
    assert not any("externalTrafficPolicy" in p for p in with_ips)


def test_fact_18_health_check_node_port() -> None:
    from npsim.cluster.model import build_cluster

    nodeport = build_cluster(loads(scenario({"port": 80}, spec={
        "externalTrafficPolicy": "Local"}))).service_ports[0]
    assert nodeport.health_check_node_port == 0
    lb = build_cluster(loads(scenario({"port": 80}, spec={
        "type": "LoadBalancer", "externalTrafficPolicy": "Local"}))).service_ports[0]
    assert 30086 <= lb.health_check_node_port <= 32767
    assert lb.health_check_node_port != lb.node_port
    asked = build_cluster(loads(scenario({"port": 80}, spec={
        "type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "healthCheckNodePort": 30010}))).service_ports[0]
    assert asked.health_check_node_port == 30010
    assert problems(scenario({"port": 80}, spec={"externalTrafficPolicy": "Local",
                                                 "healthCheckNodePort": 30010})) == [
        "manifests[0].spec.healthCheckNodePort: Invalid value: 30010: may only be set when "
        "`type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"]


def test_cluster_ip_none_on_a_node_port_service() -> None:
    assert problems(scenario({"port": 80}, spec={"clusterIP": "None"})) == [
        "manifests[0].spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' "
        "for NodePort services"]


@pytest.mark.parametrize(("timeout", "ok"), [(0, False), (86400, True), (86401, False)])
def test_fact_10_affinity_timeout(timeout: int, ok: bool) -> None:
    data = scenario({"port": 80}, spec={"sessionAffinity": "ClientIP", "sessionAffinityConfig":
                                        {"clientIP": {"timeoutSeconds": timeout}}})
    if ok:
        assert loads(data).services["web"].affinity_timeout == timeout
    else:
        assert problems(data) == [
            "manifests[0].spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: "
            f"{timeout}: must be greater than 0 and less than 86400"]


def test_fact_11_affinity_timeout_default() -> None:
    data = scenario({"port": 80}, spec={"sessionAffinity": "ClientIP"})
    assert loads(data).services["web"].affinity_timeout == 10800


def test_allocation_is_seeded() -> None:
    from npsim.cluster.model import build_cluster

    ports = {seed: build_cluster(loads(scenario({"port": 80}, seed=seed))).service_ports[0]
             .node_port for seed in (1, 1, 2, 3)}
    assert len(ports) == 3 and all(30086 <= p <= 32767 for p in ports.values())
