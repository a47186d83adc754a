"""What ``npsim run`` was asked, in one value: its arguments and options as click read
them, gathered once by the command and handed down, instead of sixteen parameters
passed along one by one from the checks to the run, its folder and ``--each-node-down``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunRequest:
    """``npsim run``'s arguments, named as its options (``RunRequest(**options)``);
    nothing here is checked yet: the command checks them in the order it always has."""

    scenario: str  # the scenario file, as typed
    out: str | None  # --out: the result folder (None: the default one)
    force: bool  # --force: replace an existing result folder
    seed: int | None  # --seed: overrides run.seed
    replications: int | None  # --replications: overrides run.replications
    no_save: bool  # --no-save: print the summary, write nothing
    no_report: bool  # --no-report: no figures/ nor report.html
    settings: tuple[str, ...]  # --set PATH=VALUE, in order
    jobs: int | None  # --jobs: processes for replications and figures
    checks: tuple[str, ...]  # --check texts, parsed by the command
    as_json: bool  # --json: the summary as JSON on stdout
    each_node_down: bool  # --each-node-down
    each_zone_down: bool  # --each-zone-down
    max_requests: int | None  # --max-requests
    max_memory: int | None  # --max-memory (bytes)
    allow_outside_files: bool  # --allow-outside-files

    @property
    def draws_no_figures(self) -> bool:
        """Whether this run draws no report figures in its own folder: nothing saved,
        ``--no-report``, or one run per node (zone) down, whose cases are drawn one
        after another."""
        return self.no_save or self.no_report or self.each_node_down or self.each_zone_down
