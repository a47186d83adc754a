"""Scenario files in, a validated :class:`Scenario` out, or every problem at once."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from npsim.dists import Empirical
from npsim.scenario.files import (
    MAX_MANIFEST_BYTES,
    MAX_SAMPLES_BYTES,
    MAX_SCENARIO_BYTES,
    FileAccess,
    FileRefused,
    read_text,
)
from npsim.scenario.manifests import (
    SERVICE_NAME_LABEL,
    Deployment,
    EndpointSlice,
    SelectorIndex,
    Service,
    add_lifecycle,
    check_node_ports,
    check_port_plan,
    parse_manifest,
    pick_port,
)
from npsim.scenario.problems import Problem, Problems, ScenarioError
from npsim.scenario.schema import ClientSpec, ClusterSpec, ScenarioSpec, WorkloadSpec
from npsim.scenario.yamlio import (
    MAX_DEPTH,
    Mark,
    MarkedDict,
    YamlSyntaxError,
    load_all,
    plain,
)

__all__ = ["Scenario", "load_scenario", "scenario_from_dict"]


class Scenario:
    """A validated scenario: the typed spec plus the Services and Deployments it names.

    Attributes of the spec are reachable directly (``scenario.run.duration = 120``);
    assignments are validated. Change what you like, then :func:`npsim.run` it. Each
    Scenario is independent: two can live in one notebook.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        services: dict[str, Service],
        deployments: dict[str, Deployment],
        base_dir: Path,
        source: str,
        warnings: list[Problem] | None = None,
    ) -> None:
        self.spec = spec
        self.services = services
        self.deployments = deployments
        self.base_dir = base_dir
        self.source = source
        self.warnings = warnings if warnings is not None else []
        self.tree: Any = None  # the marked YAML it came from (error marks for later checks)
        # a changed copy (--set, variants) is re-read from generated text: later checks
        # place their errors at the lines of the file the user wrote
        self.original_tree: Any = None
        self.network_policies: dict[str, Any] = {}  # NetworkPolicy manifests, by name
        from npsim.scenario.changes import check_assignments

        check_assignments(self)

    @property
    def marks(self) -> Any:
        """The YAML tree errors are placed in: the user's own file, also for a changed
        copy (``--set``, variants)."""
        return self.original_tree or self.tree

    def __getattr__(self, name: str) -> Any:
        if name in ScenarioSpec.model_fields:
            return getattr(self.__dict__["spec"], name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        """``scenario.run = {...}`` sets the spec's section, validated (not a stray
        attribute the run would never see)."""
        if name in ScenarioSpec.model_fields and "spec" in self.__dict__:
            setattr(self.spec, name, value)
        else:
            super().__setattr__(name, value)

    def __repr__(self) -> str:
        return (
            f"<Scenario {self.spec.name!r}: {len(self.spec.cluster.nodes)} nodes, "
            f"{len(self.services)} services, {len(self.deployments)} deployments, "
            f"{len(self.spec.clients)} client populations>"
        )

    def copy(self) -> Scenario:
        """A deep copy to vary without touching this one (what-if comparisons)."""
        return copy.deepcopy(self)

    def with_changes(self, changes: dict[str, Any]) -> Scenario:
        """A validated copy with ``changes`` applied: YAML key paths to YAML values,
        e.g. ``{"cluster.proxyMode": "ipvs", "deployments.nginx.replicas": 6}`` (the
        paths ``npsim run --set`` takes; see npsim/scenario/changes.py)."""
        from npsim.scenario.changes import with_changes

        return with_changes(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """The fully defaulted scenario, manifests inlined, units written out exactly."""
        data = self.spec.model_dump(mode="json", by_alias=True)
        if data.get("variants") is None:
            data.pop("variants", None)
        data["manifests"] = [svc_manifest(s) for s in self.services.values()] + [
            deployment_manifest(d) for d in self.deployments.values()
        ] + [policy.manifest for policy in self.network_policies.values()] + [
            sl.manifest() for s in self.services.values() for sl in s.endpoint_slices]
        # an event is one kind: leave out the kinds (and the until) it does not use
        data["events"] = [{k: v for k, v in e.items() if v is not None} for e in data["events"]]
        return data


def svc_manifest(svc: Service) -> dict[str, Any]:
    ports = []
    for port in svc.ports:
        entry: dict[str, Any] = {"protocol": port.protocol, "port": port.port,
                                 "targetPort": port.target_port}
        if port.name:
            entry = {"name": port.name, **entry}
        if port.node_port is not None:
            entry["nodePort"] = port.node_port
        ports.append(entry)
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": svc.name, "namespace": svc.namespace},
        "spec": {k: v for k, v in (
            ("type", svc.type), ("selector", dict(svc.selector)), ("ports", ports),
            ("externalTrafficPolicy", svc.external_traffic_policy),
            ("internalTrafficPolicy", svc.internal_traffic_policy),
            ("sessionAffinity", svc.session_affinity),
            ("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": svc.affinity_timeout}}
             if svc.session_affinity == "ClientIP" else None),
            ("trafficDistribution", svc.traffic_distribution),
            ("allocateLoadBalancerNodePorts", None if svc.allocate_lb_node_ports else False),
            ("healthCheckNodePort", svc.health_check_node_port)) if v is not None},
    }
    if svc.cluster_ip is not None:
        manifest["spec"]["clusterIP"] = svc.cluster_ip
    if svc.topology_mode is not None:
        manifest["metadata"]["annotations"] = {
            "service.kubernetes.io/topology-mode": svc.topology_mode}
    return manifest


def deployment_manifest(dep: Deployment) -> dict[str, Any]:
    ports = [{k: v for k, v in (("name", c.name), ("containerPort", c.container_port),
                                ("protocol", c.protocol)) if v is not None}
             for c in dep.container_ports]
    return add_lifecycle({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": dep.name, "namespace": dep.namespace},
        "spec": {
            "replicas": dep.replicas,
            "selector": {"matchLabels": dict(dep.match_labels or dep.pod_labels)},
            "template": {
                "metadata": {"labels": dict(dep.pod_labels)},
                "spec": {"containers": [{"name": dep.name, "ports": ports}]},
            },
        },
    }, dep)


def _validation_problems(exc: ValidationError, tree: Any, p: Problems) -> None:
    # the members of a union fail at the same place: one problem naming every type
    # ("Input should be a valid string or a valid dictionary"), not one line per member
    types: dict[tuple[Any, ...], list[str]] = {}
    messages: dict[tuple[Any, ...], list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(step for step in err["loc"] if not _is_union_tag(step))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see the scenario reference in README)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if msg.startswith("Input should be a valid "):
            types.setdefault(loc, []).append(msg[len("Input should be "):])
            messages.setdefault(loc, [])
        else:
            messages.setdefault(loc, []).append(msg)
    for loc, msgs in messages.items():
        if loc in types:
            msgs.insert(0, "Input should be " + " or ".join(dict.fromkeys(types[loc])))
        for msg in dict.fromkeys(msgs):
            p.at(tree, list(loc), msg)


def _is_union_tag(step: Any) -> bool:
    return isinstance(step, str) and (
        step in ("exponential", "constant", "lognormal", "uniform", "empirical")
        or step.startswith(("function-", "tagged-union", "str", "dict[", "int", "list[", "bool"))
        or step.startswith("literal[")
    )


def scenario_from_dict(data: Any, base_dir: Path | str = ".", source: str = "<dict>",
                       allow_outside_files: bool = False) -> Scenario:
    """Validate a scenario given as Python data (e.g. built in a notebook).

    Manifest and sample files it names are read from ``base_dir`` (and only from inside
    it unless ``allow_outside_files``)."""
    if not isinstance(data, MarkedDict):
        try:
            text = yaml.safe_dump(plain(data), sort_keys=False)
            docs = load_all(text, source)
        except YamlSyntaxError as exc:
            raise ScenarioError([Problem(exc.mark, exc.path, exc.problem)]) from None
        except yaml.YAMLError as exc:  # an object YAML cannot hold (a class instance)
            raise ScenarioError([Problem(None, source, "a scenario holds only YAML data "
                                         f"(mappings, lists, strings, numbers): {exc}")]) from None
        except RecursionError:
            raise ScenarioError([Problem(None, source, "nested more than "
                                         f"{MAX_DEPTH} levels deep")]) from None
        if not docs:
            raise ScenarioError([Problem(None, source, "a scenario is a mapping, got nothing")])
        data = docs[0]
    return _build(data, FileAccess(Path(base_dir), allow_outside_files), source)


def load_scenario(path: str | Path, allow_outside_files: bool = False) -> Scenario:
    """Read and validate a scenario file; raises :class:`ScenarioError` with every problem.

    Manifest and sample files must be regular files inside the scenario's folder unless
    ``allow_outside_files`` (``npsim run --allow-outside-files``)."""
    path = Path(path)
    try:
        text = read_text(path, "scenario file", MAX_SCENARIO_BYTES)
    except FileNotFoundError:
        raise ScenarioError([Problem(None, str(path), "no such scenario file")]) from None
    except FileRefused as exc:
        raise ScenarioError([Problem(None, "", str(exc))]) from None
    try:
        docs = load_all(text, str(path))
    except YamlSyntaxError as exc:
        where = exc.path or ("" if exc.mark else str(path))
        raise ScenarioError([Problem(exc.mark, where, exc.problem)]) from None
    if len(docs) != 1 or not isinstance(docs[0], dict):
        where = (docs[1] if len(docs) > 1 else docs[0] if docs else None)
        mark = getattr(where, "mark", None) or Mark(str(path), 1, 1)
        raise ScenarioError([Problem(mark, "(top level)",
                                     "a scenario file holds exactly one YAML mapping")])
    if not SCENARIO_KEYS & set(docs[0]):
        # e.g. `npsim validate /etc/shadow`: its unknown keys would print the file
        raise ScenarioError([Problem(docs[0].mark, "(top level)", "not an npsim scenario: "
                                     f"none of {', '.join(sorted(SCENARIO_KEYS))} is there "
                                     "(the file's keys are not shown)")])
    return _build(docs[0], FileAccess(path.parent, allow_outside_files), str(path))


SCENARIO_KEYS = {"name", "cluster", "manifests", "workloads", "clients", "run"}  # required


def _build(tree: MarkedDict, access: FileAccess, source: str) -> Scenario:
    p = Problems()
    spec: ScenarioSpec | None = None
    try:
        spec = ScenarioSpec.model_validate(tree, context={"yaml": True})
    except ValidationError as exc:
        _validation_problems(exc, tree, p)
    services: dict[str, Service] = {}
    deployments: dict[str, Deployment] = {}
    raw_manifests = tree.get("manifests") if isinstance(tree, dict) else None
    unresolved: _Unresolved = set()
    policies: dict[str, Any] = {}
    if isinstance(raw_manifests, list):
        unresolved = _load_manifests(tree, raw_manifests, access, p, services, deployments,
                                     policies)
    scenario = None
    base_dir = access.base_dir
    if spec is not None:
        spec = _resolve_files(spec, tree, access, p)
        scenario = Scenario(spec, services, deployments, base_dir, source, p.warnings)
        scenario.tree = tree
        scenario.network_policies = policies
        cross_check(scenario, tree, p, unresolved)
    else:
        partial = Scenario(None, services, deployments, base_dir, source)  # type: ignore[arg-type]
        _partial_check(tree, partial, p, unresolved)
    p.raise_if_any()
    assert scenario is not None
    return scenario


class _Everything:
    """Stands for the names in a manifest file that could not be read."""

    def __contains__(self, name: object) -> bool:
        return True


# names of Services/Deployments whose manifests were already reported as broken
_Unresolved = set[str] | _Everything


def _load_manifests(
    tree: MarkedDict,
    raw: list[Any],
    access: FileAccess,
    p: Problems,
    services: dict[str, Service],
    deployments: dict[str, Deployment],
    policies: dict[str, Any] | None = None,
) -> _Unresolved:
    """Parse every manifest into ``services``/``deployments``; return the names of those
    that failed (their problems are reported here, so references to them are not)."""
    unresolved: set[str] = set()
    unreadable = False
    slices: list[EndpointSlice] = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            path = access.path(item)
            try:
                docs = load_all(access.read(item, "manifest file", MAX_MANIFEST_BYTES), str(path))
            except FileNotFoundError:
                p.at(tree, ["manifests", i], f"manifest file not found: {path}")
                unreadable = True
                continue
            except FileRefused as exc:
                p.at(tree, ["manifests", i], str(exc))
                unreadable = True
                continue
            except YamlSyntaxError as exc:
                if exc.mark is not None:
                    p.errors.append(Problem(exc.mark, exc.path, exc.problem))
                else:
                    p.at(tree, ["manifests", i], str(exc))
                unreadable = True
                continue
            pairs = []
            for j, doc in enumerate(docs):
                if isinstance(doc, dict):
                    pairs.append((doc, f"{item}#{j}", ""))
                else:  # a file that is not a manifest: name it and the entry naming it
                    p.at(tree, ["manifests", i], f"{path}: document {j + 1} is not a "
                         "Kubernetes manifest (a mapping with apiVersion and kind)")
                    unreadable = True
        elif isinstance(item, dict):
            pairs = [(item, f"manifests[{i}]", f"manifests[{i}].")]
        else:  # neither a path nor a manifest: the schema reports it, at its line
            unreadable = True
            continue
        for doc, origin, prefix in pairs:
            n_errors = len(p.errors)
            if prefix:  # inline: locate against the scenario tree
                obj = parse_manifest(doc, p, prefix, origin)
            else:
                obj = parse_manifest(doc, p, "", origin)
            if obj is None:
                meta = doc.get("metadata") if isinstance(doc, dict) else None
                name = meta.get("name") if isinstance(meta, dict) else None
                # a broken manifest's name: references to it are not reported again;
                # an ignored kind (only a warning) defines nothing, so they are
                if isinstance(name, str) and len(p.errors) > n_errors:
                    unresolved.add(name)
                continue
            if isinstance(obj, EndpointSlice):
                slices.append(obj)  # its Service may come later in the manifests
                continue
            table: dict[str, Any] = (services if isinstance(obj, Service) else deployments
                                     if isinstance(obj, Deployment) else
                                     policies if policies is not None else {})
            if obj.name in table:
                p.at(doc, ["metadata", "name"],
                     f'Duplicate value: {type(obj).__name__} "{obj.name}" is defined twice '
                     f"(also in {table[obj.name].origin})", prefix)
            else:
                table[obj.name] = obj
    _own_slices(slices, services, p)
    return _Everything() if unreadable else unresolved


def _own_slices(slices: list[EndpointSlice], services: dict[str, Service],
                p: Problems) -> None:
    """Give each hand-made EndpointSlice to its Service (label kubernetes.io/service-name).

    Only a selector-less Service keeps its slices: for a Service with a selector the
    EndpointSlice controller owns the slices and rewrites them from the pods, so a slice
    written by hand there is ignored (with a warning)."""
    for sl in slices:
        svc = services.get(sl.service_name)
        if svc is None or svc.namespace != sl.namespace:
            known = ", ".join(sorted(services)) or "none"
            p.at(sl.doc, ["metadata", "labels", SERVICE_NAME_LABEL],
                 f"no Service named {sl.service_name!r} in namespace {sl.namespace!r} among "
                 f"the manifests (known: {known})", sl.prefix)
        elif svc.selector:
            p.warn(sl.doc, ["metadata", "labels", SERVICE_NAME_LABEL],
                   f"Service {svc.name!r} has a selector: the EndpointSlice controller "
                   "manages its slices from the pods; this hand-made slice is ignored",
                   sl.prefix)
        else:
            svc.endpoint_slices.append(sl)


def _check_explicit_pods(scenario: Scenario, nodes: set[str] | None, tree: Any,
                         p: Problems) -> None:
    """Hand-placed pods name known nodes and distinct addresses; every endpoint of a
    hand-made slice names a known node and the address of a hand-placed pod (the pod
    that serves it in the simulation)."""
    owner: dict[str, str] = {}
    for name, workload in scenario.spec.workloads.items():
        for i, pod in enumerate(workload.pods or []):
            if nodes is not None and pod.node not in nodes:
                p.at(tree, ["workloads", name, "pods", i, "node"],
                     f"unknown node {pod.node!r}")
            if pod.ip in owner and owner[pod.ip] != name:
                p.at(tree, ["workloads", name, "pods", i, "ip"],
                     f"address {pod.ip} is also a pod of workload {owner[pod.ip]!r}")
            owner.setdefault(pod.ip, name)
    for svc in scenario.services.values():
        for sl in svc.endpoint_slices:
            for ep in sl.endpoints:
                at = ["endpoints", ep.index]
                if ep.node_name is not None and nodes is not None and ep.node_name not in nodes:
                    p.at(sl.doc, [*at, "nodeName"],
                         f"unknown node {ep.node_name!r}: the slice's endpoint must run on "
                         "a node of cluster.nodes", sl.prefix)
                elif ep.address not in owner:
                    p.at(sl.doc, [*at, "addresses", 0],
                         f"no pod has address {ep.address}: place the pod that serves it "
                         "under workloads.NAME.pods ({node: NODE, ip: " + ep.address + "})",
                         sl.prefix)


def _resolve_files(spec: ScenarioSpec, tree: Any, access: FileAccess,
                   p: Problems) -> ScenarioSpec:
    """Read empirical sample files now, so a missing file is a load-time error.

    Every distribution in the spec is visited (service, think and link times, rtt), not
    only service times: an unread file would leave an empirical distribution empty.
    """

    def visit(model: BaseModel, loc: list[Any]) -> None:
        for name, info in type(model).model_fields.items():
            value = getattr(model, name)
            at = [*loc, info.alias or name]
            if isinstance(value, Empirical):
                if value.file:
                    try:
                        setattr(model, name, value.resolved(
                            access.base_dir,
                            lambda f: access.read(f, "samples file", MAX_SAMPLES_BYTES)))
                    except FileNotFoundError:
                        p.at(tree, [*at, "file"], "samples file not found: "
                             f"{(access.base_dir / value.file).resolve()}")
                    except (OSError, ValueError) as exc:
                        p.at(tree, [*at, "file"], str(exc))
            elif isinstance(value, BaseModel):
                visit(value, at)
            elif isinstance(value, list | tuple | dict):
                items = value.items() if isinstance(value, dict) else enumerate(value)
                for key, item in items:
                    if isinstance(item, BaseModel):
                        visit(item, [*at, key])

    visit(spec, [])
    return spec


def cross_check(
    scenario: Scenario, tree: Any, p: Problems, unresolved: _Unresolved | None = None
) -> None:
    """Checks across sections: names that must refer to something, capacity warnings.

    Names in ``unresolved`` belong to manifests already reported as broken; references
    to them are not reported a second time.
    """
    spec = scenario.spec
    _cross_check(scenario, [n.name for n in spec.cluster.nodes], dict(spec.workloads),
                 list(enumerate(spec.clients)), tree, p, unresolved or set())
    _check_events(scenario, tree, p)
    _check_explicit_pods(scenario, {n.name for n in spec.cluster.nodes}, tree, p)
    _check_front_ends(scenario, tree, p)
    if not p.errors:
        _utilisation_warnings(scenario, tree, p)


def _check_events(scenario: Scenario, tree: Any, p: Problems) -> None:
    """Every event names something that exists: a Deployment, a node, or a pod that is
    there from the start (``<deployment>-<ordinal>``)."""
    nodes = [n.name for n in scenario.spec.cluster.nodes]
    for i, event in enumerate(scenario.spec.events):
        kind, target = event.kind, event.target
        at = ["events", i, to_camel(kind)]
        if kind in ("scale", "rollout") and target.deployment not in scenario.deployments:
            known = ", ".join(sorted(scenario.deployments)) or "none"
            p.at(tree, [*at, "deployment"],
                 f"no Deployment named {target.deployment!r} (known: {known})")
        elif kind.startswith(("node_", "kube")) and target.node not in nodes:
            p.at(tree, [*at, "node"], f"unknown node {target.node!r} (nodes: "
                 f"{', '.join(nodes)})")
        elif kind.startswith("pod_") and not _pod_at_start(scenario, target.pod):
            pods = [f"{name}-0..{dep.replicas - 1}" if dep.replicas > 1 else f"{name}-0"
                    for name, dep in scenario.deployments.items() if dep.replicas]
            p.at(tree, [*at, "pod"], f"no pod named {target.pod!r} at the start of the run "
                 f"(pods: {', '.join(pods) or 'none'})")


def _pod_at_start(scenario: Scenario, pod: str) -> bool:
    """Whether ``<deployment>-<ordinal>`` names a pod there at the start (no list of
    every pod: a Deployment may ask for a billion replicas before the limits refuse it)."""
    name, _, ordinal = pod.rpartition("-")
    dep = scenario.deployments.get(name)
    return (dep is not None and ordinal.isdigit() and str(int(ordinal)) == ordinal
            and int(ordinal) < dep.replicas)


def _check_front_ends(scenario: Scenario, tree: Any, p: Problems) -> None:
    """A balancer checking the healthCheckNodePort needs a Service that has one: the API
    server allocates it only for type LoadBalancer with externalTrafficPolicy Local
    (k8s pkg/registry/core/service/storage/alloc.go: ``needsHCNodePort``)."""
    for i, client in enumerate(scenario.spec.clients):
        hc = client.balancer.health_check if client.balancer is not None else None
        svc = scenario.services.get(client.service)
        if hc is None or hc.port != "healthCheckNodePort" or svc is None:
            continue
        if svc.type != "LoadBalancer" or svc.external_traffic_policy != "Local":
            p.at(tree, ["clients", i, "balancer", "healthCheck", "port"],
                 f"Service {svc.name!r} has no healthCheckNodePort (only type LoadBalancer "
                 f"with externalTrafficPolicy Local gets one; it is type {svc.type}, "
                 f"policy {svc.external_traffic_policy or 'Cluster'}): check port nodePort")


def _partial_check(tree: Any, scenario: Scenario, p: Problems, unresolved: _Unresolved) -> None:
    """Cross-checks on the sections that did validate, when others did not, so that one
    typo does not hide every reference error (all problems are reported at once)."""
    if not isinstance(tree, dict):
        return
    ctx = {"yaml": True}

    def valid(model: type, value: Any) -> Any:
        try:
            return model.model_validate(value, context=ctx)
        except ValidationError:
            return None

    cluster = valid(ClusterSpec, tree.get("cluster"))
    nodes = [n.name for n in cluster.nodes] if cluster is not None else None
    raw_workloads = tree.get("workloads")
    workloads = ({name: valid(WorkloadSpec, w) for name, w in raw_workloads.items()}
                 if isinstance(raw_workloads, dict) else {})
    raw_clients = tree.get("clients")
    clients = ([(i, c) for i, c in enumerate(valid(ClientSpec, c) for c in raw_clients)
                if c is not None] if isinstance(raw_clients, list) else [])
    _cross_check(scenario, nodes, workloads, clients, tree, p, unresolved)


def _cross_check(
    scenario: Scenario,
    node_names: list[str] | None,
    workloads: dict[str, WorkloadSpec | None],
    clients: list[tuple[int, ClientSpec]],
    tree: Any,
    p: Problems,
    unresolved: _Unresolved,
) -> None:
    nodes = set(node_names) if node_names is not None else None
    for name, workload in workloads.items():
        dep = scenario.deployments.get(name)
        if dep is None:
            if name in unresolved or workload is not None and workload.pods is not None:
                continue  # reported already, or hand-placed pods without a Deployment
            known = ", ".join(sorted(scenario.deployments)) or "none"
            p.at(tree, ["workloads", name],
                 f"no Deployment named {name!r} among the manifests (known: {known})")
            continue
        if workload is not None and isinstance(workload.placement, dict):
            for node in workload.placement:
                if nodes is not None and node not in nodes:
                    p.at(tree, ["workloads", name, "placement", node],
                         f"unknown node {node!r} (nodes: {', '.join(sorted(nodes))})")
            total = sum(workload.placement.values())
            if total != dep.replicas:
                p.at(tree, ["workloads", name, "placement"],
                     f"placement puts {total} pods but Deployment {name!r} has replicas: "
                     f"{dep.replicas}")
    for name in scenario.deployments:
        if name not in workloads:
            p.at(tree, ["workloads"],
                 f"Deployment {name!r} has no workload entry (workers, serviceTime)")
    for i, client in clients:
        svc = scenario.services.get(client.service)
        if svc is None:
            if client.service in unresolved:
                continue
            known = ", ".join(sorted(scenario.services)) or "none"
            p.at(tree, ["clients", i, "service"],
                 f"no Service named {client.service!r} among the manifests (known: {known})")
        elif svc.type == "ClusterIP" and client.target == "nodePort":
            p.at(tree, ["clients", i, "service"],
                 f"Service {svc.name!r} is type ClusterIP: it has no NodePort to reach")
        elif pick_port(svc, client.port) is None:
            names = ", ".join(repr(x.name or x.port) for x in svc.ports)
            p.at(tree, ["clients", i, "port"],
                 f"Service {svc.name!r} has no port {client.port!r} (ports: {names})")
        if nodes is not None and client.entry.node is not None and client.entry.node not in nodes:
            p.at(tree, ["clients", i, "entry", "node"], f"unknown node {client.entry.node!r}")
        if nodes is not None and client.source is not None and client.source.node not in nodes:
            p.at(tree, ["clients", i, "source", client.source.kind],
                 f"unknown node {client.source.node!r}")
    check_node_ports(scenario, tree, p)
    check_port_plan(scenario, tree, p)
    index = SelectorIndex(scenario.deployments.values())
    targeted = {c.service for _, c in clients}
    events = scenario.spec.events if scenario.spec is not None else []  # partial check
    scaled = {e.scale.deployment for e in events
              if getattr(e, "scale", None) is not None and e.scale.replicas > 0}
    for svc in scenario.services.values():
        if svc.name not in targeted or svc.endpoint_slices:
            continue
        selected = index.selected(svc.selector)
        if not selected:
            p.warn(tree, ["manifests"],
                   f"Service {svc.name!r} selects no pod of any Deployment: every connection "
                   "to it will be refused (no_endpoints)")
        elif not any(d.replicas or d.name in scaled for d in selected):
            p.warn(tree, ["manifests"],
                   f"Service {svc.name!r} selects only Deployments with replicas: 0 and no "
                   "scale event gives them pods: every connection to it will be refused "
                   "(no_endpoints)")
    seen: set[str] = set()
    for i, client in clients:
        if client.name in seen:
            p.at(tree, ["clients", i, "name"], f'Duplicate value: "{client.name}"')
        seen.add(client.name)


def revalidate(scenario: Scenario) -> None:
    """Check a scenario again after it was changed in Python (notebooks)."""
    p = Problems()
    try:
        ScenarioSpec.model_validate(scenario.spec.model_dump(by_alias=True))
    except ValidationError as exc:
        _validation_problems(exc, None, p)
    if not p.errors:
        cross_check(scenario, None, p)
    p.raise_if_any()


def _utilisation_warnings(scenario: Scenario, tree: Any, p: Problems) -> None:
    """Warn before running a pod at utilisation >= 1 (random spread assumed)."""
    from npsim.scenario.capacity import offered_utilisation

    for deployment, rho in offered_utilisation(scenario).items():
        if rho >= 1:
            load = f"{rho:.2f}" if rho < 1e6 else f"{rho:.3g}"  # never 300 digits
            p.warn(tree, ["workloads", deployment],
                   f"offered load is {load} per pod (>= 1): queues will grow without bound "
                   "and latency will depend on the run length")
