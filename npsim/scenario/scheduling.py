"""A pod template's scheduling fields, read and written as the API server takes them:
container resource requests, ``nodeSelector``, node affinity and tolerations.

Kept as plain data on the Deployment (npsim/scenario/objects.py); the scheduler
(npsim/cluster/scheduler.py) reads them. A request left out defaults to the container's
limit (core/v1 ``SetDefaults_ResourceList`` via ``defaultRequests``); the pod's request
is the sum over its containers (init containers are not read).
"""

from __future__ import annotations

from typing import Any

from npsim.scenario.expect import expect, label_map
from npsim.scenario.problems import Problems
from npsim.scenario.quantity import cpu_millis, memory_bytes
from npsim.scenario.yamlio import MarkedDict

TMPL = ["spec", "template", "spec"]
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# a node selector term as plain data: (expressions, fields), each (key, operator, values)
Term = tuple[tuple[tuple[str, str, tuple[str, ...]], ...],
             tuple[tuple[str, str, tuple[str, ...]], ...]]


def parse_scheduling(doc: MarkedDict, pod_spec: dict, containers: list, p: Problems,
                     pre: str) -> dict[str, Any]:
    """The Deployment fields for scheduling (only those the manifest sets)."""
    out: dict[str, Any] = {}
    cpu = memory = 0
    for ci, container in enumerate(containers):
        resources = (container or {}).get("resources") if isinstance(container, dict) else None
        if not isinstance(resources, dict):
            continue
        at = [*TMPL, "containers", ci, "resources"]
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        for name, read in (("cpu", cpu_millis), ("memory", memory_bytes)):
            kind = "requests" if name in requests else "limits"
            raw = requests.get(name, limits.get(name))
            if raw is None:
                continue
            try:
                value = read(raw)
            except ValueError:
                p.at(doc, [*at, kind, name], f"Invalid value: {raw!r}: must be a quantity "
                     "such as 500m, 2, 128Mi or 1Gi, at least 0", pre)
                continue
            if name == "cpu":
                cpu += value
            else:
                memory += value
    if cpu:
        out["cpu_request"] = cpu
    if memory:
        out["memory_request"] = memory
    if "nodeSelector" in pod_spec:
        out["node_selector"] = label_map(doc, [*TMPL, "nodeSelector"], p, pre)
    node_affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    at = [*TMPL, "affinity", "nodeAffinity"]
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        loc = [*at, "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms"]
        terms = expect(doc, loc, list, "a list of node selector terms", p, pre) or []
        out["required_terms"] = tuple(_term(doc, [*loc, i], p, pre) for i in range(len(terms)))
    preferred = node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution")
    if preferred is not None:
        loc = [*at, "preferredDuringSchedulingIgnoredDuringExecution"]
        items = expect(doc, loc, list, "a list of weighted preferences", p, pre) or []
        weighted = []
        for i in range(len(items)):
            weight = expect(doc, [*loc, i, "weight"], int, "a weight (1-100)", p, pre)
            if weight is not None and not 1 <= weight <= 100:
                p.at(doc, [*loc, i, "weight"], f"Invalid value: {weight}: must be in the "
                     "range 1-100", pre)
            term = _term(doc, [*loc, i, "preference"], p, pre)
            if weight is not None:
                weighted.append((weight, term))
        out["preferred_terms"] = tuple(weighted)
    if "tolerations" in pod_spec:
        out["tolerations"], seconds = _tolerations(doc, pod_spec, p, pre)
        if any(s is not None for s in seconds):
            out["toleration_seconds"] = seconds
    return out


def _term(doc: MarkedDict, loc: list[Any], p: Problems, pre: str) -> Term:
    raw = expect(doc, loc, dict, "a node selector term", p, pre) or {}
    parts: list[tuple[tuple[str, str, tuple[str, ...]], ...]] = []
    for key in ("matchExpressions", "matchFields"):
        found = []
        items = expect(doc, [*loc, key], list, "a list of requirements", p, pre) \
            if key in raw else []
        for i, item in enumerate(items or []):
            at = [*loc, key, i]
            name = expect(doc, [*at, "key"], str, "a key", p, pre)
            op = expect(doc, [*at, "operator"], str, "an operator", p, pre)
            values = (item or {}).get("values") if isinstance(item, dict) else None
            values = [str(v) for v in values] if isinstance(values, list) else []
            if op is not None and op not in OPERATORS or key == "matchFields" and op not in (
                    "In", "NotIn", None):
                allowed = OPERATORS if key == "matchExpressions" else ("In", "NotIn")
                p.at(doc, [*at, "operator"], f'Unsupported value: "{op}": supported values: '
                     + ", ".join(f'"{o}"' for o in allowed), pre)
            elif key == "matchFields" and name is not None and name != "metadata.name":
                p.at(doc, [*at, "key"], f'Unsupported value: "{name}": supported values: '
                     '"metadata.name"', pre)
            elif op in ("In", "NotIn") and not values:
                p.at(doc, [*at, "values"], "Required value: must be specified when "
                     "`operator` is 'In' or 'NotIn'", pre)
            elif op in ("Exists", "DoesNotExist") and values:
                p.at(doc, [*at, "values"], "Forbidden: may not be specified when "
                     "`operator` is 'Exists' or 'DoesNotExist'", pre)
            elif op in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
                p.at(doc, [*at, "values"], "Required value: must be specified single value "
                     "when `operator` is 'Lt' or 'Gt'", pre)
            elif name is not None and op is not None:
                found.append((name, op, tuple(values)))
        parts.append(tuple(found))
    return parts[0], parts[1]


def _tolerations(doc: MarkedDict, pod_spec: dict, p: Problems, pre: str
                 ) -> tuple[tuple[tuple[str, str, str, str], ...], tuple[float | None, ...]]:
    """The tolerations, and each one's ``tolerationSeconds`` (None where not set): the
    scheduler reads the first, the taint manager's eviction both."""
    loc = [*TMPL, "tolerations"]
    items = expect(doc, loc, list, "a list of tolerations", p, pre) or []
    out = []
    seconds: list[float | None] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            p.at(doc, [*loc, i], f"expected a toleration, got {item!r}", pre)
            continue
        key, value = str(item.get("key") or ""), str(item.get("value") or "")
        op, effect = str(item.get("operator") or "Equal"), str(item.get("effect") or "")
        if op not in ("Equal", "Exists"):
            p.at(doc, [*loc, i, "operator"], f'Unsupported value: "{op}": supported '
                 'values: "Equal", "Exists"', pre)
        elif effect and effect not in EFFECTS:
            p.at(doc, [*loc, i, "effect"], f'Unsupported value: "{effect}": supported '
                 'values: "NoSchedule", "PreferNoSchedule", "NoExecute"', pre)
        elif not key and op != "Exists":
            p.at(doc, [*loc, i, "operator"], "Invalid value: operator must be Exists when "
                 "`key` is empty, which means \"match all values and all keys\"", pre)
        elif op == "Exists" and value:
            p.at(doc, [*loc, i, "operator"], "Invalid value: value must be empty when "
                 "`operator` is 'Exists'", pre)
        elif "tolerationSeconds" in item and (
                isinstance(item["tolerationSeconds"], bool)
                or not isinstance(item["tolerationSeconds"], int)):
            p.at(doc, [*loc, i, "tolerationSeconds"], "Invalid value: "
                 f"{item['tolerationSeconds']!r}: expected a whole number of seconds", pre)
        elif "tolerationSeconds" in item and effect != "NoExecute":
            # the API server's ValidateTolerations
            p.at(doc, [*loc, i, "effect"], f'Invalid value: "{effect}": effect must be '
                 "'NoExecute' when `tolerationSeconds` is set", pre)
        else:
            out.append((key, op, value, effect))
            given = item.get("tolerationSeconds")
            seconds.append(None if given is None else float(given))
    return tuple(out), tuple(seconds)


def add_scheduling(pod: dict[str, Any], dep: Any) -> None:
    """Write a Deployment's scheduling fields into its resolved pod template (one
    container carries the pod's summed requests)."""
    requests = {}
    if dep.cpu_request:
        requests["cpu"] = f"{dep.cpu_request}m"
    if dep.memory_request:
        requests["memory"] = str(dep.memory_request)
    if requests:
        pod["containers"][0]["resources"] = {"requests": requests}
    if dep.node_selector:
        pod["nodeSelector"] = dict(dep.node_selector)
    affinity: dict[str, Any] = {}
    if dep.required_terms is not None:
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [_term_manifest(t) for t in dep.required_terms]}
    if dep.preferred_terms:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": w, "preference": _term_manifest(t)} for w, t in dep.preferred_terms]
    if affinity:
        pod["affinity"] = {"nodeAffinity": affinity}
    if dep.tolerations:
        seconds = dep.toleration_seconds or [None] * len(dep.tolerations)
        pod["tolerations"] = [{k: v for k, v in (("key", key), ("operator", op),
                                                 ("value", value), ("effect", effect),
                                                 ("tolerationSeconds", None if s is None
                                                  else int(s))) if v is not None and v != ""}
                              for (key, op, value, effect), s in zip(
                                  dep.tolerations, seconds, strict=True)]


def _term_manifest(term: Term) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, reqs in zip(("matchExpressions", "matchFields"), term, strict=True):
        if reqs:
            out[name] = [{"key": k, "operator": op, **({"values": list(v)} if v else {})}
                         for k, op, v in reqs]
    return out
