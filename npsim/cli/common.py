"""What every ``npsim`` command shares: loading a scenario or exiting 2 with every
problem, the limit and job options, ``--set`` changes, and the usage error."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from npsim.scenario.problems import ScenarioError  # light: yaml only

if TYPE_CHECKING:  # heavy modules are imported by the command that needs them
    from npsim.scenario.scenario import Scenario

EXIT_BAD_INPUT = 2


def load_or_exit(path: str, allow_outside_files: bool = False) -> Scenario:
    from npsim.scenario.loader import load_scenario

    try:
        scenario = load_scenario(path, allow_outside_files=allow_outside_files)
    except ScenarioError as exc:
        refuse(exc.report())
    for warning in scenario.warnings:
        click.echo(f"warning: {warning}", err=True)
    return scenario


def preflight_or_exit(scenario: Scenario, max_requests: int | None, max_memory: int | None,
                      until: float | None = None) -> Any:
    """The checks a run needs before it starts (limits, addresses): exit 2 if any fails;
    the warnings they add (pods left Pending) are printed. ``until``: the run stops there
    (``explain --at``)."""
    from npsim.preflight import preflight

    before = len(scenario.warnings)
    try:
        estimate = preflight(scenario, max_requests, max_memory, until=until)
    except ScenarioError as exc:
        refuse(exc.report())
    for warning in scenario.warnings[before:]:
        click.echo(f"warning: {warning}", err=True)
    return estimate


class Size(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from npsim.units import parse_size

        try:
            size = parse_size(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size <= 0:
            self.fail("must be > 0", param, ctx)
        return size


OUTSIDE_FILES_OPTION = click.option(
    "--allow-outside-files", is_flag=True,
    help="Read manifest and sample files outside the scenario's folder too.")


def limit_options(command: Any) -> Any:
    """--max-requests, --max-memory and --allow-outside-files (run and validate)."""
    command = OUTSIDE_FILES_OPTION(command)
    command = click.option(
        "--max-memory", type=Size(), default=None,
        help="Refuse runs estimated to need more memory (e.g. 16GiB; default: half of "
             "this machine's; also run.limits.maxMemory).")(command)
    return click.option(
        "--max-requests", type=click.IntRange(min=1), default=None,
        help="Refuse runs estimated to generate more requests, all replications "
             "together (default 100,000,000; also run.limits.maxRequests).")(command)


JOBS_OPTION = click.option("--jobs", type=click.IntRange(min=1), default=None,
                            help="Processes to use (default: every core).")


SET_OPTION = click.option(
    "--set", "settings", multiple=True, metavar="PATH=VALUE",
    help="Change a scenario key, e.g. --set workloads.nginx.workers=8 "
         "(YAML key path and value; repeatable).")


def EACH_DOWN_OPTIONS(command: Any) -> Any:  # noqa: N802 - a decorator like JOBS_OPTION
    """--each-node-down and --each-zone-down (run, sweep, plan)."""
    command = click.option(
        "--each-zone-down", is_flag=True,
        help="As --each-node-down, one zone (every node in it) at a time.")(command)
    return click.option(
        "--each-node-down", is_flag=True,
        help="Run once per node with it down from the start (detected: kube-proxies and "
             "balancers know; not yet evicted) and report the worst case.")(command)


def each_down(each_node_down: bool, each_zone_down: bool) -> str | None:
    """``node``, ``zone`` or None from the two flags (not both)."""
    if each_node_down and each_zone_down:
        usage("--each-node-down and --each-zone-down: give one of them")
    return "node" if each_node_down else "zone" if each_zone_down else None


def with_settings(scenario: Scenario, settings: tuple[str, ...]) -> Scenario:
    """``--set PATH=VALUE`` changes, validated like the file (exit 2 naming the path)."""
    if not settings:
        return scenario
    from npsim.scenario.changes import ChangeError, parse_assignment

    changes = {}
    for text in settings:
        try:
            path, value = parse_assignment(text)
        except ChangeError as exc:
            usage(str(exc))
        changes[path] = value
    try:
        changed = scenario.with_changes(changes)
    except ScenarioError as exc:
        refuse(exc.report().replace("in the scenario", "in the --set changes", 1))
    known = {w.message for w in scenario.warnings}
    for warning in changed.warnings:  # what the changes brought (e.g. a key ignored)
        if warning.message not in known:
            click.echo(f"warning: --set: {warning.path}: {warning.message}", err=True)
    return changed


MAX_OUT_NAME = 255 - len(".npsim-12345678.tmp") - 1  # NAME_MAX less npsim's own additions


def settings_folder(name: str, settings: tuple[str, ...]) -> str:
    """The result folder name of a run with ``--set`` changes and no ``--out``:
    ``<name>--set-<path>=<value>`` per change, sorted by path (the last of a path given
    twice wins, as in the run), never the baseline's ``<name>``. Characters a folder name
    should not carry become ``_``; when that (or the length limit) loses anything, a
    digest of the exact changes is added, so two different change sets never share a
    folder."""
    import hashlib
    import re

    from npsim.scenario.changes import parse_assignment

    changes: dict[str, str] = {}
    for text in settings:  # already checked by with_settings
        path, _ = parse_assignment(text)
        changes[path] = text.partition("=")[2].strip()
    exact = "".join(f"--set-{p}={v}" for p, v in sorted(changes.items()))
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", exact)
    digest = hashlib.sha256(exact.encode()).hexdigest()[:10]
    folder = name + safe
    if safe != exact or len(folder.encode()) > MAX_OUT_NAME:
        folder = f"{folder[:MAX_OUT_NAME - 12]}-{digest}"
    return folder


def check_writable(target: Path) -> None:
    """Fail before a long run, not after it, when the result folder cannot be made."""
    too_long = [part for part in Path(os.path.abspath(target)).parts
                if len(part.encode()) > MAX_OUT_NAME]
    if too_long:  # the hidden temporary folder beside it (.NAME.npsim-*.tmp) must fit too
        usage(f"--out {str(target)[:80]}...: a folder name of {len(too_long[0].encode())} "
               f"bytes; at most {MAX_OUT_NAME}")
    parent = Path(os.path.abspath(target)).parent
    try:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    except OSError as exc:
        usage(f"--out {target}: {exc.strerror or exc}")
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        usage(f"--out {target}: cannot create a folder under {parent} (not a writable "
               "directory)")


def refuse(problems: str) -> NoReturn:
    """Bad input: print what is wrong and exit 2, having written nothing."""
    click.echo(problems, err=True)
    sys.exit(EXIT_BAD_INPUT)


def usage(message: str) -> NoReturn:
    refuse(f"error: {message}")
