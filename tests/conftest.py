"""Shared helpers for the simulation-core tests: build small scenarios in Python.

``scenario_from_dict`` round-trips the data through YAML text and validates it as a
scenario *file*, so every duration and rate must carry its unit ("1ms", "700/s"); a
bare ``0`` is the only unitless duration accepted. :func:`fmt_duration` and
:func:`fmt_rate` write exact values (``repr`` round-trips).
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

import npsim


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what the imports and the collection made (about 270,000 objects) out of
    the cyclic collector's sight: ``npsim.run`` collects once per replication, and
    walking that heap every time cost more than a small run's simulation (the N-1
    planner search: 2.2 s of CPU, 0.9 s frozen). Objects made later are collected as
    before (tests/sim/test_release.py still sees a run freed)."""
    gc.collect()
    gc.freeze()
    _THREADS_BEFORE.update(t.ident for t in threading.enumerate())


#: the threads the test process had once the tests were collected
_THREADS_BEFORE: set[int | None] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):  # noqa: ANN201
    """A test module must end with the threads it started: npsim forks a worker pool
    only from a single-threaded process (npsim/parallel/forked.py), so a thread left
    behind (a Dask client's, an executor's) changes how later tests in the same test
    worker run. Checked once the module's fixtures are torn down (two cheap calls)."""
    result = yield
    if nextitem is None or nextitem.path != item.path:
        left = [t for t in threading.enumerate() if t.ident not in _THREADS_BEFORE]
        for thread in left:
            thread.join(timeout=2.0)  # one that is ending anyway is not a leak
        left = [t for t in left if t.is_alive()]
        _THREADS_BEFORE.update(t.ident for t in left)  # reported once, by the module
        assert not left, f"{item.path.name} left threads running: {[t.name for t in left]}"
    return result


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameter
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Modules with a slow test come first, each kept whole (in its own order), so that
    under pytest-xdist (``--dist loadgroup`` in pyproject's addopts: the next test goes
    to whichever worker is free) the long tests start at once and the short ones fill
    the workers in at the end, instead of one long test starting last and running alone.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: order within kept
    if getattr(config, "workerinput", None) is not None and config.getvalue("loadgroup"):
        _group_shared_fixtures(items)


def _group_shared_fixtures(items: list[pytest.Item]) -> None:
    """The tests of a module that share a module- or class-scoped fixture of ours go to
    one worker (as one ``loadgroup`` unit): given to both workers, each worker computed
    the fixture (a run of seconds, in the queueing-theory modules) for its share of the
    tests. pytest-xdist 3.8 groups by a ``@group`` suffix it writes into
    ``item._nodeid``, which pytest 9 no longer reads; the suffix is written into the
    node id pytest 9 reads (``item._id``) here instead."""
    from _pytest.nodeid import NodeId

    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        shared = info is not None and any(
            defs[-1].scope in ("class", "module", "package")
            and defs[-1].baseid.startswith("tests")
            for defs in info.name2fixturedefs.values())
        if shared and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{item.nodeid.split('::')[0]}")


SERVICE = "web"
DEPLOYMENT = "web"
APP_LABELS = {"app": "web"}


def fmt_duration(seconds: float) -> str:
    """A duration in seconds written with a unit, exactly."""
    return f"{float(seconds)!r}s"


def fmt_rate(per_second: float) -> str:
    return f"{float(per_second)!r}/s"


def exponential(mean_s: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": fmt_duration(mean_s)}


def constant(value_s: float) -> dict[str, Any]:
    return {"dist": "constant", "value": fmt_duration(value_s)}


ZERO = {"dist": "constant", "value": 0}


def service_manifest(name: str = SERVICE, labels: Mapping[str, str] = APP_LABELS,
                     node_port: int = 30080) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "NodePort",
            "selector": dict(labels),
            "ports": [{"port": 80, "targetPort": 80, "nodePort": node_port}],
        },
    }


def deployment_manifest(name: str = DEPLOYMENT, replicas: int = 1,
                        labels: Mapping[str, str] = APP_LABELS) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": name, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def client(
    name: str = "load",
    *,
    rate: float | None = None,
    schedule: Sequence[tuple[float, float]] | None = None,
    users: int | None = None,
    think: Mapping[str, Any] | None = None,
    entry: Any = "random",
    requests_per_connection: int = 1,
    rtt: Mapping[str, Any] = ZERO,
    source_ips: int | None = None,
    service: str = SERVICE,
) -> dict[str, Any]:
    """One client population. Give exactly one of ``rate`` (per second), ``schedule``
    ([(at_s, rate_per_s), ...]) or ``users`` (closed loop, with ``think``)."""
    if rate is not None:
        arrival: dict[str, Any] = {"rate": fmt_rate(rate)}
    elif schedule is not None:
        arrival = {"schedule": [{"at": fmt_duration(at) if at else 0, "rate": fmt_rate(r)}
                                for at, r in schedule]}
    else:
        assert users is not None, "give rate, schedule or users"
        arrival = {"users": users}
        if think is not None:
            arrival["thinkTime"] = dict(think)
    out: dict[str, Any] = {
        "name": name,
        "service": service,
        "arrival": arrival,
        "entry": entry,
        "requestsPerConnection": requests_per_connection,
        "rtt": dict(rtt),
    }
    if source_ips is not None:
        out["sourceIPs"] = source_ips
    return out


def scenario_dict(
    *,
    nodes: int | Sequence[str] = 1,
    replicas: int = 1,
    workers: int = 1,
    service_time: Mapping[str, Any] | None = None,
    queue_limit: int | None = None,
    placement: str | Mapping[str, int] = "spread",
    clients: Sequence[Mapping[str, Any]] | None = None,
    duration: float | None = None,
    requests: int | None = None,
    warmup: float = 0.0,
    seed: int = 1,
    replications: int = 1,
    network: Mapping[str, Any] | None = None,
    proxy_mode: str = "iptables",
    zero_proxy_cost: bool = True,
    name: str = "test",
) -> dict[str, Any]:
    """A scenario as plain data: N nodes, one NodePort Service, one Deployment.

    Network hops default to zero and so does kube-proxy's first-packet cost (a single
    all-zero ``costModel`` point): a queueing-theory setup. Pass ``network`` to override
    the hops (keys ``sameNode``, ``sameZone``, ``crossZone``) and
    ``zero_proxy_cost=False`` to keep npsim's published cost tables.
    """
    node_names = ([f"node-{i + 1}" for i in range(nodes)] if isinstance(nodes, int)
                  else list(nodes))
    workload: dict[str, Any] = {
        "workers": workers,
        "serviceTime": dict(service_time or exponential(1e-3)),
        "placement": placement if isinstance(placement, str) else dict(placement),
    }
    if queue_limit is not None:
        workload["queueLimit"] = queue_limit
    run: dict[str, Any] = {"warmup": fmt_duration(warmup) if warmup else 0, "seed": seed,
                           "replications": replications}
    if duration is not None:
        run["duration"] = fmt_duration(duration)
    if requests is not None:
        run["requests"] = requests
    cluster: dict[str, Any] = {
        "proxyMode": proxy_mode,
        "nodes": [{"name": n} for n in node_names],
        "network": dict(network or {"sameNode": ZERO, "sameZone": ZERO, "crossZone": ZERO}),
    }
    if zero_proxy_cost:
        cluster["costModel"] = {proxy_mode: {0: [0, 0, 0, 0]}}
    return {
        "name": name,
        "cluster": cluster,
        "manifests": [service_manifest(), deployment_manifest(replicas=replicas)],
        "workloads": {DEPLOYMENT: workload},
        "clients": list(clients or [client(rate=100.0)]),
        "run": run,
    }


def build(**kwargs: Any) -> npsim.Scenario:
    """:func:`scenario_dict` validated into a :class:`npsim.Scenario`."""
    return npsim.scenario_from_dict(scenario_dict(**kwargs))


def simulate(**kwargs: Any) -> npsim.Result:
    return npsim.run(build(**kwargs))


# --- scenario files ---------------------------------------------------------------------


def scenario_file(folder: Path, text: str, name: str = "scenario.yaml") -> Path:
    """``text`` written as the scenario file ``folder/name`` (what the loader and the CLI
    read; problems are reported as ``name:line:column``)."""
    path = folder / name
    path.write_text(text, "utf-8")
    return path


def load_text(folder: Path, text: str) -> npsim.Scenario:
    """``text`` loaded as a scenario file (see :func:`scenario_file`)."""
    return npsim.load_scenario(scenario_file(folder, text))


def problems_of(folder: Path, text: str) -> str:
    """The report of the :class:`npsim.ScenarioError` that loading ``text`` as a scenario
    file raises (the test fails if it loads)."""
    with pytest.raises(npsim.ScenarioError) as caught:
        load_text(folder, text)
    return caught.value.report()


@pytest.fixture
def make_scenario():
    """The :func:`build` helper as a fixture, for tests that prefer injection."""
    return build


# --- statistics -----------------------------------------------------------------------


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(mean, half-width) of a Student-t confidence interval over replication means."""
    x = np.asarray(values, dtype=float)
    assert len(x) >= 2 and not np.isnan(x).any()
    half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def per_replication_mean(frame: Any, column: str) -> np.ndarray:
    """Mean of ``column`` over completed, post-warm-up requests, one value per replication."""
    done = frame[(~frame["warmup"]) & (frame["outcome"] == "completed")]
    return done.groupby("replication")[column].mean().to_numpy()


def assert_matches_theory(values: Sequence[float] | np.ndarray, theory: float, *,
                          rel_tol: float = 0.03, max_rel_half: float = 0.05,
                          what: str = "") -> None:
    """Theory must lie in the 95% t-interval over replications (widened by ``rel_tol``
    of the theory value), and the interval must be narrow enough to mean something."""
    mean, half = t_interval(values)
    detail = (f"{what}: simulated {mean:.6g} +- {half:.3g} (95% CI, {len(values)} reps), "
              f"theory {theory:.6g}")
    assert half <= max_rel_half * theory, f"CI too wide to test anything. {detail}"
    assert abs(mean - theory) <= half + rel_tol * theory, detail


def run_bundled(name: str, duration: float, warmup: float) -> npsim.Result:
    """Run a bundled scenario for a shorter time (tests of figures and reports)."""
    scenario = npsim.bundled(name)
    scenario.run.warmup, scenario.run.duration = warmup, duration
    return npsim.run(scenario)


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (Linux)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def pool_workers(pid: int) -> list[int]:
    """The pool's worker processes under ``pid``: forked copies of it (same command
    line), directly or through a fork server; not its resource tracker."""
    from pathlib import Path

    children = process_tree()

    def cmdline(p: int) -> bytes:
        try:
            return Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            return b""

    own = cmdline(pid)
    direct = children.get(pid, [])
    servers = [c for c in direct if b"forkserver" in cmdline(c)]
    return ([c for c in direct if cmdline(c) == own]
            + [w for server in servers for w in children.get(server, [])])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (workers, fork server, resource tracker)."""
    children, found, todo = process_tree(), [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting to be reaped is not)."""
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until_gone(pids: Sequence[int], seconds: float = 20.0) -> list[int]:
    """Poll until none of ``pids`` runs; returns those still running after ``seconds``."""
    import time

    deadline = time.monotonic() + seconds
    alive = [p for p in pids if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if running(p)]
    return alive
