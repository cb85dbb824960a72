"""Reads of the model asked of the disk before they are made (``posix_fadvise(WILLNEED)``).

A model larger than the page cache is read from disk by every pass, and left to itself the
kernel reads it slowly: measured on a cold 4 GiB file (2 cores, a virtio disk), reading it
in order in 256 KiB pieces took 5.4 s, 4.5 s of it kernel CPU, where the same reads with the
next 8 MiB asked ahead took 2.1-2.3 s (0.8-1.0 s of kernel CPU), and scattered one-page reads
wait one disk round trip each. Three patterns, one per reader:

- ``pages``: a sample's scattered pages, all asked at once;
- ``Sequential``: a copy in order, one step ahead of it;
- ``NextRegion``: a scan of tensors, the next tensor asked by a thread while one is scored.

Only hints: the kernel may drop them, nothing waits on them, and what they read is the
page cache's (no anonymous memory). The kernel cuts one request short at the device's
read-ahead or largest I/O size (8 MiB on the machine measured, 128 KiB to a few MiB on
others), so a range is asked in pieces of ``PIECE``.
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
from collections.abc import Sequence

import numpy as np

from pruning.methods.base import IntArray
from pruning.streaming.layout import Region

STEP = 8 << 20  # how far ahead of a copy the disk is kept busy (one to two steps)
PIECE = 1 << 20  # bytes per request
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)  # not on macOS: pages read as touched


def pages(region: Region, positions: IntArray) -> None:
    """Ask for the pages holding ``region``'s elements at flat ``positions``, all at once: a
    sample of a cold 4 GiB model (65k pages) took 4.9 s read page by page, 0.5 s so."""
    if _WILLNEED is None or not positions.size:
        return
    first = region.offset + positions * region.dtype.itemsize
    last = first + (region.dtype.itemsize - 1)  # an element may straddle two pages
    wanted = np.unique(np.concatenate([first, last]) // mmap.PAGESIZE)
    with region.file.open("rb") as f:
        for page in wanted.tolist():
            os.posix_fadvise(f.fileno(), page * mmap.PAGESIZE, mmap.PAGESIZE, _WILLNEED)


def span(fd: int, start: int, stop: int) -> None:
    """Ask for bytes ``[start, stop)`` of ``fd``, in pieces the kernel does not cut short."""
    if _WILLNEED is None:
        return
    for offset in range(start, stop, PIECE):
        os.posix_fadvise(fd, offset, min(PIECE, stop - offset), _WILLNEED)


class Sequential:
    """A reader of ``fd`` in order calls ``reach(position)`` before each read: the step
    after the one it reads is asked for while it works on this one."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.asked = 0  # bytes before this are asked for

    def reach(self, position: int) -> None:
        if position + STEP > self.asked:
            start = max(self.asked, position)
            self.asked = start + 2 * STEP
            span(self.fd, start, self.asked)


class NextRegion:
    """While a scan reads one region of ``order``, a thread asks for the one after it, so
    the disk works while the CPU scores (a cold scan's reads and its scoring otherwise take
    turns). The thread keeps at most one region ahead of the scan."""

    def __init__(self, order: Sequence[Region]) -> None:
        self._after = dict(itertools.pairwise(order))
        self._wanted: list[Region] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self._thread.start()

    def reading(self, region: Region) -> None:
        """The scan has read ``region`` and scores it now: ask for the next one."""
        following = self._after.get(region)
        if following is not None:
            with self._wake:
                self._wanted = [following]  # one ahead: an older wish is dropped
                self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._wanted and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                region = self._wanted.pop()
            self._ask(region)

    def _ask(self, region: Region) -> None:
        stop = region.offset + region.nbytes
        try:
            with region.file.open("rb") as f:
                for start in range(region.offset, stop, STEP):
                    if self._closed or self._wanted:  # the scan has moved on
                        return
                    span(f.fileno(), start, min(start + STEP, stop))
        except OSError:
            pass  # a hint: the scan reads the bytes itself and reports what is wrong
