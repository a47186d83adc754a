"""A forked helper started before its work exists, so that its own start-up (imports,
caches) overlaps with what this process does meanwhile; handed the work later, it makes
the calls, sharing them with forked children of its own, and sends the answers back.

For the report's figures of ``npsim run``: the helper imports matplotlib while this
process loads the scenario and simulates (0.45-0.5 CPU-s that no longer follow the
simulation), then
receives the calls with the run's frames (pickled through a pipe: about 25 ms for the
quick start's 12 MB; the caller hands over only small results, since big frames would
be copied instead of shared, and a fork after the run shares them for free:
:func:`npsim.parallel.forked.fork_calls`).

:meth:`Standby.__call__` has the same contract as ``fork_calls``: the answers in order,
``None`` for each call the helper could not make (it could not be started, died, or
the call raised); the caller then makes that call itself. The helper dies with this
process (``prctl(PR_SET_PDEATHSIG)`` on Linux), and :meth:`Standby.close` ends a helper
that was never used. While the helper is still preparing, handing it the calls waits
for it (a pipe holds 64 KB): on an idle machine it is ready long before the run ends.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from npsim.parallel.forked import can_fork, fork_calls
from npsim.parallel.orphans import kernel_kills_orphans


class Standby:
    """One forked helper, prepared and waiting for a list of calls (see the module)."""

    def __init__(self, prepare: Callable[[], object]) -> None:
        self.pid: int | None = None
        self._send: int | None = None  # this process's ends of the two pipes
        self._answer: int | None = None
        if not can_fork():
            return
        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            if stream is not None:
                stream.flush()
        calls_read, calls_write = os.pipe()
        answer_read, answer_write = os.pipe()
        owner = os.getpid()
        try:
            pid = os.fork()
        except OSError:  # no room for another process: the calls are made elsewhere
            for fd in (calls_read, calls_write, answer_read, answer_write):
                os.close(fd)
            return
        if pid == 0:
            os.close(calls_write)
            os.close(answer_read)
            _serve(prepare, calls_read, answer_write, owner)
        os.close(calls_read)
        os.close(answer_write)
        self.pid, self._send, self._answer = pid, calls_write, answer_read

    def __call__(self, calls: Sequence[Callable[[], Any]]) -> Callable[[], list[Any]]:
        """Hand ``calls`` to the helper; returns ``wait()``, each call's answer in order
        (``None`` where it failed). A helper that is gone or already used makes no call:
        they are made in children forked now (:func:`fork_calls`)."""
        if self._send is None or not calls:
            self.close()
            return fork_calls(calls)
        send, self._send = self._send, None
        try:
            with os.fdopen(send, "wb") as pipe:
                pickle.dump(list(calls), pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            self.close()  # died, or a call that cannot be pickled: made elsewhere
            return fork_calls(calls)
        return lambda: self._collect(len(calls))

    def _collect(self, count: int) -> list[Any]:
        answers: Any = None
        if self._answer is not None:
            with os.fdopen(self._answer, "rb") as pipe:
                self._answer = None
                try:
                    answers = pickle.load(pipe)  # noqa: S301 - our own child's answer
                except (EOFError, OSError, pickle.UnpicklingError, AttributeError,
                        ImportError):
                    answers = None
        self._reap()
        if not isinstance(answers, list) or len(answers) != count:
            return [None] * count
        return answers

    def close(self) -> None:
        """End the helper if it was not handed its calls (or is not done); idempotent."""
        for name in ("_send", "_answer"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                os.close(fd)
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> None:
        if self.pid is not None:
            pid, self.pid = self.pid, None
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _serve(prepare: Callable[[], object], calls_read: int, answer_write: int,
           owner: int) -> None:
    """In the helper: prepare, wait for the calls, make the first here and the others in
    forked children, send the answers; then exit without the parent's clean-up."""
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
        kernel_kills_orphans()
        if os.getppid() != owner:  # orphaned before the request was made
            return
        with contextlib.suppress(Exception):  # the calls then fail, and are made again
            prepare()
        with os.fdopen(calls_read, "rb") as pipe:
            try:
                calls = pickle.load(pipe)  # noqa: S301 - sent by our own parent
            except EOFError:  # not needed after all
                status = 0
                return
        wait = fork_calls(calls[1:])
        answers = [_made(calls[0]), *wait()]
        with os.fdopen(answer_write, "wb") as out:
            pickle.dump(answers, out, protocol=pickle.HIGHEST_PROTOCOL)
        status = 0
    except BaseException:  # noqa: BLE001 - the parent sees None and makes the calls itself
        status = 1
    finally:
        os._exit(status)


def _made(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception:  # noqa: BLE001 - None: the caller makes it again and meets the error
        return None
