"""A pruned model file is its source with some byte ranges rewritten.

Pruning changes values, never shapes or types, so every tensor keeps its byte range: the
output is the input's bytes with the pruned tensors' ranges changed, whatever the layout (a
single .onnx file, or a graph and its data files). The file is copied by the kernel
(``copy_file_range``, no pass through the process); each pruned range is then mapped in the
copy and pruned there, one tensor at a time (measured: filling fresh pages of a sparse file
through a mapping cost more than the kernel's copy of the same bytes).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from pruning.streaming.layout import Region
from pruning.streaming.mapped import map_region
from pruning.tensors import FloatArray

_COPY = 1 << 26  # bytes per read/write where the kernel cannot copy between the files
# Visit a pruned range: its values before (input) and the output's writable view to prune.
Visit = Callable[[str, FloatArray, FloatArray], None]


def rewrite_file(
    source: Path, dest: Path, ranges: Iterable[tuple[str, Region]], visit: Visit
) -> None:
    """``dest``: ``source`` with each named range changed by ``visit``, in file order. The
    kernel copies the whole file first (page cache to page cache, no pass through the
    process); each range is then mapped and pruned in place, one at a time."""
    size = source.stat().st_size
    dest.parent.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as src, dest.open("wb") as dst:
        _copy_range(src.fileno(), dst.fileno(), 0, size)
    for name, region in sorted(ranges, key=lambda item: item[1].offset):
        before = map_region(region)
        after = map_region(region, dest, writable=True)
        visit(name, before, after)
        del before, after  # unmapped before the next range is mapped


def _copy_range(src: int, dst: int, offset: int, count: int) -> None:
    while count > 0:
        try:
            done = os.copy_file_range(src, dst, count, offset, offset)
        except OSError as exc:  # another file system, or a kernel without it
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            _copy_by_hand(src, dst, offset, count)
            return
        if done == 0:
            raise OSError(errno.EIO, "the model file ended while it was being copied")
        offset += done
        count -= done


def _copy_by_hand(src: int, dst: int, offset: int, count: int) -> None:
    while count > 0:
        chunk = os.pread(src, min(_COPY, count), offset)
        if not chunk:
            raise OSError(errno.EIO, "the model file ended while it was being copied")
        os.pwrite(dst, chunk, offset)
        offset += len(chunk)
        count -= len(chunk)
