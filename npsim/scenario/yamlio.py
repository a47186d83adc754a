"""Safe YAML loading that remembers where every key and item came from.

Validation errors must name file, line, column and field path. PyYAML's safe loader
knows the marks while it builds the tree; we keep them on the dicts and lists it
returns, so any later check can point back to the text.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Mark:
    file: str
    line: int  # 1-based
    column: int  # 1-based


class MarkedDict(dict):
    """A dict that knows the position of each key (and of itself)."""

    __slots__ = ("key_marks", "value_marks", "mark")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}
        self.mark: Mark | None = None


class MarkedList(list):
    __slots__ = ("item_marks", "mark")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_marks: list[Mark] = []
        self.mark: Mark | None = None


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


# Bounds that keep hostile input cheap: real manifests nest about 15 levels and never
# need more than a handful of digits in a number.
MAX_DEPTH = 100
MAX_INT_DIGITS = 40
MAX_ALIAS_EXPANSION = 10  # an alias-expanded tree may be at most this many times larger
ALIAS_SLACK = 100_000  # ... plus this many nodes (anchors for labels are fine)


class _Marked:
    """Construction that builds MarkedDict/MarkedList, rejects duplicate and unhashable
    keys, and bounds nesting depth and integer size. Mixed into the C (libyaml) loader
    when it is installed, else the pure-Python one; both keep line marks."""

    file_label = "<string>"

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> MarkedDict:  # type: ignore[override]
        self.flatten_mapping(node)  # type: ignore[attr-defined]
        out = MarkedDict()
        out.mark = _mark(self.file_label, node)
        path = self._enter(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
            try:
                hash(key)
            except TypeError:
                raise YamlSyntaxError("a mapping key must be a plain value (a string or a "
                                      "number), not a list or mapping",
                                      _mark(self.file_label, key_node),
                                      format_path(path)) from None
            if key in out:
                raise DuplicateKeyError(
                    f"duplicate key {key!r} (first at line {out.key_marks[key].line})",
                    _mark(self.file_label, key_node),
                    format_path([*path, key]),
                )
            path.append(key)
            try:
                out[key] = self.construct_object(value_node, deep=True)  # type: ignore[attr-defined]
            finally:
                path.pop()
            out.key_marks[key] = _mark(self.file_label, key_node)
            out.value_marks[key] = _mark(self.file_label, value_node)
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> MarkedList:  # type: ignore[override]
        path = self._enter(node)
        out = MarkedList()
        for i, child in enumerate(node.value):
            path.append(i)
            try:
                out.append(self.construct_object(child, deep=True))  # type: ignore[attr-defined]
            finally:
                path.pop()
        out.item_marks = [_mark(self.file_label, child) for child in node.value]
        out.mark = _mark(self.file_label, node)
        return out

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(str(node.value)) > MAX_INT_DIGITS:
            raise YamlSyntaxError(f"a number of more than {MAX_INT_DIGITS} digits",
                                  _mark(self.file_label, node), format_path(self._path()))
        return super().construct_yaml_int(node)  # type: ignore[misc]

    def _enter(self, node: yaml.Node) -> list[Any]:
        path = self._path()
        if len(path) >= MAX_DEPTH:
            raise YamlSyntaxError(f"nested more than {MAX_DEPTH} levels deep",
                                  _mark(self.file_label, node), format_path(path))
        return path

    def _path(self) -> list[Any]:
        """Keys and indexes from the document root to the node being built."""
        if not hasattr(self, "_npsim_path"):
            self._npsim_path: list[Any] = []
        return self._npsim_path


class _Loader(_Marked, yaml.SafeLoader):
    pass


_LOADERS: list[type] = [_Loader]
if getattr(yaml, "__with_libyaml__", False):  # the C parser: a 13 MB manifest in seconds

    class _CLoader(_Marked, yaml.CSafeLoader):  # type: ignore[misc]
        pass

    _LOADERS.insert(0, _CLoader)

for _cls in _LOADERS:
    _cls.add_constructor("tag:yaml.org,2002:map", _Marked.construct_mapping)
    _cls.add_constructor("tag:yaml.org,2002:seq", _Marked.construct_sequence)
    _cls.add_constructor("tag:yaml.org,2002:int", _Marked.construct_yaml_int)


def _expanded_size(docs: list[Any], limit: int) -> bool:
    """Whether the trees, with every alias expanded, stay within ``limit`` nodes (an
    alias bomb is small as text and as objects, but huge to anything that walks it)."""
    sizes: dict[int, int] = {}

    def size(obj: Any) -> int:
        if not isinstance(obj, dict | list):
            return 1
        known = sizes.get(id(obj))
        if known is not None:
            return known
        children = obj.values() if isinstance(obj, dict) else obj
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(obj)] = total
        return total

    total = 0
    for doc in docs:
        total += size(doc)
        if total > limit:
            return False
    return True


class YamlSyntaxError(ValueError):
    """Unparsable YAML. ``str()`` is ``file:line:col: [path: ]problem``; the parts are kept
    in ``mark``, ``path`` and ``problem`` so a report can place them like any other problem."""

    def __init__(self, problem: str, mark: Mark | None = None, path: str = "") -> None:
        self.problem = problem
        self.mark = mark
        self.path = path
        where = f"{mark.file}:{mark.line}:{mark.column}: " if mark else ""
        super().__init__(f"{where}{path + ': ' if path else ''}{problem}")


class DuplicateKeyError(YamlSyntaxError):
    pass


def fast_loader(label: str) -> type:
    """The marked loader on libyaml's C parser when PyYAML has it: several times faster on
    the megabytes of an imported cluster (same trees, same marks)."""
    base = getattr(yaml, "CSafeLoader", None)
    if base is None:  # pragma: no cover - PyYAML built without libyaml
        return type("_LabelledLoader", (_Loader,), {"file_label": label})
    return type("_FastLoader", (base,), {
        "file_label": label,
        "construct_mapping": _Loader.construct_mapping,
        "construct_sequence": _Loader.construct_sequence,
        "_path": _Loader._path,
        "yaml_constructors": _Loader.yaml_constructors,
        "resolve": cached_resolve,
    })


_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}


def cached_resolve(self: yaml.resolver.Resolver, kind: type, value: Any,
                    implicit: Any) -> str:
    """The implicit tag of a plain scalar, remembered: dumps repeat the same few thousand
    values (TCP, http, True, names) hundreds of thousands of times."""
    if kind is not yaml.ScalarNode or implicit is None:
        return yaml.resolver.Resolver.resolve(self, kind, value, implicit)
    key = (value, tuple(implicit))
    tag = _RESOLVED.get(key)
    if tag is None:
        tag = yaml.resolver.Resolver.resolve(self, kind, value, implicit)
        if len(_RESOLVED) < 50_000:
            _RESOLVED[key] = tag
    return tag


if len(_LOADERS) > 1:  # the C loader also remembers resolved scalar tags (big dumps)
    _LOADERS[0].resolve = cached_resolve  # type: ignore[attr-defined]


def load_all(text: str, label: str) -> list[Any]:
    """Every document in ``text`` (multi-document YAML), with marks labelled ``label``."""
    try:
        try:
            docs = _parse(text, label, _LOADERS[0])
        except yaml.YAMLError:
            if len(_LOADERS) == 1:
                raise
            # the pure-Python parser words syntax errors better; errors are rare: parse again
            docs = _parse(text, label, _LOADERS[-1])
    except YamlSyntaxError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.context_mark and exc.problem:
            cm = exc.context_mark
            problem += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
        where = Mark(label, mark.line + 1, mark.column + 1) if mark else None
        raise YamlSyntaxError(f"YAML syntax error: {problem}", where) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, ...)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise YamlSyntaxError(f"YAML error: the character U+{code:04X} is not allowed in "
                              "YAML text", Mark(label, line, column)) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"YAML error: {exc}") from None
    except RecursionError:
        raise YamlSyntaxError(f"YAML nested too deeply (more than {MAX_DEPTH} levels)",
                              Mark(label, 1, 1)) from None
    except (ValueError, OverflowError) as exc:  # e.g. a value the safe constructor refuses
        raise YamlSyntaxError(f"YAML value error: {exc}", Mark(label, 1, 1)) from None
    if "*" in text and not _expanded_size(docs, MAX_ALIAS_EXPANSION * len(text) + ALIAS_SLACK):
        raise YamlSyntaxError("YAML aliases expand to too large a document (an alias bomb?)",
                              Mark(label, 1, 1))
    return docs


def _parse(text: str, label: str, loader: type) -> list[Any]:
    loader_cls = type("_LabelledLoader", (loader,), {"file_label": label})
    # the tree makes no reference cycles, but its millions of new objects set off full
    # collections again and again: 40,000 nodes parsed in 4.1-5.8 s with the collector
    # on, 1.6-1.7 s with it off
    collecting = gc.isenabled()
    gc.disable()
    try:
        return [doc for doc in yaml.load_all(text, Loader=loader_cls) if doc is not None]  # noqa: S506 - SafeLoader subclass
    finally:
        if collecting:
            gc.enable()


def load_file(path: Path) -> list[Any]:
    return load_all(path.read_text(encoding="utf-8"), str(path))


def locate(tree: Any, loc: Sequence[Any]) -> tuple[Mark | None, list[Any]]:
    """The deepest mark along ``loc`` in a marked tree, and the part of loc that was found.

    ``loc`` may contain steps that are not in the tree (pydantic adds union tags); they are
    skipped, so the error still points at the nearest enclosing key.
    """
    mark: Mark | None = getattr(tree, "mark", None)
    node = tree
    path: list[Any] = []
    for step in loc:
        if isinstance(node, MarkedDict) and step in node:
            mark = node.key_marks.get(step, mark)
            node = node[step]
            path.append(step)
        elif isinstance(node, MarkedList) and isinstance(step, int) and 0 <= step < len(node):
            mark = node.item_marks[step]
            node = node[step]
            path.append(step)
    return mark, path


def format_path(path: Sequence[Any]) -> str:
    """``clients[0].arrival.rate`` from ``('clients', 0, 'arrival', 'rate')``."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += ("." if out else "") + str(step)
    return out or "(top level)"


def plain(tree: Any) -> Any:
    """A copy of a marked tree as plain dicts and lists (for dumping)."""
    if isinstance(tree, dict):
        return {k: plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    return tree
