"""Reading dumps: files and folders of YAML or JSON, each object with its location.

``kubectl get ... -o yaml`` prints one ``v1/List``; ``helm template`` and ``kustomize
build`` print a stream of single objects. Both are accepted, as is a kube-proxy
ConfigMap appended with ``>>`` (no ``---`` between the List and the object: the text is
split where a second top-level ``apiVersion:`` starts). Objects keep the marks of the
text they came from, so every problem is reported as ``file:line:col: path: message``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from npsim.scenario.files import MAX_MANIFEST_BYTES, FileRefused, read_text
from npsim.scenario.kinds import describe_value
from npsim.scenario.problems import Problem, Problems, ScenarioError, in_file_order
from npsim.scenario.yamlio import (
    DuplicateKeyError,
    Mark,
    MarkedDict,
    MarkedList,
    YamlSyntaxError,
    cached_resolve,
    format_path,
    load_all,
)

DUMP_SUFFIXES = (".yaml", ".yml", ".json")
_TOP_LEVEL_API_VERSION = re.compile(r"^apiVersion\s*:", re.MULTILINE)
_DOC_SEPARATOR = re.compile(r"^---", re.MULTILINE)


class DumpError(ScenarioError):
    """Every problem found in the dump (the CLI prints them and exits 2)."""

    def report(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the dump; nothing was written:"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


@dataclass(frozen=True)
class DumpObject:
    """One Kubernetes object and where it was read (``prefix`` is its path in a List)."""

    doc: MarkedDict
    prefix: str

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind"))

    @property
    def name(self) -> str:
        meta = self.doc.get("metadata")
        return str(meta.get("name")) if isinstance(meta, dict) else ""

    @property
    def namespace(self) -> str:
        meta = self.doc.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return str(ns) if ns else "default"


_STR = "tag:yaml.org,2002:str"


class _LazyMarks:
    """Positions of a mapping's keys or a list's items, made into marks only when a
    problem asks (a dump has a million nodes and usually no problem)."""

    __slots__ = ("label", "nodes")

    def __init__(self, label: str, nodes: Any) -> None:
        self.label = label
        self.nodes = nodes

    def _mark(self, node: yaml.Node) -> Mark:
        return Mark(self.label, node.start_mark.line + 1, node.start_mark.column + 1)

    def __getitem__(self, key: Any) -> Mark:
        return self._mark(self.nodes[key])

    def get(self, key: Any, default: Mark | None = None) -> Mark | None:
        node = self.nodes.get(key)
        return default if node is None else self._mark(node)

    def __len__(self) -> int:
        return len(self.nodes)


def lean_load(text: str, label: str) -> list[Any]:
    """Marked trees straight from libyaml's node graph: a dump is hundreds of thousands of
    plain strings and mappings, built here without PyYAML's general constructor (about
    twice as fast). Anything unusual (anchors, merge keys, tagged values) and every
    error goes to the scenario loader's path, which words the messages."""
    base = getattr(yaml, "CSafeLoader", None)
    if base is None or "&" in text or "<<" in text or "!" in text:
        return load_all(text, label)
    loader = type("_LeanLoader", (base,), {"resolve": cached_resolve})(text)
    constructor = yaml.constructor.SafeConstructor()
    docs: list[Any] = []

    def mark(node: yaml.Node) -> Mark:
        return Mark(label, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(node: yaml.Node, path: list[Any]) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR else constructor.construct_object(node)
        if isinstance(node, yaml.SequenceNode):
            out_list = MarkedList()
            out_list.mark = mark(node)
            for i, child in enumerate(node.value):
                path.append(i)
                out_list.append(build(child, path))
                path.pop()
            out_list.item_marks = _LazyMarks(label, node.value)  # type: ignore[assignment]
            return out_list
        out = MarkedDict()
        out.mark = mark(node)
        key_nodes: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = build(key_node, path)
            if key in key_nodes:
                raise DuplicateKeyError(
                    f"duplicate key {key!r} (first at line {key_nodes[key].start_mark.line + 1})",
                    mark(key_node), format_path([*path, key]))
            path.append(key)
            out[key] = build(value_node, path)
            path.pop()
            key_nodes[key] = key_node
        out.key_marks = _LazyMarks(label, key_nodes)  # type: ignore[assignment]
        return out

    try:
        while loader.check_node():
            node = loader.get_node()
            if node is not None and not (isinstance(node, yaml.ScalarNode)
                                         and node.tag.endswith(":null")):
                docs.append(build(node, []))
    except YamlSyntaxError:
        raise
    except (yaml.YAMLError, TypeError):
        return load_all(text, label)  # located, worded as for scenarios
    finally:
        loader.dispose()
    return docs


def _documents(text: str, label: str) -> list[Any]:
    """Every YAML document, with a List followed by ``>>``-appended objects split apart;
    line numbers stay those of the file (each piece is padded with the lines before)."""
    docs: list[Any] = []
    starts = [m.start() for m in _DOC_SEPARATOR.finditer(text)]
    bounds = [0, *starts, len(text)]
    for begin, end in zip(bounds, bounds[1:], strict=False):
        chunk = text[begin:end]
        cuts = [m.start() for m in _TOP_LEVEL_API_VERSION.finditer(chunk)]
        pieces = [chunk] if len(cuts) < 2 else [
            chunk[a:b] for a, b in zip([0, *cuts[1:]], [*cuts[1:], len(chunk)], strict=False)]
        offset = text.count("\n", 0, begin)
        for piece in pieces:
            padded = "\n" * offset + piece
            offset += piece.count("\n")
            docs.extend(lean_load(padded, label))
    return docs


def read_paths(paths: Iterable[Path], p: Problems) -> Iterator[DumpObject]:
    """The objects of every file (folders: their *.yaml, *.yml, *.json, sorted)."""
    for path in _files(paths, p):
        try:  # regular files only, size-capped: a FIFO or /dev/zero must not hang it
            text = read_text(path, "dump", MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            p.errors.append(Problem(None, str(path), "no such file or folder"))
            continue
        except FileRefused as exc:
            p.errors.append(Problem(None, "", str(exc)))
            continue
        try:
            docs = _documents(text, str(path))
        except YamlSyntaxError as exc:
            p.errors.append(Problem(exc.mark, exc.path, exc.problem + " (not a YAML dump?)"))
            continue
        if not docs:
            p.errors.append(Problem(None, str(path), "empty file: no Kubernetes object in it"))
        for doc in docs:
            yield from _objects(doc, str(path), p)


def _files(paths: Iterable[Path], p: Problems) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.suffix in DUMP_SUFFIXES
                           and f.is_file())
            if not found:
                p.errors.append(Problem(None, str(path), "folder holds no .yaml, .yml or "
                                        ".json file"))
            yield from found
        else:  # the reader says what is wrong with anything but a regular file
            yield path


def _objects(doc: Any, where: str, p: Problems) -> Iterator[DumpObject]:
    """A List's items, or the one object a document holds."""
    if not isinstance(doc, MarkedDict):
        got = describe_value(doc)  # never the text itself: the file may be anything
        problem = p.problem(doc, [], "expected a Kubernetes object or a v1 List (a mapping "
                            f"with apiVersion and kind), got {got}")
        p.errors.append(problem if problem.mark else Problem(None, where, problem.message))
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List"):
        if "items" not in doc:
            p.at(doc, ["items"], f"Required value: a {kind} holds its objects under items")
            return
        items = doc["items"]
        if not isinstance(items, MarkedList):
            got = "a single object" if isinstance(items, dict) else describe_value(items)
            p.at(doc, ["items"], f"expected a list of objects, got {got}: a {kind} holds "
                 "its objects as a YAML list ('- apiVersion: ...')")
            return
        for i, item in enumerate(items):
            if not isinstance(item, MarkedDict):
                p.at(doc, ["items", i], "expected a Kubernetes object (a mapping)")
                continue
            yield from _checked(item, f"items[{i}].", p, doc, ["items", i])
        return
    yield from _checked(doc, "", p, doc, [])


def _checked(obj: MarkedDict, prefix: str, p: Problems, root: MarkedDict,
             at: list[Any]) -> Iterator[DumpObject]:
    missing = [key for key in ("apiVersion", "kind") if not isinstance(obj.get(key), str)]
    if missing:
        p.at(root, [*at, missing[0]] if obj else at,
             f"Required value: every object needs apiVersion and kind (missing "
             f"{' and '.join(missing)}); is this a kubectl dump or a manifest?")
        return
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        p.at(root, [*at, "metadata", "name"], f"Required value: the {obj['kind']} name")
        return
    yield DumpObject(obj, prefix)


def raise_problems(p: Problems) -> None:
    if p.errors:
        raise DumpError(in_file_order(p.errors))
