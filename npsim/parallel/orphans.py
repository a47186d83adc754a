"""A child process that dies with its parent: the one request every process npsim forks
makes first (the pool's workers, the report's forked drawers, the standby helper), so
that a parent killed, even by SIGKILL, which runs no clean-up, leaves none of them
computing and writing on.

On Linux the kernel sends the child a signal when its parent thread ends
(``prctl(PR_SET_PDEATHSIG)``, see prctl(2)). A child whose parent died before it asked
has already been adopted by another process: the caller compares ``os.getppid()`` with
the parent it expects after asking.
"""

from __future__ import annotations

import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def kernel_kills_orphans() -> bool:
    """Ask for ``SIGKILL`` when this process's parent ends (``prctl(PR_SET_PDEATHSIG,
    SIGKILL)``); True if the kernel took the request, False elsewhere than Linux."""
    if not sys.platform.startswith("linux"):
        return False  # pragma: no cover - not Linux
    import ctypes  # in the child only: nothing to load where the children are made
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        return False
