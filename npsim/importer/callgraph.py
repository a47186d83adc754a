"""The workloads' call graph while the importer grows it, one call at a time, never with
a cycle (a request whose calls come back to its own workload would never end).

Edges are as the scenario loader draws them (:mod:`npsim.scenario.call_checks`): the
caller to every workload behind the called Service. Whether a new edge closes a cycle is
answered with an online topological order (Pearce and Kelly, "A dynamic topological sort
algorithm for directed acyclic graphs", ACM JEA 11, 2006): an edge that agrees with the
order needs no search; one that does not is checked by searching only the workloads
ordered between its ends, which are then reordered. A dump with thousands of proposals
thus costs about one step per proposal, not a walk of the whole graph each.
"""

from __future__ import annotations

from npsim.importer.plan import ScenarioPlan
from npsim.scenario.objects import SelectorIndex, Service, selector_matches


class CallGraph:
    def __init__(self, plan: ScenarioPlan) -> None:
        self._index = SelectorIndex(plan.deployments)
        self._labelled = [(w.name, w.labels) for w in plan.workloads if w.labels]
        self._backing: dict[str, list[str]] = {}
        self._out: dict[str, list[str]] = {}
        self._in: dict[str, list[str]] = {}
        self._order: dict[str, int] = {}  # a topological order: edges go up in it
        self._ends = [0, 0]  # the lowest and highest rank given

    def backing(self, svc: Service) -> list[str]:
        """The workloads whose pods the Service selects."""
        names = self._backing.get(svc.name)
        if names is None:
            names = [d.name for d in self._index.selected(svc.selector)]
            names += [n for n, labels in self._labelled if n not in names
                      and selector_matches(svc.selector, labels or {})]
            self._backing[svc.name] = names
        return names

    def add(self, caller: str, svc: Service) -> list[str] | None:
        """Add the call's edges, or add none and return the cycle one of them would
        close (``caller -> ... -> caller``)."""
        added: list[str] = []
        for target in self.backing(svc):
            if target in self._out.get(caller, ()):
                continue
            cycle = self.add_edge(caller, target)
            if cycle is not None:
                for t in added:  # taking edges out keeps the order topological
                    self._out[caller].remove(t)
                    self._in[t].remove(caller)
                return cycle
            added.append(target)
        return None

    def _rank(self, node: str, first: bool) -> int:
        """A node's rank; one not seen yet has no edge, so it goes first (a caller) or
        last (a callee), where its edge agrees with the order."""
        if node not in self._order:
            self._ends[0 if first else 1] += -1 if first else 1
            self._order[node] = self._ends[0 if first else 1]
        return self._order[node]

    def add_edge(self, x: str, y: str) -> list[str] | None:
        """Add ``x -> y``, or return the cycle it would close (``x -> y -> ... -> x``)."""
        hi, lo = self._rank(x, True), self._rank(y, False)
        if x == y:
            return [x, x]
        if lo > hi:  # agrees with the order
            self._link(x, y)
            return None
        parent: dict[str, str | None] = {y: None}  # forward from y, ranks up to x's
        stack = [y]
        while stack:
            node = stack.pop()
            for nxt in self._out.get(node, ()):
                if nxt == x:
                    path = [x, node]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])  # type: ignore[arg-type]
                    return [x, *reversed(path)]  # x -> y -> ... -> node -> x
                if nxt not in parent and self._order[nxt] < hi:
                    parent[nxt] = node
                    stack.append(nxt)
        forward = list(parent)
        seen = {x}  # backward from x, ranks down to y's
        stack = [x]
        while stack:
            node = stack.pop()
            for prev in self._in.get(node, ()):
                if prev not in seen and self._order[prev] > lo:
                    seen.add(prev)
                    stack.append(prev)
        backward = sorted(seen, key=self._order.__getitem__)
        forward.sort(key=self._order.__getitem__)
        ranks = sorted(self._order[n] for n in backward + forward)
        for node, rank in zip(backward + forward, ranks, strict=True):
            self._order[node] = rank
        self._link(x, y)
        return None

    def _link(self, x: str, y: str) -> None:
        self._out.setdefault(x, []).append(y)
        self._in.setdefault(y, []).append(x)
