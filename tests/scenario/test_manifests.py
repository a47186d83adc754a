"""Kubernetes Service and Deployment manifests, read as Kubernetes reads them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from npsim.cli import main
from npsim.cluster.model import build_cluster
from npsim.scenario.loader import load_scenario, scenario_from_dict
from npsim.scenario.objects import selector_matches
from npsim.scenario.problems import ScenarioError
from npsim.scenario.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]

# The tutorial's Service, copied unchanged (section 2.1 of the NodePort tutorial),
# Chinese comments included.
TUTORIAL_SERVICE = """\
# nginx-nodeport.yaml
apiVersion: v1
kind: Service
metadata:
  name: nginx-nodeport
  labels:
    app: nginx
spec:
  type: NodePort          # 指定服务类型
  ports:
  - port: 80             # Service端口
    targetPort: 80       # Pod端口
    nodePort: 30080      # Node端口（可选，系统自动分配）
  selector:
    app: nginx           # 选择标签匹配的Pod
"""

NGINX_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx
  labels:
    app: nginx
  annotations:
    team: web
spec:
  replicas: 4
  strategy:
    type: RollingUpdate
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        imagePullPolicy: IfNotPresent
        resources:
          requests: {cpu: 100m, memory: 64Mi}
        ports:
        - containerPort: 80
"""


def deployment(name: str, replicas: int, labels: str, ports: str) -> str:
    """A Deployment manifest; ``labels`` and ``ports`` are YAML flow text."""
    return textwrap.dedent(f"""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {name}
        spec:
          replicas: {replicas}
          selector:
            matchLabels: {{app: web}}
          template:
            metadata:
              labels: {labels}
            spec:
              containers:
              - name: {name}
                image: example/{name}:1
                ports: {ports}
        """)


def service(name: str, selector: str, target_port: str, node_port: int) -> str:
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata:
          name: {name}
        spec:
          type: NodePort
          selector: {selector}
          ports:
          - port: 80
            targetPort: {target_port}
            nodePort: {node_port}
        """)


def write_scenario(folder: Path, manifests: list[str], workloads: list[str],
                   service_name: str, rate: str = "100/s") -> Path:
    """A two-node scenario file in ``folder`` naming ``manifests`` (paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = "\n".join(f"  - {m}" for m in manifests)
    work = "\n".join(f"  {w}: {{workers: 2, serviceTime: 1ms}}" for w in workloads)
    path = folder / "scenario.yaml"
    path.write_text(
        "name: manifests-test\n"
        "cluster:\n"
        "  nodes:\n"
        "    - {name: node-1, zone: zone-a}\n"
        "    - {name: node-2, zone: zone-b}\n"
        f"manifests:\n{listed}\n"
        f"workloads:\n{work}\n"
        "clients:\n"
        "  - name: users\n"
        f"    service: {service_name}\n"
        f"    arrival: {{rate: {rate}}}\n"
        "run:\n"
        "  duration: 2s\n",
        encoding="utf-8",
    )
    return path


def endpoints(scenario: Scenario, service_name: str) -> list[tuple[str, int]]:
    """(pod name, target port) of every endpoint of the Service's first port."""
    cluster = build_cluster(scenario)
    pods = {p.index: p.name for p in cluster.pods}
    (sp,) = [sp for sp in cluster.service_ports if sp.service.name == service_name]
    return sorted((pods[e.pod], e.port) for e in sp.endpoints)


# --- the tutorial Service ---------------------------------------------------------------


def test_tutorial_service_loads_unchanged(tmp_path: Path) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "nginx-nodeport.yaml").write_text(TUTORIAL_SERVICE, "utf-8")
    (tmp_path / "manifests" / "nginx.yaml").write_text(NGINX_DEPLOYMENT, "utf-8")
    path = write_scenario(tmp_path, ["manifests/nginx-nodeport.yaml", "manifests/nginx.yaml"],
                          ["nginx"], "nginx-nodeport")
    scenario = load_scenario(path)
    assert scenario.warnings == []  # labels, annotations, image, resources: accepted quietly
    svc = scenario.services["nginx-nodeport"]
    assert (svc.type, svc.namespace, svc.selector) == ("NodePort", "default", {"app": "nginx"})
    assert svc.external_traffic_policy == "Cluster"
    (port,) = svc.ports
    assert (port.name, port.protocol, port.port, port.target_port, port.node_port) == (
        "", "TCP", 80, 80, 30080)
    cluster = build_cluster(scenario)
    (sp,) = cluster.service_ports
    assert sp.node_port == 30080
    assert sp.name == "default/nginx-nodeport:"
    assert len(sp.endpoints) == 4
    assert {e.port for e in sp.endpoints} == {80}


def test_tutorial_service_inline() -> None:
    data = {
        "name": "inline",
        "cluster": {"nodes": [{"name": "node-1"}]},
        "manifests": [yaml.safe_load(TUTORIAL_SERVICE), yaml.safe_load(NGINX_DEPLOYMENT)],
        "workloads": {"nginx": {"serviceTime": "1ms"}},
        "clients": [{"name": "u", "service": "nginx-nodeport", "arrival": {"rate": "10/s"}}],
        "run": {"duration": "1s"},
    }
    scenario = scenario_from_dict(data)
    assert scenario.warnings == []
    assert scenario.services["nginx-nodeport"].ports[0].node_port == 30080


def test_quickstart_uses_the_tutorial_service_verbatim() -> None:
    shipped = (ROOT / "scenarios" / "manifests" / "nginx.yaml").read_text("utf-8")
    body = TUTORIAL_SERVICE.split("\n", 1)[1]  # without the file-name comment
    assert body in shipped
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    assert scenario.warnings == []
    assert set(scenario.services) == {"nginx-nodeport"}


# --- named target ports and selectors ---------------------------------------------------


def test_named_target_port_resolves_per_pod(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("---\n".join([
        service("web", "{app: web}", "http", 30080),
        deployment("web", 2, "{app: web, tier: front}",
                   "[{name: metrics, containerPort: 9090}, {name: http, containerPort: 8080}]"),
        # selected by the Service too, but has no port named http: not an endpoint
        deployment("legacy", 1, "{app: web}", "[{containerPort: 80}]"),
    ]), "utf-8")
    scenario = load_scenario(write_scenario(tmp_path, ["app.yaml"], ["web", "legacy"], "web"))
    assert scenario.services["web"].ports[0].target_port == "http"
    assert endpoints(scenario, "web") == [("web-0", 8080), ("web-1", 8080)]
    cluster = build_cluster(scenario)
    assert "legacy-0" in {p.name for p in cluster.pods}


def test_numeric_target_port_selects_every_matching_pod(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("---\n".join([
        service("web", "{app: web}", "8080", 30080),
        deployment("web", 2, "{app: web}", "[{name: http, containerPort: 8080}]"),
        deployment("legacy", 1, "{app: web}", "[{containerPort: 80}]"),
    ]), "utf-8")
    scenario = load_scenario(write_scenario(tmp_path, ["app.yaml"], ["web", "legacy"], "web"))
    # a number is used as is, as Kubernetes does, whatever the container declares
    assert endpoints(scenario, "web") == [("legacy-0", 8080), ("web-0", 8080), ("web-1", 8080)]


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({"app": "web"}, {"app": "web"}, True),
        ({"app": "web"}, {"app": "web", "tier": "front", "version": "v2"}, True),  # subset
        ({"app": "web", "tier": "front"}, {"app": "web", "tier": "front"}, True),
        ({"app": "web", "tier": "back"}, {"app": "web", "tier": "front"}, False),
        ({"app": "web", "tier": "front"}, {"app": "web"}, False),  # every pair must be there
        ({"app": "web"}, {"app": "Web"}, False),  # values are case-sensitive
        ({"app": "web"}, {}, False),
        ({}, {"app": "web"}, False),  # no selector: Kubernetes manages no endpoints
    ],
)
def test_selector_matches(selector: dict[str, str], labels: dict[str, str],
                          selected: bool) -> None:
    assert selector_matches(selector, labels) is selected


def test_selector_subset_in_a_cluster(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text("---\n".join([
        service("web", "{app: web}", "80", 30080),
        service("web-back", "{app: web, tier: back}", "80", 30081),
        deployment("web", 2, "{app: web, tier: front}", "[{containerPort: 80}]"),
    ]), "utf-8")
    scenario = load_scenario(write_scenario(tmp_path, ["app.yaml"], ["web"], "web"))
    assert endpoints(scenario, "web") == [("web-0", 80), ("web-1", 80)]
    assert endpoints(scenario, "web-back") == []


# --- files ------------------------------------------------------------------------------


def test_multi_document_file_relative_to_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "scenarios" / "manifests").mkdir(parents=True)
    (project / "common").mkdir()
    (project / "scenarios" / "manifests" / "app.yaml").write_text(
        "# two documents in one file, as kubectl apply -f takes them\n---\n"
        + service("web", "{app: web}", "http", 30080)
        + "---\n"
        + deployment("web", 3, "{app: web}", "[{name: http, containerPort: 8080}]")
        + "---\n",  # a trailing empty document is fine
        "utf-8",
    )
    (project / "common" / "admin.yaml").write_text(
        service("web-admin", "{app: web}", "8080", 30090), "utf-8")
    path = write_scenario(project / "scenarios",
                          ["manifests/app.yaml", "../common/admin.yaml"], ["web"], "web")
    monkeypatch.chdir(tmp_path)  # paths are relative to the scenario, not the cwd
    # ../common is outside the scenario's folder: read only when the user allows it
    with pytest.raises(ScenarioError, match="outside the scenario's folder"):
        load_scenario(Path("project/scenarios/scenario.yaml"))
    scenario = load_scenario(Path("project/scenarios/scenario.yaml"), allow_outside_files=True)
    assert path.exists()
    assert set(scenario.services) == {"web", "web-admin"}
    assert scenario.services["web"].origin == "manifests/app.yaml#0"
    assert scenario.deployments["web"].origin == "manifests/app.yaml#1"
    assert scenario.services["web-admin"].origin == "../common/admin.yaml#0"
    assert scenario.deployments["web"].replicas == 3
    assert [port for _, port in endpoints(scenario, "web")] == [8080, 8080, 8080]


# --- unmodelled fields warn -------------------------------------------------------------

UNMODELLED = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations: {owner: team-a}
spec:
  type: NodePort
  sessionAffinity: ClientIP
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - port: 80
    targetPort: http
    nodePort: 30080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [front]}
  template:
    metadata:
      labels: {app: web, tier: front}
    spec:
      containers:
      - name: web
        image: example/web:1
        startupProbe:
          httpGet: {path: /healthz, port: http}
        ports:
        - {name: http, containerPort: 8080}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  key: value
"""


def test_unmodelled_fields_warn_and_do_not_fail(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(UNMODELLED, "utf-8")
    scenario = load_scenario(write_scenario(tmp_path, ["app.yaml"], ["web"], "web"))
    got = {(w.mark.line, w.path): w.message for w in scenario.warnings}
    assert all(w.mark.file == str(tmp_path / "app.yaml") for w in scenario.warnings)
    assert got == {
        (24, "spec.selector.matchExpressions"):
            "matchExpressions are not checked by npsim; only matchLabels",
        (33, "spec.template.spec.containers[0].startupProbe"):
            "not modelled by npsim; ignored",
        (39, "kind"): "kind 'ConfigMap' is not modelled by npsim; ignored",
    }
    assert endpoints(scenario, "web") == [("web-0", 8080), ("web-1", 8080)]


def test_cli_validate_prints_warnings_and_succeeds(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(UNMODELLED, "utf-8")
    path = write_scenario(tmp_path, ["app.yaml"], ["web"], "web")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert (f"warning: {tmp_path / 'app.yaml'}:33:9: spec.template.spec.containers[0]."
            "startupProbe: not modelled") in result.output
    assert "ok - 2 nodes, 1 services, 1 deployments, 1 client populations, 3 warnings" in (
        result.output)


# --- manifest errors --------------------------------------------------------------------


def _problems(tmp_path: Path, manifest: str, workloads: list[str],
              service_name: str = "web") -> list[tuple[int, str, str]]:
    (tmp_path / "app.yaml").write_text(manifest, "utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(tmp_path, ["app.yaml"], workloads, service_name))
    return [(p.mark.line, p.path, p.message) for p in info.value.problems if p.mark]


def test_deployment_selector_must_match_template_labels(tmp_path: Path) -> None:
    manifest = service("web", "{app: web}", "80", 30080) + "---\n" + deployment(
        "web", 2, "{app: frontend}", "[{containerPort: 80}]")
    # one problem: the Deployment's workload and the client's Service are not blamed too
    assert _problems(tmp_path, manifest, ["web"]) == [
        (23, "spec.template.metadata.labels",
         "Invalid value: `selector` does not match template `labels`"),
    ]


def test_apps_v1_deployment_needs_a_selector(tmp_path: Path) -> None:
    manifest = service("web", "{app: web}", "80", 30080) + "---\n" + deployment(
        "web", 2, "{app: web}", "[{containerPort: 80}]").replace(
        "  selector:\n    matchLabels: {app: web}\n", "")
    assert _problems(tmp_path, manifest, ["web"]) == [(17, "spec.selector", "Required value")]


def test_node_port_on_a_cluster_ip_service_is_forbidden(tmp_path: Path) -> None:
    manifest = service("web", "{app: web}", "80", 30080).replace(
        "type: NodePort", "type: ClusterIP") + "---\n" + deployment(
        "web", 2, "{app: web}", "[{containerPort: 80}]")
    assert _problems(tmp_path, manifest, ["web"]) == [
        (11, "spec.ports[0].nodePort", "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ]


def test_a_service_defined_twice(tmp_path: Path) -> None:
    manifest = "---\n".join([
        service("web", "{app: web}", "80", 30080),
        service("web", "{app: web}", "80", 30081),
        deployment("web", 2, "{app: web}", "[{containerPort: 80}]"),
    ])
    ((line, path, message),) = _problems(tmp_path, manifest, ["web"])
    assert (line, path) == (16, "metadata.name")
    assert message == 'Duplicate value: Service "web" is defined twice (also in app.yaml#0)'


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        ("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  name: web2\n",
         5, "metadata.name", "duplicate key 'name' (first at line 4)"),
        ("apiVersion: v1\nkind: Service\nspec:\n  ports: [{port: 80}\n",
         5, "", "YAML syntax error: expected ',' or ']'"),
    ],
)
def test_yaml_errors_in_a_manifest_file_point_into_that_file(
    tmp_path: Path, text: str, line: int, path: str, message: str
) -> None:
    (tmp_path / "app.yaml").write_text(text, "utf-8")
    with pytest.raises(ScenarioError) as info:
        load_scenario(write_scenario(tmp_path, ["app.yaml"], ["web"], "web"))
    # one problem: what the unreadable file might have defined is not reported missing
    (problem,) = info.value.problems
    assert problem.mark is not None
    assert (problem.mark.file, problem.mark.line) == (str(tmp_path / "app.yaml"), line)
    assert problem.path == path
    assert problem.message.startswith(message)
