"""``npsim`` command line: run, validate, explain, import, sweep, plan, compare, ports.

Bad input (scenario, manifests, flags) prints every problem, with file, line, column and
field, and exits 2 without writing anything. Only this package reads argv. Each module
holds one family of subcommands; a module imports what its command needs when it runs,
so ``npsim --help`` and ``validate`` start without the numeric libraries.
"""

from __future__ import annotations

import click

from npsim.cli.dumps import import_
from npsim.cli.nodeports import ports
from npsim.cli.rules import explain
from npsim.cli.runs import compare, run, validate
from npsim.cli.sweeps import plan, sweep
from npsim.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="npsim")
def main() -> None:
    """Simulate Kubernetes NodePort traffic request by request."""


for _command in (validate, run, compare, explain, sweep, plan, import_, ports):
    main.add_command(_command)
