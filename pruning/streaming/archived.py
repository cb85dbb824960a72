"""An archived model's tensors read and pruned where they lie inside the archive.

A tar stores each member's bytes contiguously after its header, and so does a zip whose
members are stored (not deflated), which is what ``onnx_archive.pack`` writes and what a
pipeline packing gigabytes of weights does. A tensor is then a byte range of the archive
itself, and the pruned archive is the upload copied by the kernel with those ranges pruned in
place: no extraction, no repacking (each would cost one more copy of the model). Member
names, headers and order stay the upload's. A zip's CRC-32 of each changed member is
computed as it is written and patched into its local header and central directory entry.

Locations are checked against the archive's index exactly as ``onnx_archive.unpack`` does
before any range is trusted. Archives this cannot address (deflated members, zip data
descriptors) give None: the caller extracts them instead.
"""

from __future__ import annotations

import posixpath
import struct
import tarfile
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

from pruning.models.onnx_archive import (
    _ONNX_FILE_LIMIT,
    TAR,
    _Archive,
    _normalised,
    _the_onnx_member,
    check_locations,
)
from pruning.models.onnx_model import parse_model
from pruning.streaming.layout import Layout, Region, _external_regions, _skeleton

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader
_CENTRAL_SIGNATURE = b"PK\x01\x02"


def archive_layout(path: Path, kind: str) -> Layout | None:
    with _Archive.open(path, kind) as archive:
        members = archive.members()
        onnx_name = _the_onnx_member(members)
        starts = _data_starts(path, kind)
        if starts is None:
            return None
        graph = archive.read(onnx_name, _ONNX_FILE_LIMIT)
    inline: dict[str, Region] = {}
    skeleton = parse_model(_skeleton(memoryview(graph), path, inline), allow_external=True)
    folder = posixpath.dirname(onnx_name)
    needed = check_locations(skeleton, folder, members)
    if any(name not in starts for name in [onnx_name, *needed]):
        return None
    regions = {n: replace(r, offset=r.offset + starts[onnx_name]) for n, r in inline.items()}
    for name, region in _external_regions(skeleton, Path(folder or ".")):
        start = starts[posixpath.normpath(region.file.as_posix())]
        regions[name] = replace(region, file=path, offset=region.offset + start)
    return Layout(path, skeleton, regions, archived=True)


class MemberCrcs:
    """An observer of the pruned archive's bytes (``rewrite.Observer``) that computes the
    CRC-32 of every member holding a pruned tensor as its bytes are written, so ``seal``
    patches them in without reading the members back."""

    def __init__(self, archive: Path, layout: Layout, changed: set[str]) -> None:
        self._members: list[tuple[zipfile.ZipInfo, int]] = []
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z, archive.open("rb") as f:
                infos, self._central = z.infolist(), z.start_dir
                self._members = [(info, _zip_data_start(f, info)) for info in infos]
        spans = {r.offset for n, r in layout.regions.items() if n in changed}
        self._crcs = {
            index: 0
            for index, (info, start) in enumerate(self._members)
            if any(start <= s < start + info.file_size for s in spans)
        }

    def __call__(self, offset: int, piece: memoryview) -> None:
        end = offset + len(piece)
        for index in self._crcs:
            info, start = self._members[index]
            low, high = max(offset, start), min(end, start + info.file_size)
            if low < high:
                part = piece[low - offset : high - offset]
                self._crcs[index] = zlib.crc32(part, self._crcs[index])

    def seal(self, archive: Path) -> None:
        """Patch the CRC-32s into both headers of each changed member."""
        if not self._crcs:
            return
        with archive.open("r+b") as f:
            entry = self._central
            for index, (info, _) in enumerate(self._members):
                if index in self._crcs:
                    crc = struct.pack("<L", self._crcs[index])
                    f.seek(info.header_offset + 14)
                    f.write(crc)
                    f.seek(entry + 16)
                    f.write(crc)
                entry = _next_central(f, entry)


def _data_starts(path: Path, kind: str) -> dict[str, int] | None:
    """Member name -> offset of its bytes in the archive; None when one is compressed."""
    if kind == TAR:
        with tarfile.open(path, "r:") as tar:
            return {_normalised(m.name): m.offset_data for m in tar.getmembers() if m.isfile()}
    starts = {}
    with zipfile.ZipFile(path) as z, path.open("rb") as f:
        for info in z.infolist():
            if info.is_dir():
                continue
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x08:
                return None
            starts[_normalised(info.filename)] = _zip_data_start(f, info)
    return starts


def _zip_data_start(f: object, info: zipfile.ZipInfo) -> int:
    f.seek(info.header_offset)  # type: ignore[attr-defined]
    fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))  # type: ignore[attr-defined]
    name_length, extra_length = fields[10], fields[11]
    return int(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)


def _next_central(f: object, entry: int) -> int:
    f.seek(entry)  # type: ignore[attr-defined]
    head = f.read(46)  # type: ignore[attr-defined]
    if head[:4] != _CENTRAL_SIGNATURE:
        raise ValueError("the zip's central directory is not where its end record says")
    name, extra, comment = struct.unpack("<3H", head[28:34])
    return int(entry + 46 + name + extra + comment)
