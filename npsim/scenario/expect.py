"""Reading a manifest's fields as the API server reports them: a required value, a
wrong type, label maps and selectors; each problem placed at the field's line."""

from __future__ import annotations

from typing import Any

from npsim.scenario.problems import Problems
from npsim.scenario.yamlio import MarkedDict


def expect(
    doc: MarkedDict, loc: list[Any], kind: type | tuple[type, ...], what: str, p: Problems, pre: str
) -> Any:
    node: Any = doc
    for step in loc:
        if (isinstance(node, dict) and step in node
                or isinstance(node, list) and isinstance(step, int) and step < len(node)):
            node = node[step]
        else:
            p.at(doc, loc, f"Required value: {what}", pre)
            return None
    if not isinstance(node, kind) or isinstance(node, bool) and kind is not bool:
        p.at(doc, loc, f"expected {what}, got {node!r}", pre)
        return None
    return node


def label_map(doc: MarkedDict, loc: list[Any], p: Problems, pre: str) -> dict[str, str]:
    value = expect(doc, loc, dict, "a map of label keys to string values", p, pre)
    if value is None:
        return {}
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            p.at(doc, [*loc, k], f"label values must be strings, got {v!r}", pre)
        else:
            out[str(k)] = str(v)
    return out


def selector(doc: MarkedDict, loc: list[Any], p: Problems, pre: str) -> dict[str, str]:
    raw = expect(doc, loc, dict, "a label selector", p, pre)
    if raw is None:
        return {}
    if "matchExpressions" in raw:
        p.warn(doc, [*loc, "matchExpressions"],
               "matchExpressions are not checked by npsim; only matchLabels", pre)
    return label_map(doc, [*loc, "matchLabels"], p, pre) if "matchLabels" in raw else {}
