"""Reports: ``report.html`` with ``figures/`` for one run, and side-by-side comparisons.

Each is imported when first used (PEP 562): a command that only writes a run's page
does not load what the comparison draws with, and a run whose figures are drawn on
other processes (:mod:`npsim.report.drawing`) never loads matplotlib itself."""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {"compare_table": "compare", "write_compare_report": "compare",
         "write_run_report": "run_report", "write_sweep_report": "sweep_report"}

__all__ = ["compare_table", "write_compare_report", "write_run_report", "write_sweep_report"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'npsim.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"npsim.report.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
