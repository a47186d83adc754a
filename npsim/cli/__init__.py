"""``npsim`` command line: run, validate, explain, import, sweep, plan, compare, ports.

Bad input (scenario, manifests, flags) prints every problem, with file, line, column and
field, and exits 2 without writing anything. Only this package reads argv. Each module
holds one family of subcommands; a module imports what its command needs when it runs,
so ``npsim --help`` and ``validate`` start without the numeric libraries. The group
imports a subcommand's module only when that command is named (or ``--help`` lists
them all), so ``npsim --version`` loads click and nothing of the simulator (issue 23).
"""

from __future__ import annotations

import importlib

import click

from npsim.version import __version__

#: each subcommand's module and function: imported when the command is named
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("npsim.cli.runs", "validate"), "run": ("npsim.cli.runs", "run"),
    "compare": ("npsim.cli.runs", "compare"), "explain": ("npsim.cli.rules", "explain"),
    "sweep": ("npsim.cli.sweeps", "sweep"), "plan": ("npsim.cli.sweeps", "plan"),
    "import": ("npsim.cli.dumps", "import_"), "ports": ("npsim.cli.nodeports", "ports")}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's documented
    "lazily loading subcommands" pattern): the same commands, names and help text."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attr = COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="npsim")
def main() -> None:
    """Simulate Kubernetes NodePort traffic request by request."""
