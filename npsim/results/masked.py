"""Sums, means and quantiles of the rows a mask selects, without copying those rows.

The summary takes the latency of every completed, measured request: ``values[mask]``
copied 8 bytes per row (8 MB at 1M requests) and was the summary's peak. These give
numpy's own figures to the bit, a block of rows at a time:

* sums and means: numpy adds a contiguous float64 array pairwise (``pairwise_sum`` in
  numpy's ``loops_utils``: halves rounded down to a multiple of 8, down to blocks of
  128). The same halving over the selected rows, with numpy adding each piece of up to
  :data:`LEAF` rows, is the same tree of additions: the same float.
* quantiles: ``np.quantile``'s default (linear) method interpolates between two order
  statistics per quantile; those are found by a radix select on the values' bits
  (:data:`DIGIT` bits per pass over the rows), then interpolated with numpy's own
  formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from npsim.results.frames import BLOCK  # rows per step

# selected values numpy adds in one call: a multiple of 8 and at least numpy's
# PW_BLOCKSIZE (128), below which numpy adds in a loop instead of halving
LEAF = 1 << 16
GATHER = 1 << 14  # a group of candidates this small is copied and sorted
DIGIT = 12  # bits of the keys counted per pass (4096 counters per candidate group)
_SIGN = np.uint64(1 << 63)


class Masked:
    """The values of ``values`` where ``mask`` is true, as if compressed."""

    def __init__(self, values: np.ndarray, mask: np.ndarray,
                 starts: np.ndarray | None = None) -> None:
        if len(values) != len(mask):
            raise ValueError("values and mask differ in length")
        self.values = values
        self.mask = mask
        if starts is None:
            counts = [np.count_nonzero(mask[lo:lo + BLOCK])
                      for lo in range(0, len(mask), BLOCK)]
            starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        # where each block's selected values start in the compressed sequence
        self.starts = starts
        self.n = int(self.starts[-1])

    def over(self, values: np.ndarray) -> Masked:
        """The same rows of another column (the mask is not counted again)."""
        return Masked(values, self.mask, self.starts)

    def _blocks(self):  # noqa: ANN202 - the selected values of each block, in order
        for lo in range(0, len(self.mask), BLOCK):
            yield self.values[lo:lo + BLOCK][self.mask[lo:lo + BLOCK]]

    def _take(self, first: int, count: int) -> np.ndarray:
        """Selected values ``first`` to ``first + count - 1`` (a copy of ``count``)."""
        out = np.empty(count, dtype=self.values.dtype)
        block = int(np.searchsorted(self.starts, first, side="right")) - 1
        filled = 0
        while filled < count:
            lo = block * BLOCK
            chosen = self.values[lo:lo + BLOCK][self.mask[lo:lo + BLOCK]]
            skip = first + filled - int(self.starts[block])
            piece = chosen[skip:skip + count - filled]
            out[filled:filled + len(piece)] = piece
            filled += len(piece)
            block += 1
        return out

    def _sum(self, first: int, count: int, nan_as_zero: bool) -> float:
        if count <= LEAF:
            piece = self._take(first, count)
            if nan_as_zero:
                piece[np.isnan(piece)] = 0.0
            return np.add.reduce(piece)
        half = count // 2
        half -= half % 8
        return (self._sum(first, half, nan_as_zero)
                + self._sum(first + half, count - half, nan_as_zero))

    def mean(self) -> float:
        """``values[mask].mean()`` to the bit (NaN when nothing is selected)."""
        if not self.n:
            return math.nan
        return float(self._sum(0, self.n, False) / self.n)

    def nan_mean(self) -> float:
        """The mean skipping NaNs, as pandas' ``Series.mean()`` gives it to the bit (NaNs
        summed as zeros, divided by the count of the others)."""
        missing = sum(int(np.isnan(chosen).sum()) for chosen in self._blocks())
        count = self.n - missing
        if not count:
            return math.nan
        return float(self._sum(0, self.n, missing > 0) / count)

    def max(self) -> float:
        """``values[mask].max()`` (NaN when nothing is selected, or a selected value is
        NaN): one pass, block by block, where a quantile of 1 takes several."""
        if not self.n:
            return math.nan
        return float(np.max([chosen.max() for chosen in self._blocks() if len(chosen)]))

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """``np.quantile(values[mask], qs)`` (linear method) to the bit."""
        n = self.n
        if not n:
            return [math.nan] * len(qs)
        q = np.asarray(qs, dtype=float)
        # numpy's linear method: its virtual index, then _get_indexes
        virtual = (n - 1) * q
        prev = np.floor(virtual)
        following = prev + 1
        above = virtual >= n - 1
        prev[above] = following[above] = -1
        below = virtual < 0
        prev[below] = following[below] = 0
        prev, following = prev.astype(np.intp), following.astype(np.intp)
        ranks = sorted({int(i) % n for i in np.concatenate([prev, following])})
        found = self.order_statistics(ranks)
        if found is None:  # a NaN among the values: numpy gives NaN for every quantile
            return [math.nan] * len(qs)
        a = np.array([found[int(i) % n] for i in prev])
        b = np.array([found[int(i) % n] for i in following])
        gamma = np.asanyarray(virtual - prev, dtype=virtual.dtype)
        # numpy's _lerp
        diff = b - a
        result = np.add(a, diff * gamma)
        np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5)
        return [float(x) for x in result]

    def order_statistics(self, ranks: Sequence[int]) -> dict[int, float] | None:
        """The ``rank``-th smallest selected value (0-based) for each rank; None if a
        selected value is NaN. A radix select: each pass over the rows counts the next
        16 bits of the candidates' order-preserving keys, until a candidate group is
        small enough to copy and partition, or its key is complete."""
        # group (shift, prefix) -> [size, [(rank, rank within the group), ...]]: the
        # candidates whose key shifted right by ``shift`` is ``prefix`` (64: all)
        groups: dict[tuple[int, int], list] = {(64, 0): [self.n, [(r, r) for r in ranks]]}
        found: dict[int, float] = {}
        first = True
        while groups:
            counts = {key: np.zeros(1 << min(DIGIT, key[0]), dtype=np.int64)
                      for key, (size, _) in groups.items() if size > GATHER}
            gathered: dict[tuple[int, int], list[np.ndarray]] = {
                key: [] for key, (size, _) in groups.items() if size <= GATHER}
            for chosen in self._blocks():
                if first and np.isnan(chosen).any():
                    return None
                keys = _keys(chosen)
                for shift, prefix in counts.keys() | gathered.keys():
                    match = (slice(None) if shift == 64 else
                             (keys >> np.uint64(shift)) == np.uint64(prefix))
                    if (shift, prefix) in gathered:
                        gathered[(shift, prefix)].append(chosen[match])
                        continue
                    bits = min(DIGIT, shift)
                    digits = keys[match] >> np.uint64(shift - bits)  # a new array
                    digits &= np.uint64((1 << bits) - 1)
                    counts[(shift, prefix)] += np.bincount(digits.view(np.int64),
                                                           minlength=1 << bits)
            first = False
            following: dict[tuple[int, int], list] = {}
            for key, parts in gathered.items():
                values = np.sort(np.concatenate(parts)) if parts else np.empty(0)
                for rank, within in groups[key][1]:
                    found[rank] = float(values[within])
            for (shift, prefix), count in counts.items():
                bits = min(DIGIT, shift)
                upto = np.cumsum(count)  # candidates with this digit or a lower one
                for rank, within in groups[(shift, prefix)][1]:
                    digit = int(np.searchsorted(upto, within, side="right"))
                    key = (shift - bits, ((prefix << bits) if shift < 64 else 0) | digit)
                    group = following.setdefault(key, [int(count[digit]), []])
                    group[1].append((rank, within - int(upto[digit] - count[digit])))
            for (shift, prefix), (_, targets) in list(following.items()):
                if shift == 0:  # the whole key: every candidate is this value
                    value = float(_value(prefix))
                    for rank, _within in targets:
                        found[rank] = value
                    del following[(shift, prefix)]
            groups = following
        return found


def _keys(values: np.ndarray) -> np.ndarray:
    """Unsigned keys in the order of the floats: the sign bit flipped for positives,
    every bit for negatives (one new array)."""
    bits = values.view(np.uint64)
    keys = bits ^ _SIGN
    np.bitwise_xor(keys, ~_SIGN, out=keys, where=bits >= _SIGN)
    return keys


def _value(key: int) -> np.float64:
    bits = np.uint64(key)
    bits = bits ^ _SIGN if key >> 63 else ~bits
    return np.array([bits], dtype=np.uint64).view(np.float64)[0]
