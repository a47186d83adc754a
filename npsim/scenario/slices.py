"""Hand-made EndpointSlices (discovery.k8s.io/v1): which addresses back a
selector-less Service, with the conditions and hints kube-proxy reads."""

from __future__ import annotations

import ipaddress
from typing import Any

from npsim.scenario.expect import expect, label_map
from npsim.scenario.objects import SERVICE_NAME_LABEL, EndpointSlice, SliceEndpoint, SlicePort
from npsim.scenario.problems import Problems
from npsim.scenario.yamlio import MarkedDict


def _condition(doc: MarkedDict, at: list[Any], raw: dict, key: str, default: bool,
               p: Problems, pre: str) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        p.at(doc, [*at, "conditions", key], f"expected true or false, got {value!r}", pre)
        return default
    return value


def _hint_names(doc: MarkedDict, at: list[Any], hints: dict, key: str, p: Problems,
                pre: str) -> tuple[str, ...] | None:
    entries = hints.get(key)
    if entries is None:
        return None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and isinstance(
            e.get("name"), str) for e in entries):
        p.at(doc, [*at, "hints", key], "expected a list of {name: ...}", pre)
        return None
    return tuple(e["name"] for e in entries)


def _slice_endpoint(doc: MarkedDict, i: int, raw: Any, p: Problems,
                    pre: str) -> SliceEndpoint | None:
    at = ["endpoints", i]
    if not isinstance(raw, dict):
        p.at(doc, at, "expected an endpoint mapping", pre)
        return None
    addresses = expect(doc, [*at, "addresses"], list, "a list of addresses", p, pre)
    if not addresses:
        if addresses is not None:
            p.at(doc, [*at, "addresses"], "Required value: at least one address", pre)
        return None
    try:
        # kube-proxy uses only the first address (the others are not used by consumers)
        address = str(ipaddress.IPv4Address(str(addresses[0])))
    except ValueError:
        p.at(doc, [*at, "addresses", 0],
             f'Invalid value: "{addresses[0]}": must be a valid IPv4 address', pre)
        return None
    conditions = raw.get("conditions") or {}
    if not isinstance(conditions, dict):
        p.at(doc, [*at, "conditions"], "expected a mapping", pre)
        conditions = {}
    ready = _condition(doc, at, conditions, "ready", True, p, pre)
    serving = _condition(doc, at, conditions, "serving", ready, p, pre)
    terminating = _condition(doc, at, conditions, "terminating", False, p, pre)
    hints = raw.get("hints") or {}
    if not isinstance(hints, dict):
        p.at(doc, [*at, "hints"], "expected a mapping", pre)
        hints = {}
    node_name, zone = raw.get("nodeName"), raw.get("zone")
    for key, value in (("nodeName", node_name), ("zone", zone)):
        if value is not None and not isinstance(value, str):
            p.at(doc, [*at, key], f"expected a name, got {value!r}", pre)
    return SliceEndpoint(address, node_name if isinstance(node_name, str) else None,
                         zone if isinstance(zone, str) else None, ready, serving, terminating,
                         _hint_names(doc, at, hints, "forZones", p, pre),
                         _hint_names(doc, at, hints, "forNodes", p, pre), i)


def parse_endpoint_slice(doc: MarkedDict, p: Problems, pre: str,
                         origin: str) -> EndpointSlice | None:
    """A hand-made EndpointSlice: which addresses back a selector-less Service."""
    n_errors = len(p.errors)
    name = expect(doc, ["metadata", "name"], str, "the EndpointSlice name", p, pre)
    namespace = (doc.get("metadata") or {}).get("namespace", "default")
    labels = label_map(doc, ["metadata", "labels"], p, pre) if "labels" in (
        doc.get("metadata") or {}) else {}
    service_name = labels.get(SERVICE_NAME_LABEL)
    if service_name is None:
        p.at(doc, ["metadata", "labels", SERVICE_NAME_LABEL],
             "Required value: the Service this slice belongs to", pre)
    address_type = doc.get("addressType")
    if address_type != "IPv4":
        p.at(doc, ["addressType"], f"Unsupported value: {address_type!r}: npsim simulates "
             'IPv4 slices only (supported values: "IPv4")', pre)
    ports: list[SlicePort] = []
    for i, raw in enumerate(doc.get("ports") or []):
        if not isinstance(raw, dict):
            p.at(doc, ["ports", i], "expected a port mapping", pre)
            continue
        number = expect(doc, ["ports", i, "port"], int, "a port number", p, pre)
        if number is not None and not 1 <= number <= 65535:
            p.at(doc, ["ports", i, "port"],
                 f"Invalid value: {number}: must be between 1 and 65535, inclusive", pre)
        ports.append(SlicePort(str(raw.get("name") or ""), number or 0,
                               str(raw.get("protocol", "TCP"))))
    raw_endpoints = doc.get("endpoints") or []
    if not isinstance(raw_endpoints, list):
        p.at(doc, ["endpoints"], "expected a list of endpoints", pre)
        raw_endpoints = []
    endpoints = [e for i, raw in enumerate(raw_endpoints)
                 if (e := _slice_endpoint(doc, i, raw, p, pre)) is not None]
    if len(p.errors) > n_errors or name is None or service_name is None:
        return None
    return EndpointSlice(str(name), str(namespace), service_name, tuple(ports),
                         tuple(endpoints), origin, doc, pre)
