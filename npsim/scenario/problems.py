"""Problems found in a scenario, each pointing at file, line, column and field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from npsim.scenario.yamlio import Mark, format_path, locate


@dataclass(frozen=True)
class Problem:
    mark: Mark | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.mark.file}:{self.mark.line}:{self.mark.column}" if self.mark else ""
        return ": ".join(part for part in (where, self.path, self.message) if part)


MAX_REPORTED = 100  # problems printed; the rest are counted


class ScenarioError(Exception):
    """Every problem found in a scenario (the CLI prints them and exits 2)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self.report())

    def report(self) -> str:
        n = len(self.problems)
        head = f"{n:,} problem{'s' if n != 1 else ''} in the scenario; nothing was run:"
        lines = [head, *(f"  {p}" for p in self.problems[:MAX_REPORTED])]
        if n > MAX_REPORTED:  # 100,000 Services in a full NodePort range: 97,233 lines
            lines.append(f"  ... and {n - MAX_REPORTED:,} more (the first {MAX_REPORTED} "
                         "are shown; ScenarioError.problems holds every one)")
        return "\n".join(lines)


class Problems:
    """Collects problems (and warnings) against a marked YAML tree."""

    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []

    def at(self, tree: Any, loc: Sequence[Any], message: str, prefix: str = "") -> None:
        self.errors.append(self.problem(tree, loc, message, prefix))

    def warn(self, tree: Any, loc: Sequence[Any], message: str, prefix: str = "") -> None:
        self.warnings.append(self.problem(tree, loc, message, prefix))

    @staticmethod
    def problem(tree: Any, loc: Sequence[Any], message: str, prefix: str = "") -> Problem:
        mark, found = locate(tree, loc)
        # name the full requested path even where the file stops short of it
        path = format_path(list(loc)) if loc else format_path(found)
        return Problem(mark, f"{prefix}{path}" if prefix else path, message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ScenarioError(in_file_order(self.errors))


def in_file_order(problems: Sequence[Problem]) -> list[Problem]:
    """Problems by file (in order of first mention), line and column; unplaced ones first."""
    files: dict[str, int] = {}
    for problem in problems:
        if problem.mark is not None:
            files.setdefault(problem.mark.file, len(files))

    def key(problem: Problem) -> tuple[int, int, int]:
        if problem.mark is None:
            return (-1, 0, 0)
        return (files[problem.mark.file], problem.mark.line, problem.mark.column)

    return sorted(problems, key=key)
