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

from npsim.scenario.problems import Problem, Problems, ScenarioError, in_file_order
from npsim.scenario.yamlio import MarkedDict, MarkedList, YamlSyntaxError, _Loader, load_all

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


def _fast_loader(label: str) -> type:
    """libyaml's parser with the marked constructors of the scenario loader: a 1000-node
    dump is tens of megabytes, several times faster to parse in C."""
    base = getattr(yaml, "CSafeLoader", None)
    if base is None:  # pragma: no cover - PyYAML built without libyaml
        return type("_DumpLoader", (_Loader,), {"file_label": label})
    return type("_DumpLoader", (base,), {
        "file_label": label,
        "construct_mapping": _Loader.construct_mapping,
        "construct_sequence": _Loader.construct_sequence,
        "_path": _Loader._path,
        "yaml_constructors": _Loader.yaml_constructors,
    })


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
            try:
                loaded = yaml.load_all(padded, Loader=_fast_loader(label))  # noqa: S506 - SafeLoader based
                docs.extend(doc for doc in loaded if doc is not None)
            except YamlSyntaxError:
                raise
            except yaml.YAMLError:
                load_all(padded, label)  # the scenario loader's located message
                raise
    return docs


def read_paths(paths: Iterable[Path], p: Problems) -> Iterator[DumpObject]:
    """The objects of every file (folders: their *.yaml, *.yml, *.json, sorted)."""
    for path in _files(paths, p):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            p.errors.append(Problem(None, str(path), "not a UTF-8 text file"))
            continue
        except OSError as exc:
            p.errors.append(Problem(None, str(path), f"cannot read: {exc.strerror or exc}"))
            continue
        try:
            docs = _documents(text, str(path))
        except YamlSyntaxError as exc:
            p.errors.append(Problem(exc.mark, exc.path, exc.problem + " (not a YAML dump?)"))
            continue
        if not docs:
            p.errors.append(Problem(None, str(path), "empty file: no Kubernetes object in it"))
        for i, doc in enumerate(docs):
            yield from _objects(doc, f"#{i}" if len(docs) > 1 else "", p)


def _files(paths: Iterable[Path], p: Problems) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.suffix in DUMP_SUFFIXES
                           and f.is_file())
            if not found:
                p.errors.append(Problem(None, str(path), "folder holds no .yaml, .yml or "
                                        ".json file"))
            yield from found
        elif path.is_file():
            yield path
        else:
            p.errors.append(Problem(None, str(path), "no such file or folder"))


def _objects(doc: Any, where: str, p: Problems) -> Iterator[DumpObject]:
    """A List's items, or the one object a document holds."""
    if not isinstance(doc, MarkedDict):
        p.at(doc, [], "expected a Kubernetes object or a v1 List (a mapping with apiVersion "
             f"and kind), got {type(doc).__name__}")
        return
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc["items"]
        if not isinstance(items, MarkedList):
            got = "a single object" if isinstance(items, dict) else repr(items)
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
