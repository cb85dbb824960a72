"""Tensors read through memory maps of their own byte range, one mapping alive at a time.

A job runs under an address-space limit (``SHEARS_CHILD_MEMORY_BYTES``) that counts file
mappings too, so a 16 GB data file is never mapped whole: each tensor's range is mapped when
it is read and unmapped when the next one is. The pages are the page cache's, not the
process's: reading a tensor costs no anonymous memory.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pruning.methods.base import IntArray
from pruning.streaming import read_ahead
from pruning.streaming.layout import Region
from pruning.tensors import FloatArray, WeightTensor

_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux only; elsewhere pages fault in
_POPULATE_WRITE = 23  # Linux's MADV_POPULATE_WRITE (5.14); Python 3.11 does not name it


def map_region(
    region: Region, file: Path | None = None, writable: bool = False, sparse: bool = False
) -> FloatArray:
    """The region's elements as an array over a mapping of ``file`` (default the region's own);
    the mapping lives as long as the array. ``sparse``: for a few scattered reads (a
    sample), nothing is read ahead: each read costs one page, not the tensor."""
    if region.nbytes == 0:
        return np.zeros(region.shape, region.dtype)
    start = region.offset - region.offset % mmap.ALLOCATIONGRANULARITY
    with (file or region.file).open("r+b" if writable else "rb") as f:
        # Populated in one call: page by page, the faults cost more than the reads and
        # writes themselves (measured on 256 MiB rewritten in place: 4.1 s, populated 1.2 s).
        mapped = mmap.mmap(
            f.fileno(),
            region.offset + region.nbytes - start,
            flags=mmap.MAP_SHARED if writable or sparse else mmap.MAP_SHARED | _POPULATE,
            prot=mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0),
            offset=start,
        )
    if sparse:
        mapped.madvise(mmap.MADV_RANDOM)
    if writable:
        with contextlib.suppress(OSError):  # a kernel before 5.14: pages fault in one by one
            mapped.madvise(_POPULATE_WRITE)
    count = region.nbytes // region.dtype.itemsize
    array: FloatArray = np.frombuffer(mapped, region.dtype, count, region.offset - start)
    return array.reshape(region.shape)


class MappedTensor(WeightTensor):
    """A read-only ``WeightTensor`` whose values stay on disk until read. Scorers and the
    streaming selection read it slice by slice, tensor after tensor, so one cached mapping
    (``Window``) serves every read of the tensor being scanned."""

    def __init__(
        self, name: str, op: str, region: Region, window: Window, node: str, op_type: str
    ) -> None:
        for key, value in (("name", name), ("op", op), ("node", node), ("op_type", op_type)):
            object.__setattr__(self, key, value)
        object.__setattr__(self, "region", region)
        object.__setattr__(self, "_window", window)

    @property
    def values(self) -> FloatArray:
        return self._window.read(self.region)  # type: ignore[attr-defined, no-any-return]

    @property
    def numel(self) -> int:
        return int(np.prod(self.region.shape, dtype=np.int64))  # type: ignore[attr-defined]

    @property
    def shape(self) -> list[int]:
        return list(self.region.shape)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"MappedTensor({self.name!r}, {self.shape})"

    @contextlib.contextmanager
    def sparse_reads(self, positions: IntArray) -> Iterator[None]:
        """Reads of ``values`` inside the block touch only the pages they read (a sample of
        a 16 GiB model would otherwise read all of it); the pages holding the elements at
        flat ``positions`` are asked of the disk at once on entry."""
        read_ahead.pages(self.region, positions)  # type: ignore[attr-defined]
        window: Window = self._window  # type: ignore[attr-defined]
        window.sparse = True
        try:
            yield
        finally:
            window.sparse = False


class Window:
    """The last region read, kept mapped: a scan reads one tensor many times in a row."""

    def __init__(self) -> None:
        self._region: Region | None = None
        self._array: Any = None
        self._sparse = False  # the mapping held was made for sparse reads
        self.sparse = False  # the next reads are scattered (see ``MappedTensor.sparse_reads``)
        self._ahead: read_ahead.NextRegion | None = None

    def scan_order(self, order: list[Region]) -> None:
        """Regions will be read whole in this order: each next one is read ahead."""
        self._stop_ahead()
        try:
            self._ahead = read_ahead.NextRegion(order)
        except RuntimeError:  # no thread under the job's limits: the scan reads unaided
            self._ahead = None

    def read(self, region: Region) -> FloatArray:
        if region is not self._region or self._sparse != self.sparse:
            self._array = None  # unmapped before the next is mapped: one at a time
            self._array = map_region(region, sparse=self.sparse)
            if self._ahead is not None and not self.sparse:  # the next, while this is scored
                self._ahead.reading(region)
            self._region, self._sparse = region, self.sparse
        array: FloatArray = self._array
        return array

    def close(self) -> None:
        self._region, self._array = None, None
        self._stop_ahead()

    def _stop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
