"""What both fuzz suites share: a bundled scenario inlined into one mapping, the walk over
its children, and one mutation of a node (delete it, or put a wrong value there)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

OPS = ["delete", "wrong", "unit", "number", "name", "empty", "double"]


@dataclass(frozen=True)
class Pools:
    """The values a mutation draws from: wrong types, units, numbers and names."""

    wrong: list[Any]
    units: list[str]
    numbers: list[Any]
    names: list[str]


def inline(path: Path, requests: int) -> dict[str, Any]:
    """A bundled scenario with its manifest files inlined and a small request budget."""
    data = yaml.safe_load(path.read_text("utf-8"))
    manifests: list[Any] = []
    for item in data["manifests"]:
        if isinstance(item, str):
            text = (path.parent / item).read_text("utf-8")
            manifests.extend(doc for doc in yaml.safe_load_all(text) if doc is not None)
        else:
            manifests.append(item)
    data["manifests"] = manifests
    data["run"] = {"requests": requests, "seed": 1}
    return data


def children(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return list(node)
    if isinstance(node, list):
        return list(range(len(node)))
    return []


def mutate(draw: st.DrawFn, parent: Any, key: Any, node: Any, pools: Pools) -> None:
    """One mutation of ``parent[key]`` (which holds ``node``)."""
    op = draw(st.sampled_from(OPS))
    if op == "delete":
        if isinstance(parent, dict):
            del parent[key]
        else:
            parent.pop(key)
    elif op == "wrong":
        parent[key] = copy.deepcopy(draw(st.sampled_from(pools.wrong)))
    elif op == "unit":
        parent[key] = draw(st.sampled_from(pools.units))
    elif op == "number":
        parent[key] = draw(st.sampled_from(pools.numbers))
    elif op == "name":
        parent[key] = draw(st.sampled_from(pools.names))
    elif op == "empty":
        parent[key] = [] if isinstance(node, list) else {} if isinstance(node, dict) else ""
    elif op == "double" and isinstance(node, list) and node:
        node.append(copy.deepcopy(node[0]))
