"""The base of every scenario section: strict keys, camelCase, validated assignments.

Unknown keys are rejected (a typo must not silently fall back to a default). Keys are
camelCase as in Kubernetes manifests; Python attributes are snake_case. An assignment
in a notebook (``scenario.cluster.proxyMode = "ipvs"``) is validated like the file, and
its error names the YAML path of the section (each section remembers where it sits).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PrivateAttr, ValidationError
from pydantic.alias_generators import to_camel

from npsim.scenario.problems import Problem, Problems, ScenarioError
from npsim.scenario.yamlio import format_path


def _refuse_bool(value: Any) -> Any:
    """pydantic's lax mode reads ``true`` as 1; a boolean where a count or port is
    expected is a mistake in the scenario, not a number."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got the boolean {str(value).lower()}")
    return value


# every integer field of the scenario: a whole number, never a YAML boolean
Integer = Annotated[int, BeforeValidator(_refuse_bool)]


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_assignment=True,
    )
    # where this model sits in the scenario (``cluster.ipvs``), for assignment errors
    _npsim_path: str | None = PrivateAttr(default=None)

    def __setattr__(self, name: str, value: Any) -> None:
        """Assignments are validated; YAML keys work as names (``proxyMode``); errors
        are :class:`ScenarioError` naming the path, like a scenario file's."""
        if name.startswith("_"):
            super().__setattr__(name, value)
            return
        field = checked_field(self, name)
        try:
            super().__setattr__(field, value)
        except ValidationError as exc:
            raise assignment_error(self, field, exc) from None
        if self._npsim_path is not None:  # a new section learns where it sits
            label_paths(self, self._npsim_path)


    def __getattr__(self, name: str) -> Any:
        """Only for names not found the usual way: a YAML key reads its field
        (``cluster.proxyMode`` is ``cluster.proxy_mode``); a misspelt name says what it
        could mean."""
        if name.startswith("_"):  # pydantic's private attributes, dunders, pickling
            return super().__getattr__(name)  # type: ignore[misc]
        fields = type(self).model_fields
        for field, info in fields.items():
            if info.alias == name:
                return getattr(self, field)
        keys = sorted({*fields, *(i.alias for i in fields.values() if i.alias)})
        close = difflib.get_close_matches(name, keys, n=2)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise AttributeError(f"{path_of(self, name)}: no such field{hint}")


def path_of(model: BaseModel, key: str = "") -> str:
    """``cluster.ipvs`` (+ ``.key``) for a model of a loaded scenario; the class name for
    one that is not part of a scenario."""
    private = getattr(model, "__pydantic_private__", None) or {}
    path = private.get("_npsim_path")
    if path is None:
        path = type(model).__name__
    return f"{path}.{key}" if path and key else path or key


def label_paths(model: BaseModel, path: str) -> None:
    """Remember each model's YAML path, so an assignment's error can name it."""
    if model.__pydantic_private__ is not None and "_npsim_path" in model.__pydantic_private__:
        model.__pydantic_private__["_npsim_path"] = path
    for name, info in type(model).model_fields.items():
        value = model.__dict__.get(name)
        at = f"{path}.{info.alias or name}" if path else (info.alias or name)
        if isinstance(value, BaseModel):
            label_paths(value, at)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    label_paths(item, f"{at}[{i}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, BaseModel):
                    label_paths(item, f"{at}.{key}")


def checked_field(model: BaseModel, name: str) -> str:
    """The Python field an assignment means: the field itself or its YAML key (so
    ``cluster.proxyMode = ...`` works like ``cluster.proxy_mode = ...``)."""
    fields = type(model).model_fields
    if name in fields:
        return name
    for field, info in fields.items():
        if info.alias == name:
            return field
    keys = sorted({*fields, *(i.alias for i in fields.values() if i.alias)})
    close = difflib.get_close_matches(name, keys, n=2)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ScenarioError([Problem(None, path_of(model, name),
                                 f"no such field{hint} (fields: {', '.join(sorted(fields))})")])


def assignment_error(model: BaseModel, name: str, exc: ValidationError) -> ScenarioError:
    """A pydantic assignment error, worded like a scenario file's."""
    info = type(model).model_fields.get(name)
    key = info.alias if info is not None and info.alias else name
    p = Problems()
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        loc = [s for s in err["loc"] if s != name]
        where = path_of(model, key) + (f".{format_path(loc)}" if loc else "")
        p.errors.append(Problem(None, where, msg))
    return ScenarioError(p.errors)
