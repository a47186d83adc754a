"""``python -m npsim.cli``: the ``npsim`` command without its installed script."""

from npsim.cli import main

main()
