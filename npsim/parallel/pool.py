"""One way to run independent simulation tasks in parallel: a process pool, or a Dask
cluster when one machine is not enough.

Used for the replications of one ``npsim run --jobs N`` and for the runs of a sweep.
Every task is deterministic on its own (seed, replication, variant), so results never
depend on how many processes ran them or in which order they finished.

Workers are forked from this process when it runs no other Python thread (they start
at once, npsim already imported); otherwise (a notebook with Dask or other threads
running) from a fork server that imports npsim once, since forking a process whose
threads may hold locks is not safe.

Workers die with the process that started them: killed (even by SIGKILL, which runs no
clean-up), it leaves no worker computing and writing on. On Linux a forked worker asks
the kernel for SIGKILL when its parent ends (``prctl(PR_SET_PDEATHSIG)``, see prctl(2));
a fork server's worker, whose parent is the server, waits on a pidfd of the process
that made the pool instead.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from npsim.parallel.orphans import kernel_kills_orphans

T = TypeVar("T")
R = TypeVar("R")


class WorkerDied(RuntimeError):
    """A worker process ended without an answer (killed, out of memory): the tasks it
    and its peers had in hand are lost; finished ones are not."""


def default_jobs() -> int:
    """Every core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _die_with_parent(owner: int, forked: bool) -> None:
    """Worker initializer: end this worker when ``owner``, the process that made the
    pool, ends.

    A worker forked from ``owner`` asks the kernel for SIGKILL when its parent dies;
    one that died before the request was made is caught by ``getppid()`` afterwards
    (an orphan is adopted by another process). A fork server's worker is the server's
    child, and the server lives as long as any worker holds its pipe: such a worker
    watches ``owner`` itself, from a thread waiting on a pidfd (pidfd_open(2))."""
    # the worker's collector leaves what it inherited alone (no copy-on-write copy of
    # every page it would touch); frozen here, not around the parent's fork, whose
    # unfreeze would also undo what npsim's imports froze (npsim/api.py)
    gc.freeze()
    if forked and kernel_kills_orphans() and os.getppid() == owner:
        return
    if forked and os.getppid() != owner:
        os._exit(1)
    kernel_kills_orphans()  # the fork server's death too
    threading.Thread(target=_watch, args=(owner,), daemon=True,
                     name="npsim-owner-watch").start()


def _watch(owner: int) -> None:
    """Exit this process when ``owner`` has ended."""
    import select
    import time

    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # pragma: no cover - no pidfds: poll the pid
        while _exists(owner):
            time.sleep(0.5)
        os._exit(1)
    select.select([fd], [], [])  # readable once the process has ended
    os._exit(1)


def _exists(pid: int) -> bool:  # pragma: no cover - systems without pidfds
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _context(fn: Callable[..., object]) -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([fn.__module__])  # the task's module and what it imports
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - not Unix


def run_tasks(fn: Callable[[T], R], tasks: Sequence[T], jobs: int | None = None,
              client: Any = None) -> Iterator[tuple[int, R]]:
    """Yield ``(index, fn(tasks[index]))`` as tasks finish (in any order).

    ``jobs=1`` runs in this process; ``client`` (a ``dask.distributed.Client``) sends the
    tasks to its cluster instead of a local pool. An exception raised by ``fn`` is
    raised here; a worker process that dies raises :class:`WorkerDied` after the tasks
    that finished were yielded.
    """
    if not tasks:
        return
    if client is not None:
        from npsim.parallel.on_dask import run_on_dask

        yield from run_on_dask(fn, tasks, client)
        return
    jobs = default_jobs() if jobs is None else jobs
    if jobs <= 1 or len(tasks) == 1:
        for i, task in enumerate(tasks):
            yield i, fn(task)
        return
    context = _context(fn)
    forked = context.get_start_method() == "fork"
    with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context,
                             initializer=_die_with_parent, initargs=(os.getpid(), forked)
                             ) as pool:
        pending = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        continue  # reported once below, after the finished ones
                    yield i, result
                if any(f.done() and isinstance(f.exception(), BrokenProcessPool)
                       for f in done):
                    lost = len(pending) + sum(1 for f in done if f.exception() is not None)
                    raise WorkerDied(f"a worker process died; {lost} unfinished task(s) "
                                     "were lost")
        finally:
            for future in pending:
                future.cancel()
