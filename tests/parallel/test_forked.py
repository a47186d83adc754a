"""Calls made in forked children: their answers in order, and ``None`` for a child that
failed, so the caller makes that call itself and nothing is lost."""

from __future__ import annotations

import os
import threading

from npsim.parallel.forked import fork_calls


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value * 2


def test_each_call_answers_from_its_own_child_in_order() -> None:
    answers = fork_calls([lambda i=i: _pid_and(i) for i in range(3)])()
    assert [value for _, value in answers] == [0, 2, 4]
    pids = {pid for pid, _ in answers}
    assert len(pids) == 3 and os.getpid() not in pids


def _fails() -> int:
    raise RuntimeError("boom")


def _dies() -> int:
    os._exit(3)


def test_a_call_that_raises_or_a_child_that_dies_gives_none() -> None:
    assert fork_calls([_fails, lambda: 7, _dies])() == [None, 7, None]


def test_no_fork_while_other_threads_run() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert fork_calls([lambda: os.getpid()])() == [None]
    finally:
        stop.set()
        thread.join()
