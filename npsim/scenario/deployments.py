"""Deployment (and StatefulSet) manifests (apps/v1), read and written as Kubernetes does:
replicas, pod labels, container ports, and the lifecycle (probes, preStop, grace period,
rolling-update strategy) with Kubernetes' defaults for what is left out."""

from __future__ import annotations

import math
import re
from typing import Any

from npsim.scenario.expect import expect, label_map
from npsim.scenario.kinds import PROBE_NUMBERS
from npsim.scenario.objects import ContainerPort, Deployment, selector_matches
from npsim.scenario.problems import Problems
from npsim.scenario.scheduling import add_scheduling, parse_scheduling
from npsim.scenario.yamlio import MarkedDict


def parse_deployment(doc: MarkedDict, p: Problems, pre: str, origin: str) -> Deployment | None:
    n_errors = len(p.errors)
    name = expect(doc, ["metadata", "name"], str, "the Deployment name", p, pre)
    namespace = doc.get("metadata", {}).get("namespace", "default")
    spec = expect(doc, ["spec"], dict, "a spec", p, pre) or {}
    replicas = spec.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        p.at(doc, ["spec", "replicas"], f"expected a whole number of pods, got {replicas!r}", pre)
    elif replicas < 0:
        p.at(doc, ["spec", "replicas"],
             f"Invalid value: {replicas}: must be greater than or equal to 0", pre)
    pod_labels = label_map(doc, ["spec", "template", "metadata", "labels"], p, pre)
    match_labels: dict[str, str] = {}
    if "selector" in spec:
        match_labels = label_map(doc, ["spec", "selector", "matchLabels"], p, pre)
        if "matchExpressions" in (spec.get("selector") or {}):
            p.warn(doc, ["spec", "selector", "matchExpressions"],
                   "matchExpressions are not checked by npsim; only matchLabels", pre)
        if match_labels and not selector_matches(match_labels, pod_labels):
            p.at(doc, ["spec", "template", "metadata", "labels"],
                 "Invalid value: `selector` does not match template `labels`", pre)
    elif str(doc.get("apiVersion", "")).startswith("apps/"):
        p.at(doc, ["spec", "selector"], "Required value", pre)
    containers = expect(doc, ["spec", "template", "spec", "containers"], list,
                         "a list of containers", p, pre) or []
    cports: list[ContainerPort] = []
    for ci, container in enumerate(containers):
        for pi, raw in enumerate((container or {}).get("ports", []) or []):
            at = ["spec", "template", "spec", "containers", ci, "ports", pi]
            number = expect(doc, [*at, "containerPort"], int, "a container port number", p, pre)
            if number is not None:
                cports.append(ContainerPort(raw.get("name"), number, raw.get("protocol", "TCP")))
    lifecycle = _pod_lifecycle(doc, spec, containers, p, pre)
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    lifecycle.update(parse_scheduling(doc, pod_spec if isinstance(pod_spec, dict) else {},
                                      containers, p, pre))
    if len(p.errors) > n_errors or name is None:
        return None
    return Deployment(str(name), str(namespace), int(replicas), pod_labels, tuple(cports),
                      origin, match_labels, **lifecycle)


INT32_MAX = 2**31 - 1


def _pod_lifecycle(doc: MarkedDict, spec: dict, containers: list, p: Problems,
                   pre: str) -> dict[str, Any]:
    """Probes, preStop and grace period of the (first serving) container, and the
    rolling-update strategy, with Kubernetes' defaults for what is left out."""
    out: dict[str, Any] = {}
    tmpl = ["spec", "template", "spec"]
    for ci, container in enumerate(containers):
        if not isinstance(container, dict):
            continue
        for key, attr in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
            raw = container.get(key)
            if raw is None or attr in out:
                continue
            values: dict[str, Any] = {}
            for field_name, (name, low) in PROBE_NUMBERS.items():
                if field_name not in (raw or {}):
                    continue
                at = [*tmpl, "containers", ci, key, field_name]
                value = expect(doc, at, int, "a whole number", p, pre)
                if value is not None and value < low:
                    p.at(doc, at, f"Invalid value: {value}: must be greater than or equal "
                         f"to {low}", pre)
                elif value is not None and value > INT32_MAX:  # the API's int32 fields
                    p.at(doc, at, f"Invalid value: {value}: must be at most {INT32_MAX} "
                         "(a probe's numbers are int32 in the Kubernetes API)", pre)
                elif value is not None:
                    values[name] = value
            if key == "readinessProbe" and "termination_grace" in values:
                p.at(doc, [*tmpl, "containers", ci, key, "terminationGracePeriodSeconds"],
                     "Invalid value: must not be set for readinessProbes", pre)
                del values["termination_grace"]
            if key == "livenessProbe" and values.get("success_threshold", 1) != 1:
                p.at(doc, [*tmpl, "containers", ci, key, "successThreshold"],
                     "Invalid value: must be 1", pre)
            out[attr] = values
        hook = ((container.get("lifecycle") or {}).get("preStop") or {})
        if hook and "pre_stop" not in out:
            out["pre_stop"] = _pre_stop_seconds(doc, hook, [*tmpl, "containers", ci], p, pre)
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    if "terminationGracePeriodSeconds" in pod_spec:
        at = [*tmpl, "terminationGracePeriodSeconds"]
        grace = expect(doc, at, int, "a whole number of seconds", p, pre)
        if grace is not None and grace < 0:
            p.at(doc, at, f"Invalid value: {grace}: must be greater than or equal to 0", pre)
        elif grace is not None:
            out["grace_period"] = float(grace)
    rolling = ((spec.get("strategy") or {}).get("rollingUpdate") or {})
    for key, attr in (("maxSurge", "max_surge"), ("maxUnavailable", "max_unavailable")):
        if key in rolling:
            value = rolling[key]
            at = ["spec", "strategy", "rollingUpdate", key]
            if isinstance(value, bool) or not (
                    isinstance(value, int) and value >= 0
                    or isinstance(value, str) and re.fullmatch(r"[0-9]+%", value)):
                p.at(doc, at, f"Invalid value: {value!r}: must be a non-negative integer "
                     "or a percentage (e.g. 25%)", pre)
            else:
                out[attr] = value
    return out


def _pre_stop_seconds(doc: MarkedDict, hook: dict, at: list[Any], p: Problems,
                      pre: str) -> float:
    """How long a preStop hook keeps the pod from getting SIGTERM: ``sleep.seconds``, or an
    ``exec`` of ``sleep N`` (the usual ``["sh", "-c", "sleep 15"]``)."""
    if "sleep" in hook:
        where = [*at, "lifecycle", "preStop", "sleep", "seconds"]
        seconds = expect(doc, where, int, "a whole number of seconds", p, pre)
        if seconds is not None and seconds < 0:  # was a negative delay in the run
            p.at(doc, where, f"Invalid value: {seconds}: must be non-negative", pre)
            return 0.0
        return float(seconds or 0)
    command = (hook.get("exec") or {}).get("command") or []
    match = re.search(r"\bsleep\s+([0-9]+(?:\.[0-9]+)?)\b",
                      " ".join(str(c) for c in command))
    if match is None:
        p.warn(doc, [*at, "lifecycle", "preStop"],
               "npsim cannot tell how long this preStop hook runs (it understands sleep.seconds "
               "and an exec of 'sleep N'); taken as instant", pre)
        return 0.0
    return float(match.group(1))


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


def _probe_manifest(probe: dict[str, float]) -> dict[str, int]:
    fields = {name: key for key, (name, _low) in PROBE_NUMBERS.items()}
    return {fields[name]: int(value) for name, value in probe.items()}


def add_lifecycle(manifest: dict[str, Any], dep: Deployment) -> dict[str, Any]:
    """Write a Deployment's probes, preStop, grace period and strategy into its resolved
    manifest (``scenario.resolved.yaml`` repeats the run exactly)."""
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if dep.readiness is not None:
        container["readinessProbe"] = _probe_manifest(dep.readiness)
    if dep.liveness is not None:
        container["livenessProbe"] = _probe_manifest(dep.liveness)
    if dep.pre_stop:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": math.ceil(dep.pre_stop)}}}
    pod["terminationGracePeriodSeconds"] = int(dep.grace_period)
    manifest["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": dep.max_surge, "maxUnavailable": dep.max_unavailable}}
    add_scheduling(pod, dep)
    return manifest
