"""A helper forked before its work exists: it prepares once, makes the calls it is
handed later (sharing them with children of its own), answers in order, and gives
``None`` where it could not, so the caller makes that call itself. A helper never used
is ended.

The forking tests run in a fresh interpreter, as test_forked.py's do: forking is refused
while other threads run, and a test worker may hold threads an earlier test left."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

from npsim.parallel.standby import Standby

HEAD = """
import os
from functools import partial
from npsim.parallel.standby import Standby

PREPARED = []

def prepare():
    PREPARED.append(os.getpid())

def made(i):
    return {"value": i * 2, "pid": os.getpid(), "prepared": bool(PREPARED)}

def fails():
    raise RuntimeError("boom")
"""


def _in_fresh_process(code: str) -> object:
    """What ``code`` (which sets ``answer``) computes, in a new single-threaded Python."""
    script = HEAD + textwrap.dedent(code) + "\nimport json; print(json.dumps(answer))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_calls_are_made_by_the_prepared_helper_and_its_children_in_order() -> None:
    answer = _in_fresh_process("""
        standby = Standby(prepare)
        helper = standby.pid
        got = standby([partial(made, i) for i in range(3)])()
        standby.close()
        answer = {"got": got, "helper": helper, "parent": os.getpid(),
                  "prepared_here": bool(PREPARED)}
    """)
    got = answer["got"]
    assert [g["value"] for g in got] == [0, 2, 4]
    assert all(g["prepared"] for g in got)  # every call after the helper's preparation
    assert got[0]["pid"] == answer["helper"]  # the first in the helper, others in its children
    assert len({g["pid"] for g in got}) == 3 and answer["parent"] not in {g["pid"] for g in got}
    assert not answer["prepared_here"]


def test_a_failed_call_or_a_dead_helper_gives_none() -> None:
    answer = _in_fresh_process("""
        failed = Standby(prepare)([fails, partial(made, 1)])()

        def dies():
            os._exit(3)

        dead = Standby(dies)([partial(made, 1), partial(made, 2)])()
        answer = {"failed": [None if a is None else a["value"] for a in failed],
                  "dead": dead}
    """)
    assert answer == {"failed": [None, 2], "dead": [None, None]}


def test_calls_that_cannot_be_pickled_are_made_in_children_forked_then() -> None:
    answer = _in_fresh_process("""
        standby = Standby(prepare)
        got = standby([lambda: os.getpid(), lambda: 5])()
        answer = {"second": got[1], "first_elsewhere": got[0] != os.getpid(),
                  "helper_gone": standby.pid is None}
    """)
    assert answer == {"second": 5, "first_elsewhere": True, "helper_gone": True}


def test_an_unused_helper_is_ended_by_close() -> None:
    answer = _in_fresh_process("""
        standby = Standby(prepare)
        pid = standby.pid
        standby.close()
        standby.close()  # idempotent
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        answer = {"started": pid is not None, "alive": alive}
    """)
    assert answer == {"started": True, "alive": False}


def test_no_helper_while_other_threads_run_and_the_calls_are_then_made_here() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        standby = Standby(lambda: None)
        assert standby.pid is None
        assert standby([lambda: 1])() == [None]  # fork_calls refuses too: the caller makes it
    finally:
        stop.set()
        thread.join()
