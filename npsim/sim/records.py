"""Per-request records, kept in typed columns while the run goes.

One row per generated request, appended when the client sends it and completed in place
by index; ``array.array`` columns cost a few bytes per value (no Python object per
request), and the DataFrame is built once at the end.
"""

from __future__ import annotations

import sys
from array import array

import numpy as np

NAN = float("nan")

MMAP_THRESHOLD = 256 * 1024
_pinned = False


def pin_mmap_threshold() -> None:
    """Have glibc map every allocation of 256 KiB or more on its own pages (Linux only,
    once per process).

    The log's sixteen columns grow by reallocation while the run goes. glibc raises its
    mmap threshold each time a large block is freed (numpy temporaries of the build do
    that, up to 32 MiB), and below the threshold a growing column is copied to a new
    heap block, leaving the old one as a hole: at 300,000 requests the holes came to
    30-45 bytes per request, about half the log itself, and stayed in the peak. A fixed
    threshold keeps the columns in mappings that grow in place (``mremap``) and gives
    freed frame temporaries back to the system at once; small objects are unaffected.
    """
    global _pinned
    if _pinned:
        return
    _pinned = True
    set_mmap_threshold(MMAP_THRESHOLD)


def set_mmap_threshold(size: int) -> None:
    """Have glibc map allocations of ``size`` bytes or more on their own pages (Linux
    with glibc only; elsewhere nothing). See :func:`pin_mmap_threshold`."""
    mallopt = _libc_function("mallopt")
    if mallopt is not None:
        m_mmap_threshold = -3  # <malloc.h> M_MMAP_THRESHOLD
        mallopt(m_mmap_threshold, size)


def trim_heap() -> None:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``; elsewhere
    nothing). Called when a run is over: the simulation's freed objects leave about
    20 bytes per request of free heap behind, which the frames (allocated in their own
    mappings) could never reuse."""
    malloc_trim = _libc_function("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)
    arrow = sys.modules.get("pyarrow")  # pandas' strings live in Arrow's own pool
    if arrow is not None:
        arrow.default_memory_pool().release_unused()


def _libc_function(name: str):  # noqa: ANN202 - a ctypes function or None
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return None


def _resizable(col: array, rows: int) -> array:
    """``col``, or a copy of its first ``rows`` values when something still holds a view
    of it (an array that exports its buffer cannot grow or shrink: BufferError). The
    holder keeps the old buffer; the log goes on with the copy."""
    try:
        del col[len(col):]  # a no-op that fails the same way a resize would
    except BufferError:
        return array(col.typecode, memoryview(col)[:rows])
    return col


class _Referable:
    """Gives RequestLog a ``__weakref__`` slot while ``RequestLog.__slots__`` stays its
    ``COLUMNS``: a test or a caller can hold a weak reference to a run's log to see that
    it is freed with the run."""

    __slots__ = ("__weakref__",)


class RequestLog(_Referable):
    """Columns of the request table. Index = request id within the run.

    Each column has the smallest type its values need (the run keeps one row per
    request): ids within the run as 32-bit integers (a run of 2**31 connections would
    need hundreds of GB first), flags and codes as bytes. Times and durations stay
    float64: the hot path reads ``network``, ``hop`` and ``proxy`` back to schedule and
    stamp later events, and absolute times need the precision.

    ``t_start`` is appended, one value per row: its length is the number of rows. The
    other columns are written in place, ``log.pod[row] = ...``, into room that
    :meth:`reserve` makes ahead of the rows, filled with what a row holds until it is
    written (NaN times, zero codes: in flight, no reason). A row's service, end and
    outcome are thus never written when it is appended, only when they are known (by a
    pod, or after the run by :func:`npsim.sim.pods.settle`), and a zero is not written
    where the room holds one already (the engine's ``_append``: the first population, an
    open connection's flag and kube-proxy cost). While there is room, those
    columns are ``memoryview`` s of their arrays: a store through a view converts the
    value directly, where ``array.append`` and ``array.__setitem__`` parse it as a
    function argument (PyArg_Parse: more than half of a request's recording cost). Take
    the columns from the log at each use, as ``log.t_end[row]``: :meth:`reserve`
    replaces the views (and releases the old ones) when the room runs out. :meth:`trim`
    ends the run's room: every column is then an ``array.array`` of exactly one value
    per row, as :meth:`columns` and the frames read them.
    """

    #: the columns, in the order of the frames' source (``Simulation._append``)
    COLUMNS = (
        "t_start", "population", "client", "conn", "new_conn", "entry", "pod",
        "network", "hop", "proxy", "service_start", "service", "t_end", "outcome", "reason", "snat",
    )
    #: what a row holds before it is written: the service, end and outcome unknown
    FILL = {"service_start": NAN, "service": NAN, "t_end": NAN}
    #: rows of room made at least at a time (then an eighth of the rows so far)
    ROOM = 1 << 14
    __slots__ = (*COLUMNS, "_arrays", "capacity")

    def __init__(self) -> None:
        pin_mmap_threshold()
        self.t_start = array("d")  # client sends
        self.population = array("H")
        self.client = array("I")  # client slot within its population
        self.conn = array("i")  # connection id (run-wide)
        self.new_conn = array("b")  # 1 if this request opened its connection
        self.entry = array("i")  # node index that received it
        self.pod = array("i")  # pod index serving it, -1 if none
        self.network = array("d")  # round-trip network time (client<->node + hop)
        self.hop = array("d")  # the node-to-pod part of network (round trip)
        self.proxy = array("d")  # kube-proxy first-packet cost (new connections only)
        self.service_start = array("d")
        self.service = array("d")
        self.t_end = array("d")  # client sees the response or the failure
        self.outcome = array("b")
        self.reason = array("b")
        self.snat = array("b")  # 1: the pod sees a node address; 0: the source is kept
        self._arrays: dict[str, array] | None = None  # under the views, while they exist
        self.capacity = 0  # rows the columns other than t_start hold (with the room)

    def __len__(self) -> int:
        return len(self.t_start)

    def reserve(self) -> None:
        """Make room for more rows in every column but ``t_start``, filled with what an
        unwritten row holds, and let the columns be views over it. Views taken from the
        log before are released (a store through one raises ValueError)."""
        arrays = self._release()
        rows = len(self.t_start)
        room = max(self.ROOM, rows // 8)
        self._arrays = {}
        for name in self.COLUMNS[1:]:
            col = _resizable(arrays[name], rows)
            del col[rows:]  # nothing is kept past the rows (an unused room, trimmed)
            col.extend(array(col.typecode, [self.FILL.get(name, 0)]) * (rows + room - len(col)))
            self._arrays[name] = col
            setattr(self, name, memoryview(col))
        self.capacity = rows + room

    def trim(self) -> None:
        """The run is over: every column becomes an array of exactly one value per row
        (no room, no views). A row appended later makes room again."""
        arrays = self._release()
        rows = len(self.t_start)
        for name, col in arrays.items():
            col = _resizable(col, rows)
            del col[rows:]
            setattr(self, name, col)
        self.capacity = rows

    def _release(self) -> dict[str, array]:
        """The arrays under the columns, with no view left on them."""
        arrays = self._arrays
        if arrays is None:
            return {name: getattr(self, name) for name in self.COLUMNS[1:]}
        self._arrays = None
        for name in self.COLUMNS[1:]:
            getattr(self, name).release()
        return arrays

    def columns(self) -> dict[str, np.ndarray]:
        """Numpy views of every column, one value per row (zero-copy over the arrays'
        buffers). While a view is alive its array cannot grow: take them once the run is
        over (or drop them before the run goes on)."""
        rows = len(self.t_start)
        arrays = self._arrays or {}
        out = {}
        for name in self.COLUMNS:
            col = arrays.get(name, getattr(self, name))
            out[name] = (np.frombuffer(col, dtype=col.typecode, count=rows) if rows
                         else np.array([], dtype=col.typecode))
        return out

    def release(self) -> None:
        """Start over with empty columns. Arrays a frame still views (see
        :func:`npsim.results.frames.request_frame`) live on with the frame; the others
        are freed now rather than with the run."""
        arrays = self._release()
        self.t_start = array(self.t_start.typecode)
        for name, col in arrays.items():
            setattr(self, name, array(col.typecode))
        self.capacity = 0

    def nbytes(self) -> int:
        """Bytes the columns hold, their room included."""
        arrays = {"t_start": self.t_start, **(self._arrays or {})}
        cols = [arrays.get(n, getattr(self, n)) for n in self.COLUMNS]
        return sum(c.buffer_info()[1] * c.itemsize for c in cols)
