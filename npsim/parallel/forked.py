"""A few calls run at once in forked children of this process, their answers sent back
through pipes, while this process goes on with its own work.

For work after a run whose inputs are already in memory (the report's figures): a
forked child sees them as they are, with nothing pickled on the way in, and only its
answer (a few PNGs) comes back. There is no pool to start or keep: one child per call,
each gone when it has answered.

A child that cannot be forked safely (no ``fork`` on this system, or other Python
threads running, which may hold locks a child would inherit held) or that dies
without an answer gives ``None`` for its call: the caller then does that call itself,
so nothing is lost, only the time. A child dies with this process (as the pool's
workers do: ``prctl(PR_SET_PDEATHSIG)`` on Linux), never computing on after it.
"""

from __future__ import annotations

import gc
import os
import pickle
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from npsim.parallel.orphans import kernel_kills_orphans


def can_fork() -> bool:
    """Whether this process may fork a child that runs Python (see the module's note)."""
    return hasattr(os, "fork") and threading.active_count() == 1


def fork_calls(calls: Sequence[Callable[[], Any]]) -> Callable[[], list[Any]]:
    """Start each call in a forked child now; returns ``wait()``, which gives each call's
    answer in order, ``None`` where the child failed or could not be started (the
    caller then makes that call itself, and meets its exception, if any, where it is
    understood)."""
    if not calls or not can_fork():
        return lambda: [None] * len(calls)
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        if stream is not None:
            stream.flush()
    owner = os.getpid()
    children: list[tuple[int, int] | None] = []
    for call in calls:
        children.append(_start(call, owner))
    return lambda: [_collect(child) for child in children]


def _start(call: Callable[[], Any], owner: int) -> tuple[int, int] | None:
    """Fork one child making ``call``: its pid and the pipe its answer comes through."""
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no room for another process: the caller makes the call
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the child: answer and leave without the parent's clean-up
        # the child's collector leaves what it inherited alone (no copy of every page it
        # would touch); frozen here, not in the parent, whose unfreeze would also undo
        # what npsim's imports froze (npsim/api.py)
        gc.freeze()
        os.close(read)
        _answer(call, write, owner)
    os.close(write)
    return pid, read


def _answer(call: Callable[[], Any], write: int, owner: int) -> None:
    """In the child: the call's answer, pickled into the pipe; exit 0, or 1 on failure."""
    status = 1
    try:
        kernel_kills_orphans()
        if os.getppid() == owner:  # not orphaned before the request was made
            data = pickle.dumps(call(), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write, "wb") as out:
                out.write(data)
            status = 0
    except BaseException:  # noqa: BLE001 - the parent redoes the call and sees the error
        status = 1
    finally:
        os._exit(status)


def _collect(child: tuple[int, int] | None) -> Any:
    """The child's answer (read to the end, then the child reaped), or None."""
    if child is None:
        return None
    pid, read = child
    chunks = []
    with os.fdopen(read, "rb") as pipe:
        while chunk := pipe.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not chunks:
        return None
    try:
        return pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's answer
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
