"""A scenario section as the user wrote it: only the keys that were set.

``Scenario.with_changes`` (``--set``, sweep variants, the planner) re-reads the scenario
as a file. Re-reading the fully defaulted data would mark every default as written by
the user, and a default that is derived when the key is absent would be frozen at its
plain value: ``run.timeseriesBucket`` is 1 s when given, but a long run without it gets
a coarser bucket (npsim/scenario/series.py). So the data re-read holds what the user
set (in the file or by assignment) plus the change, and the reader fills the rest in
again, exactly as for the file.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def set_fields(model: BaseModel) -> dict[str, Any]:
    """``model`` dumped as a file writes it (YAML keys, units), with only the fields that
    were set: in the file, by a validator from what the file gave, or by assignment. A
    section left at its default that was changed in place afterwards
    (``scenario.run.limits.maxNodes = 5``) keeps what was changed in it."""
    return _prune(model, model.model_dump(mode="json", by_alias=True))


def _prune(model: BaseModel, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    written = model.model_fields_set
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        value = getattr(model, name)
        kept = _keep(value, data[key])
        if name in written or (isinstance(value, BaseModel) and kept):
            out[key] = kept
    return out


def _keep(value: Any, data: Any) -> Any:
    """The dumped ``data`` of ``value``, its sections pruned (lists and mappings of
    sections item by item; a mapping's keys may be written differently, e.g. ``0`` as
    ``"0"``, so items are paired in order)."""
    if isinstance(value, BaseModel) and isinstance(data, dict):
        return _prune(value, data)
    if isinstance(value, list | tuple) and isinstance(data, list) and len(value) == len(data):
        return [_keep(v, d) for v, d in zip(value, data, strict=True)]
    if isinstance(value, dict) and isinstance(data, dict) and len(value) == len(data):
        return {key: _keep(v, d) for v, (key, d) in
                zip(value.values(), data.items(), strict=True)}
    return data
