"""Which names come again: the one test of uniqueness every part of a scenario uses.

Each is one pass with a set (no count per name, no pairwise comparison): 40,000 alert
rules or variants took minutes with a count per name.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


def repeats(items: Iterable[T]) -> Iterator[tuple[int, T]]:
    """(position, item) of every item already given before it, in order: where a
    ``Duplicate value`` is reported (the first one given is the original)."""
    seen: set[T] = set()
    for i, item in enumerate(items):
        if item in seen:
            yield i, item
        seen.add(item)


def repeated(items: Iterable[T]) -> list[T]:
    """The items given more than once, sorted, each named once."""
    return sorted({item for _, item in repeats(items)})  # type: ignore[type-var]
