"""Text that fits a terminal: tables and lines of at most ``WIDTH`` (100) columns.

One implementation for every command that prints: ``npsim run``'s summary
(``results/summary.py``), the sweep's and the planner's tables (``sweep/``). A line that
does not fit continues on an indented line; a name too long for its column is shortened
in the middle, so its start and its end (a pod's index, a port) stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

WIDTH = 100  # columns every printed line fits in


def shorten(text: str, width: int) -> str:
    """``text``, or its start and end around ``...`` when it is longer than ``width``."""
    if len(text) <= width:
        return text
    keep = max(width - 3, 2)
    return text[:keep // 2] + "..." + text[len(text) - (keep - keep // 2):]


def fit_width(table: pd.DataFrame, width: int = WIDTH, name_width: int = 32) -> str:
    """A text table in blocks of columns that each fit ``width`` characters, the row
    names repeated in front of every block (long names shortened in the middle)."""
    names = [shorten(str(n), name_width) for n in table.index]
    first = max([len(str(table.index.name or ""))] + [len(n) for n in names])
    cells = {c: [str(v) for v in table[c]] for c in table.columns}
    heads = {c: shorten(str(c), width - first - 2) for c in table.columns}  # long labels
    sizes = {c: max([len(heads[c])] + [len(v) for v in cells[c]]) for c in table.columns}
    blocks: list[list[str]] = [[]]
    used = first
    for column in table.columns:
        need = 2 + min(sizes[column], width - first - 2)
        if blocks[-1] and used + need > width:
            blocks.append([])
            used = first
        blocks[-1].append(column)
        used += need
    lines: list[str] = []
    for block in blocks:
        if lines:
            lines.append("")
        lines.append(f"{str(table.index.name or ''):<{first}}" + "".join(
            f"  {heads[c]:>{sizes[c]}}" for c in block))
        for i, name in enumerate(names):
            lines.append(f"{name:<{first}}" + "".join(f"  {cells[c][i]:>{sizes[c]}}"
                                                      for c in block))
    return "\n".join(line[:width].rstrip() for line in lines)


def text_rows(rows: list[list[str]] | list[tuple[str, ...]], align: str,
              indent: str = "") -> list[str]:
    """Rows of text cells as aligned lines, two spaces apart: ``align`` has an ``l`` or
    ``r`` per column (left or right), trailing spaces stripped."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(align))]
    return [indent + "  ".join(c.ljust(w) if a == "l" else c.rjust(w)
                               for c, w, a in zip(r, widths, align, strict=True)).rstrip()
            for r in rows]


def fit_rows(rows: list[list[str]], column: int, width: int = WIDTH) -> list[list[str]]:
    """``rows`` with the cells of ``column`` shortened (:func:`shorten`) just enough that
    :func:`text_rows` lines fit ``width``: that column gives way, the others are whole."""
    others = sum(max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0])) if i != column)
    room = max(12, width - others)
    return [[shorten(c, room) if i == column else c for i, c in enumerate(r)] for r in rows]


def wrap(head: str, parts: Sequence[str], width: int = WIDTH, indent: str | None = None,
         sep: str = "  ") -> list[str]:
    """``head`` followed by ``parts`` (``sep`` between two parts), as one line when it
    fits ``width``; a part that would pass it starts a line of its own, indented by
    ``indent`` (default: as far as ``head`` reaches). Parts are never cut."""
    indent = " " * len(head) if indent is None else indent
    lines = [head]
    for n, part in enumerate(parts):
        line = lines[-1] + (sep if n else "") + part
        if len(line) > width and len(indent) + len(part) < len(line):  # a new line helps
            lines.append(indent + part)
        else:
            lines[-1] = line
    return [line.rstrip() for line in lines]


def wrapped_rows(rows: Sequence[Sequence[str]], align: str, width: int = WIDTH,
                 indent: str = "", tails: Sequence[Sequence[str]] | None = None
                 ) -> list[list[str]]:
    """:func:`text_rows` for rows too wide for ``width``: each row's lines. The cells after
    the first are cut at the same column for every row, so the columns stay aligned; the
    rest continue under the second column. ``tails``: a row's parts of varying number
    (failure reasons), after its last cell, wrapped like :func:`wrap`."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(align))]
    under = len(indent) + widths[0] + 2  # where a continuation line starts
    segments: list[list[int]] = [[]]
    used = under - 2
    for i in range(1, len(align)):
        if segments[-1] and used + 2 + widths[i] > width:
            segments.append([])
            used = under - 2
        segments[-1].append(i)
        used += 2 + widths[i]

    def cell(row: Sequence[str], i: int) -> str:
        return row[i].ljust(widths[i]) if align[i] == "l" else row[i].rjust(widths[i])

    out = []
    for n, row in enumerate(rows):
        lines = [indent + cell(row, 0) + "".join("  " + cell(row, i) for i in segments[0])]
        lines += [" " * under + "  ".join(cell(row, i) for i in segment)
                  for segment in segments[1:]]
        lines = [line.rstrip() for line in lines]
        if tails is not None and tails[n]:
            lines[-1:] = wrap(lines[-1] + "  ", tails[n], width, " " * under)
        out.append(lines)
    return out
