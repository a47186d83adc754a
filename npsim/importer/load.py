"""What the dump cannot say, from the user's monitoring: request rates and service times.

Two optional CSV files with a header row:

* rates: ``service,namespace,rate_per_s`` (a Service's requests per second);
* service times: ``deployment,namespace,service_time[,workers]`` (a pod's mean time per
  request as a duration such as ``12ms``, and optionally its concurrency);
* calls: ``caller,service,port[,count]`` (a workload's ``calls:``, one row per call in
  the order made; ``port`` a number or name, ``count`` calls in a row, default 1).

A bad row is reported as ``file:line:col: column: message``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from npsim.scenario.files import MAX_MANIFEST_BYTES, FileRefused, read_text
from npsim.scenario.limits import MAX_WORKERS
from npsim.scenario.problems import Problem, Problems
from npsim.scenario.yamlio import Mark
from npsim.units import parse_duration

RATE_COLUMNS = ("service", "namespace", "rate_per_s")
TIME_COLUMNS = ("deployment", "namespace", "service_time")
CALL_COLUMNS = ("caller", "service", "port")
CALL_OPTIONAL = ("count",)
MAX_CALL_COUNT = 1000  # calls in a row per request: more is a unit mistake, not a fan-out


@dataclass(frozen=True)
class CallRow:
    """One ``--calls`` row; ``marks`` locate each column's cell (``file:line:col``)."""

    caller: str
    service: str
    port: int | str | None  # None: the cell is empty (the Service's only port)
    count: int
    marks: dict[str, Mark]


@dataclass(frozen=True)
class CsvRow:
    key: tuple[str, str]  # (namespace, name)
    value: float
    workers: int | None
    mark: Mark


def _got_header(header: list[str]) -> str:
    """The header found, when it looks like one (names of letters, digits, ``_``, ``-``);
    else not quoted: a file that is no CSV (``/etc/shadow``) must not be printed."""
    if header and all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_ -]{0,39}", h) for h in header):
        return f", got {','.join(header)}"
    return ", got a first line that is not a CSV header of column names"


def _rows(path: Path, columns: tuple[str, ...], optional: tuple[str, ...],
          p: Problems) -> list[tuple[int, dict[str, str], dict[str, int]]]:
    try:  # regular files only, size-capped: a FIFO or /dev/zero must not hang it
        lines = read_text(path, "CSV file", MAX_MANIFEST_BYTES).splitlines()
    except FileNotFoundError:
        p.errors.append(Problem(None, str(path), "no such CSV file"))
        return []
    except FileRefused as exc:
        p.errors.append(Problem(None, "", str(exc)))
        return []
    reader = list(csv.reader(lines))
    if not reader:
        p.errors.append(Problem(None, str(path), f"empty CSV: expected a header "
                                f"{','.join(columns)}"))
        return []
    header = [h.strip() for h in reader[0]]
    missing = [c for c in columns if c not in header]
    unknown = [h for h in header if h not in columns + optional]
    if missing or unknown:
        p.errors.append(Problem(Mark(str(path), 1, 1), "header",
                                f"expected columns {','.join(columns)}"
                                + (f" (optional: {','.join(optional)})" if optional else "")
                                + _got_header(header)))
        return []
    out = []
    for number, row in enumerate(reader[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            p.errors.append(Problem(Mark(str(path), number, 1), "",
                                    f"expected {len(header)} values, got {len(row)}"))
            continue
        cols, col = {}, 1
        for name, cell in zip(header, row, strict=True):
            cols[name] = col
            col += len(cell) + 1
        out.append((number, {h: c.strip() for h, c in zip(header, row, strict=True)}, cols))
    return out


def read_rates(path: Path, p: Problems) -> list[CsvRow]:
    out = []
    for line, row, cols in _rows(path, RATE_COLUMNS, (), p):
        mark = Mark(str(path), line, cols["rate_per_s"])
        try:
            rate = float(row["rate_per_s"])
            if not rate >= 0 or rate == float("inf"):
                raise ValueError
        except ValueError:
            p.errors.append(Problem(mark, "rate_per_s", f"expected requests per second (a "
                                    f"number >= 0), got {row['rate_per_s']!r}"))
            continue
        out.append(CsvRow((row["namespace"] or "default", row["service"]), rate, None,
                          Mark(str(path), line, cols["service"])))
    return out


def read_service_times(path: Path, p: Problems) -> list[CsvRow]:
    out = []
    for line, row, cols in _rows(path, TIME_COLUMNS, ("workers",), p):
        try:
            mean = parse_duration(row["service_time"])
            if mean <= 0:
                raise ValueError("a service time must be > 0")
        except ValueError as exc:
            p.errors.append(Problem(Mark(str(path), line, cols["service_time"]),
                                    "service_time", str(exc)))
            continue
        workers = None
        if row.get("workers"):
            try:
                workers = int(row["workers"])
                if not 1 <= workers <= MAX_WORKERS:  # past the bound: not an importer bug
                    raise ValueError
            except ValueError:
                p.errors.append(Problem(Mark(str(path), line, cols["workers"]), "workers",
                                        f"expected a whole number from 1 to {MAX_WORKERS:,}, "
                                        f"got {row['workers']!r}"))
                continue
        out.append(CsvRow((row["namespace"] or "default", row["deployment"]), mean, workers,
                          Mark(str(path), line, cols["deployment"])))
    return out


def read_calls(path: Path, p: Problems) -> list[CallRow]:
    """The ``--calls`` rows, checked on their own (names and ports are checked against
    the dump by :mod:`npsim.importer.calls`)."""
    out = []
    for line, row, cols in _rows(path, CALL_COLUMNS, CALL_OPTIONAL, p):
        marks = {name: Mark(str(path), line, col) for name, col in cols.items()}
        bad = [c for c in ("caller", "service") if not row[c]]
        if bad:
            p.errors.append(Problem(marks[bad[0]], bad[0], f"empty {bad[0]}: expected a "
                                    + ("workload (Deployment) name" if bad[0] == "caller"
                                       else "Service name")))
            continue
        count = 1
        if row.get("count"):
            try:
                count = int(row["count"])
                if not 1 <= count <= MAX_CALL_COUNT:
                    raise ValueError
            except ValueError:
                p.errors.append(Problem(marks["count"], "count", "expected a whole number "
                                        f"of calls from 1 to {MAX_CALL_COUNT}, got "
                                        f"{row['count']!r}"))
                continue
        port: int | str | None = row["port"] or None
        if port is not None and port.isdigit():
            port = int(port)
        out.append(CallRow(row["caller"], row["service"], port, count, marks))
    return out
