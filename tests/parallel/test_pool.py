"""The process pool of ``--jobs``: its workers end with the process that started them,
even when that process is killed with SIGKILL (no clean-up runs), under both the fork
and the fork-server start methods."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import descendants, pool_workers, process_tree, wait_until_gone

from npsim.parallel.pool import run_tasks

# tasks that never finish on their own: only the death of the parent can end the workers
SCRIPT = """
import sys, threading, time
from npsim.parallel.pool import run_tasks
if sys.argv[1] == "forkserver":  # another thread running: the pool uses a fork server
    threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
for _ in run_tasks(time.sleep, [600.0] * 3, jobs=2):
    pass
"""

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(),
                                reason="needs /proc to find worker processes")


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_workers_die_when_their_parent_is_killed(method: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, method],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    everything: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(pool_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = pool_workers(proc.pid)
        assert len(workers) == 2, "the pool's two workers did not start"
        if method == "forkserver":  # the workers are the server's children, not its own
            assert set(workers).isdisjoint(process_tree().get(proc.pid, []))
        everything = descendants(proc.pid)
        time.sleep(0.3)  # the workers have run their initializer and wait for tasks
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert wait_until_gone(everything) == [], "processes outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in wait_until_gone(everything, 0):  # a failed check leaves no stray process
            os.kill(pid, signal.SIGKILL)


def test_results_do_not_depend_on_the_number_of_processes() -> None:
    tasks = list(range(12))
    one = dict(run_tasks(abs, tasks, jobs=1))
    two = dict(run_tasks(abs, [-t for t in tasks], jobs=2))
    assert one == two == {i: i for i in tasks}
