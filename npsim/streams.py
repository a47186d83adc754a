"""Named random streams: one ``numpy.random.Generator`` per component.

A stream is keyed by the run seed, the replication and the component's name (e.g.
``arrivals/web``, ``service/nginx-0``, ``proxy/node-1``), never by creation order. So
the same seed gives identical draws, and adding a pod or changing one population's
rate leaves every other component's draws untouched: two variants of a what-if share
their arrivals (common random numbers).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported with the first stream: validating needs none
    import numpy as np


class Streams:
    def __init__(self, seed: int, replication: int = 0) -> None:
        self.seed = seed
        self.replication = replication

    def generator(self, name: str) -> np.random.Generator:
        import numpy as np

        key = (self.replication, zlib.crc32(name.encode()))
        seed = np.random.SeedSequence(self.seed, spawn_key=key)
        return np.random.Generator(np.random.PCG64(seed))
