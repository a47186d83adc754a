"""Calls made in forked children: their answers in order, and ``None`` for a child that
failed, so the caller makes that call itself and nothing is lost.

The forking tests run in a fresh interpreter: fork_calls refuses to fork while other
threads run, and a test worker may hold threads an earlier test left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

from npsim.parallel.forked import fork_calls


def _in_fresh_process(code: str) -> object:
    """What ``code`` (which sets ``answer``) computes, in a new single-threaded Python."""
    script = textwrap.dedent(code) + "\nimport json; print(json.dumps(answer))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_call_answers_from_its_own_child_in_order() -> None:
    answer = _in_fresh_process("""
        import os
        from npsim.parallel.forked import fork_calls
        got = fork_calls([lambda i=i: (os.getpid(), i * 2) for i in range(3)])()
        answer = {"values": [v for _, v in got], "pids": [p for p, _ in got],
                  "parent": os.getpid()}
    """)
    assert answer["values"] == [0, 2, 4]
    assert len(set(answer["pids"])) == 3 and answer["parent"] not in answer["pids"]


def test_a_call_that_raises_or_a_child_that_dies_gives_none() -> None:
    answer = _in_fresh_process("""
        import os
        from npsim.parallel.forked import fork_calls

        def fails():
            raise RuntimeError("boom")

        answer = fork_calls([fails, lambda: 7, lambda: os._exit(3)])()
    """)
    assert answer == [None, 7, None]


def test_no_fork_while_other_threads_run() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert fork_calls([lambda: os.getpid()])() == [None]
    finally:
        stop.set()
        thread.join()
