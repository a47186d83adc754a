"""What the node lifecycle controller knows of each node (npsim/sim/controlplane.py)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(slots=True)
class NodeHealth:
    """What the node lifecycle controller knows of one node."""

    # the kubelet's lease renewals: first_renewal + k * interval; None until the
    # controller first needs it (its phase is drawn then, from the node's own stream)
    first_renewal: float | None = None
    kubelet_up: bool = True
    condition: str = "Ready"  # Ready | Unknown
    tainted: bool = False
    generation: int = 0  # bumps cancel timers set for an earlier state

    @classmethod
    def of(cls, nodes: int, down: Collection[int] = ()) -> list[NodeHealth]:
        """Every node's at the start. A node down before the run (FaultPlan.down) has
        been detected: no lease, Unknown, the unreachable taint. Its eviction is not
        scheduled: that state holds until its kubelet renews its lease again."""
        return [cls(kubelet_up=False, condition="Unknown", tainted=True) if i in down
                else cls() for i in range(nodes)]
