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


def test_forking_keeps_what_the_imports_froze_and_children_freeze_their_copy() -> None:
    # npsim's imports freeze their objects (npsim/api.py) so the exit and each
    # replication's collection skip them; forking children must not undo that in the
    # parent, and each child freezes what it inherited (no copy-on-write by its collector)
    answer = _in_fresh_process("""
        import gc
        import npsim.api  # noqa: F401  (freezes its imports)
        from npsim.parallel.forked import fork_calls
        from npsim.parallel.pool import run_tasks

        def frozen_in_worker(_: int) -> int:
            return gc.get_freeze_count()

        before = gc.get_freeze_count()
        in_children = fork_calls([gc.get_freeze_count, gc.get_freeze_count])()
        after_fork = gc.get_freeze_count()
        in_workers = [n for _, n in run_tasks(frozen_in_worker, [0, 1], jobs=2)]
        answer = {"before": before, "children": in_children, "after_fork": after_fork,
                  "after_pool": gc.get_freeze_count(), "workers": in_workers}
    """)
    assert answer["before"] > 10_000
    assert answer["after_fork"] == answer["after_pool"] == answer["before"]
    assert all(count >= answer["before"] for count in answer["children"])
    assert all(count >= answer["before"] for count in answer["workers"])
