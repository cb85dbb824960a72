"""Exact k smallest scores over many tensors, streaming, with no concatenated copy.

``torch.nn.utils.prune.global_unstructured`` concatenates every score into one vector and
runs ``topk`` on it: a full copy of the model plus a sort. Here (in the spirit of
Floyd & Rivest 1975, "Expected time bounds for selection"):

1. sample ~65k scores and take the sample quantiles a few standard errors either side of
   the target rank as a band [lo, hi) that almost surely holds the k-th score;
2. one pass over the tensors, slice by slice into a reused buffer, counting scores below
   ``lo`` and keeping only the scores inside the band (about 1% of them);
3. pick the k-th score exactly among the kept ones, and break ties by (tensor, position).

If the band misses (adversarial distributions, heavy ties), histogram passes over the float
bit patterns narrow the bracket 1024-fold each until it fits; the answer stays exact.
Extra memory: one slice of scores, the band, the sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pruning.masks.cut import CHUNK, Cut
from pruning.methods.base import Scorer
from pruning.tensors import FloatArray, WeightTensor

SAMPLE = 1 << 16
SAMPLE_MAX = 1 << 18
SIGMAS = 5.0  # half-width of the band in standard errors of the sample quantile
BINS = 1024  # fallback histogram resolution
_KEY_BINS = 1 << 16  # bins per counting pass over the band (``_kth``)


@dataclass(frozen=True)
class _Scan:
    lo: np.floating[Any]
    below: list[int]  # per tensor: scores < lo
    band: list[FloatArray] | None  # per tensor: scores in [lo, hi); None when over the cap
    band_count: int


class KSmallest:
    """Find, over ``tensors`` scored by ``scorer``, cuts that prune exactly k elements."""

    def __init__(self, tensors: Sequence[WeightTensor], scorer: Scorer) -> None:
        self.tensors = [t for t in tensors if t.numel]  # empty tensors have nothing to cut
        self.scorer = scorer
        self.total = sum(t.numel for t in self.tensors)
        self.dtype = np.result_type(np.float32, *(scorer.score_dtype(t) for t in self.tensors))
        self.cap = max(1 << 20, self.total // 32)
        self._buffers: dict[np.dtype[Any], _Buffers] = {}

    def cuts(self, k: int) -> list[Cut]:
        """One cut per non-empty tensor, in order (see ``KSmallest.tensors``)."""
        if k <= 0:
            return [Cut.none() for _ in self.tensors]
        if k >= self.total:
            return [Cut(self.dtype.type(np.inf), 0, t.numel) for t in self.tensors]
        lo, hi = self._estimate_band(k)
        scan = self._scan(lo, hi, collect=True)
        below = sum(scan.below)
        if scan.band is not None and below <= k <= below + scan.band_count:
            return self._cuts_from_band(scan, k)
        return self._narrow(k)

    # -- step 1: the band, from a sample -------------------------------------------------
    def _estimate_band(self, k: int) -> tuple[np.floating[Any], np.floating[Any]]:
        inf = self.dtype.type(np.inf)
        if self.total <= SAMPLE:
            return -inf, inf
        sample = self._sample(sample_size(self.total))
        p, m = k / self.total, sample.size
        half = SIGMAS * math.sqrt(m * p * (1.0 - p)) + 8.0
        lo_rank, hi_rank = math.floor(p * m - half), math.ceil(p * m + half)
        ranks = [r for r in (lo_rank, hi_rank) if 0 <= r < m]
        part = np.partition(sample, ranks) if ranks else sample
        lo = part[lo_rank] if lo_rank >= 0 else -inf
        hi = part[hi_rank] if hi_rank < m else inf
        return self.dtype.type(lo), self.dtype.type(hi)

    def _sample(self, size: int) -> FloatArray:
        """Stratified sample: one random position per stride of each tensor (ascending, so
        the gather streams through memory; never aliased with row length)."""
        rng = np.random.default_rng(0)
        parts = []
        for tensor in self.tensors:
            m = max(1, round(size * tensor.numel / self.total))
            stride = tensor.numel / m
            jitter = rng.random(m) * stride
            positions = np.minimum(
                (np.arange(m) * stride + jitter).astype(np.int64), tensor.numel - 1
            )
            parts.append(self.scorer.score_at(tensor, positions))
        return np.concatenate(parts).astype(self.dtype, copy=False)

    # -- step 2: one counting pass ---------------------------------------------------------
    def _scan(self, lo: np.floating[Any], hi: np.floating[Any], collect: bool) -> _Scan:
        below: list[int] = []
        band: list[FloatArray] | None = [] if collect else None
        count = 0
        for tensor in self.tensors:
            n_below, values, n_band = self._scan_one(tensor, lo, hi, band is not None)
            below.append(n_below)
            count += n_band
            if band is not None and values is not None and count <= self.cap:
                band.append(values)
            else:
                band = None
        return _Scan(lo, below, band, count)

    def _scan_one(
        self, tensor: WeightTensor, lo: np.floating[Any], hi: np.floating[Any], collect: bool
    ) -> tuple[int, FloatArray | None, int]:
        buf = self._buffers_for(tensor)
        n_below, n_band, kept = 0, 0, []
        for start in range(0, tensor.numel, CHUNK):
            s, under, inside = buf.view(min(CHUNK, tensor.numel - start))
            self.scorer.score(tensor, start, s)
            n_below += int(np.count_nonzero(np.less(s, lo, out=under)))
            # inside = (s < hi) xor (s < lo) = lo <= s < hi, without a third compare.
            np.not_equal(np.less(s, hi, out=inside), under, out=inside)
            if collect:
                kept.append(np.compress(inside, s))
                n_band += kept[-1].size
                collect = n_band <= self.cap
            else:
                n_band += int(np.count_nonzero(inside))
        values = np.concatenate(kept).astype(self.dtype, copy=False) if collect else None
        return n_below, values, n_band

    # -- step 3: the exact k-th among the band -------------------------------------------
    def _cuts_from_band(self, scan: _Scan, k: int) -> list[Cut]:
        assert scan.band is not None
        rank = k - sum(scan.below)
        if rank == 0:  # exactly the scores below lo
            return [Cut(scan.lo, 0, n) for n in scan.below]
        # Found by counting, not by sorting: a partition needs the band in one array, a second
        # copy beside the per-tensor arrays the counts below need (2% of all scores each, two
        # thirds of a GB on a 16 GiB model); counting bit patterns reads them where they are.
        t = _kth(scan.band, rank - 1, self.dtype)
        below = [
            n + int(np.count_nonzero(v < t)) for n, v in zip(scan.below, scan.band, strict=True)
        ]
        equal = [int(np.count_nonzero(v == t)) for v in scan.band]
        return _with_ties(t, below, equal, k)

    # -- fallback: narrow the bracket on float bit patterns ------------------------------
    def _narrow(self, k: int) -> list[Cut]:
        keys = _KeySpace(self.dtype)
        lo_key, hi_key = keys.lowest, keys.highest
        while True:
            edges = keys.edges(lo_key, hi_key, BINS)
            per_tensor = np.stack([self._histogram(t, edges) for t in self.tensors])
            below_at = np.cumsum(per_tensor.sum(axis=0))[:-1]  # below_at[j]: scores < edges[j]
            j = int(np.searchsorted(below_at, k, side="right")) - 1
            layer_below = per_tensor[:, : j + 1].sum(axis=1)
            if below_at[j] == k:
                return [Cut(edges[j], 0, int(n)) for n in layer_below]
            lo_key, hi_key = keys.key(edges[j]), keys.key(edges[j + 1])
            if hi_key - lo_key == 1:  # the bin holds one value: it is the threshold
                equal = [int(n) for n in per_tensor[:, j + 1]]
                return _with_ties(edges[j], [int(n) for n in layer_below], equal, k)
            if below_at[j + 1] - below_at[j] <= self.cap:
                scan = self._scan(edges[j], edges[j + 1], collect=True)
                return self._cuts_from_band(scan, k)

    def _buffers_for(self, tensor: WeightTensor) -> _Buffers:
        """Slice buffers are allocated once per dtype: fresh pages cost more than the math."""
        dtype = self.scorer.score_dtype(tensor)
        if dtype not in self._buffers:
            self._buffers[dtype] = _Buffers(min(CHUNK, self.total), dtype)
        return self._buffers[dtype]

    def _histogram(self, tensor: WeightTensor, edges: FloatArray) -> np.ndarray[Any, Any]:
        """Counts of scores per bin; bin i+1 holds edges[i] <= s < edges[i+1]."""
        buf = self._buffers_for(tensor)
        counts = np.zeros(edges.size + 1, np.int64)
        for start in range(0, tensor.numel, CHUNK):
            s = self.scorer.score(tensor, start, buf.view(min(CHUNK, tensor.numel - start))[0])
            counts += np.bincount(np.searchsorted(edges, s, side="right"), minlength=counts.size)
        return counts


def sample_size(total: int) -> int:
    """Scores sampled for the band: its width falls as one over the root of the sample, so a
    larger model samples more (one in 16384 scores, up to 2**18): about 1% of a 16 GiB
    model's scores are kept, not 2%."""
    return min(max(SAMPLE, total >> 14), SAMPLE_MAX)


def _kth(parts: Sequence[FloatArray], rank: int, dtype: np.dtype[Any]) -> np.floating[Any]:
    """The score of 0-based ``rank`` in the sorted union of ``parts``, with no copy of them:
    histograms of their order-preserving integer keys, 2**16 bins a pass, narrow the key
    range to one value (2 passes for float32, 4 for float64)."""
    ints = np.dtype(np.int64 if dtype.itemsize == 8 else np.int32)
    magnitude = np.array((1 << (8 * ints.itemsize - 1)) - 1, ints)  # all bits but the sign

    def keys(values: FloatArray) -> np.ndarray[Any, Any]:
        bits = values.astype(dtype, copy=False).view(ints)
        magnitudes: np.ndarray[Any, Any] = np.bitwise_and(bits, magnitude)
        return np.where(bits < 0, np.negative(magnitudes), bits).astype(np.int64)

    lo = min(int(keys(np.array([v.min()], dtype))[0]) for v in parts if v.size)
    hi = max(int(keys(np.array([v.max()], dtype))[0]) for v in parts if v.size)
    while lo < hi:
        step = -(-(hi - lo + 1) // _KEY_BINS)
        counts = np.zeros(_KEY_BINS, np.int64)
        for values in parts:
            for start in range(0, values.size, CHUNK):
                k = keys(values[start : start + CHUNK])
                k = k[(k >= lo) & (k <= hi)]
                # Offsets from lo in uint64: a float64 key range spans more than int64 holds.
                offsets = k.view(np.uint64) - np.uint64(lo % (1 << 64))
                counts += np.bincount(offsets // np.uint64(step), minlength=_KEY_BINS)
        below = np.cumsum(counts)
        j = int(np.searchsorted(below, rank, side="right"))
        rank -= int(below[j - 1]) if j else 0
        lo, hi = lo + j * step, min(hi, lo + (j + 1) * step - 1)
    return _KeySpace(dtype).value(lo)


def _with_ties(t: np.floating[Any], below: list[int], equal: list[int], k: int) -> list[Cut]:
    """Prune everything below ``t``, then ties at ``t`` in tensor order until k are pruned."""
    needed = k - sum(below)
    cuts = []
    for n_below, n_equal in zip(below, equal, strict=True):
        ties = min(needed, n_equal)
        needed -= ties
        cuts.append(Cut(t, ties, n_below + ties))
    return cuts


class _Buffers:
    """One slice of scores and two boolean masks, allocated once per tensor and reused."""

    def __init__(self, size: int, dtype: np.dtype[Any]) -> None:
        self.scores = np.empty(size, dtype)
        self.under = np.empty(size, np.bool_)
        self.inside = np.empty(size, np.bool_)

    def view(self, n: int) -> tuple[FloatArray, Any, Any]:
        return self.scores[:n], self.under[:n], self.inside[:n]


class _KeySpace:
    """Floats mapped to integers in the same order (sign-magnitude bits), so a bracket of
    floats can be split evenly by count of representable values: 1024 bins shrink any range
    to a single value in at most 4 passes for float32 (7 for float64)."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        self.ints = np.dtype(np.int64 if dtype == np.float64 else np.int32)
        self.sign = 1 << (8 * self.ints.itemsize - 1)
        self.highest = self.key(dtype.type(np.inf))
        self.lowest = -self.highest

    def key(self, value: np.floating[Any]) -> int:
        bits = int(np.array(value, self.dtype).view(self.ints)[()])
        return bits if bits >= 0 else -(bits & (self.sign - 1))

    def value(self, key: int) -> np.floating[Any]:
        bits = key if key >= 0 else (-key) | self.sign
        unsigned = np.array([bits], self.ints.str.replace("i", "u"))
        return unsigned.view(self.dtype)[0]  # type: ignore[no-any-return]

    def edges(self, lo: int, hi: int, bins: int) -> FloatArray:
        keys = sorted({lo + (hi - lo) * i // bins for i in range(bins + 1)})
        return np.array([self.value(k) for k in keys], self.dtype)
