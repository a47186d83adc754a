"""Sweeps on a Dask cluster (``npsim sweep --dask tcp://host:8786`` or a
``dask.distributed.Client`` passed to :func:`npsim.sweep`), for when one machine is not
enough. Optional: ``pip install 'npsim[dask]'``.

Each task runs on a worker exactly as in the local pool and writes its own run folder
(frames as parquet) into the sweep folder, which the workers must therefore see (a
shared filesystem); only a run's few summary numbers travel back to the client. Results
are byte-identical to the local pool's: a run depends on its seed, replication and
variant, never on where it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_on_dask(fn: Callable[[T], R], tasks: Sequence[T], client: Any) -> Iterator[tuple[int, R]]:
    """Yield ``(index, fn(tasks[index]))`` as the cluster finishes them."""
    from dask.distributed import as_completed

    futures = {client.submit(fn, task, pure=False): i for i, task in enumerate(tasks)}
    try:
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        for future in futures:
            future.cancel()


def connect(address: str) -> Any:
    """A client of the scheduler at ``address``; ImportError without Dask installed."""
    from dask.distributed import Client

    return Client(address, timeout="10s")
