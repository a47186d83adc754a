"""The importer's call graph refuses exactly the calls that close a cycle, and says
which, whatever order the calls come in."""

from __future__ import annotations

import numpy as np

from npsim.importer.callgraph import CallGraph
from npsim.importer.plan import ScenarioPlan
from npsim.scenario.calls_spec import find_cycle


def _is_cycle(path: list[str], edges: dict[str, list[str]]) -> bool:
    return path[0] == path[-1] and all(b in edges.get(a, []) for a, b in zip(path, path[1:],
                                                                             strict=False))


def test_an_edge_is_refused_exactly_when_it_closes_a_cycle() -> None:
    rng = np.random.default_rng(21)
    for _ in range(40):
        graph = CallGraph(ScenarioPlan([]))
        kept: dict[str, list[str]] = {}
        names = [f"w{i}" for i in range(int(rng.integers(2, 12)))]
        for _ in range(60):
            x, y = (str(v) for v in rng.choice(names, 2))
            if y in kept.get(x, []):
                continue
            trial = {k: list(v) for k, v in kept.items()}
            trial.setdefault(x, []).append(y)
            cycle = graph.add_edge(x, y)
            if find_cycle(trial) is None:
                assert cycle is None
                kept = trial
            else:
                assert cycle is not None and cycle[:2] == [x, y]
                assert _is_cycle(cycle, trial)


def test_a_self_call_is_a_cycle() -> None:
    assert CallGraph(ScenarioPlan([])).add_edge("web", "web") == ["web", "web"]
