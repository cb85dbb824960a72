"""Compressed sizes of a file: measured by compressing all of it, or estimated from a sample.

Deflating a few hundred MB costs tens of seconds (measured in the engine's profile: 43 s for
a 400 MB upload and its pruned artifact on a shared 2-core machine, against 0.24 s of
pruning), which is why the report samples by default. The sample is `SAMPLE_CHUNKS` chunks
spread evenly from the start of the file to its end, each compressed on its own; the ratio of
their compressed to their raw bytes, times the file's size, estimates the compressed size.
Deflate's window is 32 KiB, so a 256 KiB chunk sees almost all the matches it would see in
the whole file; zstd (level 3, window up to 2 MiB) may find a few more across chunks, so its
estimate leans high. Files no larger than the sample are compressed whole and measured.
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# The levels a user gets from the command-line tools without flags.
ZIP_LEVEL = 6
ZSTD_LEVEL = 3
SAMPLE_CHUNKS = 16
SAMPLE_CHUNK_BYTES = 256 * 1024
# One file in a zip: local header (30 bytes), central directory entry (46) and end record
# (22), the name twice; what deflating the chunks does not count.
_ZIP_FIXED_BYTES = 98
_READ = 1 << 20

# The spec's report.compressed_sizes: "sampled" (the default), "measured" or "none".
Compressed = str


@dataclass(frozen=True)
class CompressedSizes:
    zip: int
    zstd: int | None  # None without the zstandard package
    compressed_bytes: int  # how many of the file's bytes went through the compressors
    file_bytes: int

    @property
    def estimated(self) -> bool:
        return self.compressed_bytes < self.file_bytes

    def describe(self, codec: str) -> str:
        if not self.estimated:
            return f"measured: the whole file compressed ({codec})"
        share = self.compressed_bytes / self.file_bytes if self.file_bytes else 0.0
        return (
            f"estimated, not measured: {SAMPLE_CHUNKS} chunks of {SAMPLE_CHUNK_BYTES // 1024} "
            f"KiB spread evenly through the file ({share:.2%} of it) compressed each on its "
            f"own ({codec}); the file's size times their compressed/raw ratio. Set "
            "report.compressed_sizes to 'measured' to compress the whole file"
        )


def compressed_sizes(path: Path, how: Compressed) -> CompressedSizes | None:
    """None when `how` is 'none'; the whole file when 'measured'; otherwise ('sampled') a
    sample estimate for a file larger than the sample."""
    if how == "none":
        return None
    size = path.stat().st_size
    if how == "measured" or size <= SAMPLE_CHUNKS * SAMPLE_CHUNK_BYTES:
        return CompressedSizes(zipped_size(path), zstd_size(path), size, size)
    return sampled_sizes(path)


def sampled_sizes(path: Path) -> CompressedSizes:
    raw = deflated = 0
    zstd: int | None = 0
    with path.open("rb") as source:
        for chunk in _evenly_spaced_chunks(source, path.stat().st_size):
            raw += len(chunk)
            deflater = zlib.compressobj(ZIP_LEVEL, zlib.DEFLATED, -15)  # raw deflate, as zip
            deflated += len(deflater.compress(chunk)) + len(deflater.flush())
            one = _zstd_frame_size(chunk)
            zstd = None if one is None or zstd is None else zstd + one
    size = path.stat().st_size
    overhead = _ZIP_FIXED_BYTES + 2 * len(path.name.encode())
    return CompressedSizes(
        zip=round(deflated / raw * size) + overhead,
        zstd=None if zstd is None else round(zstd / raw * size),
        compressed_bytes=raw,
        file_bytes=size,
    )


def _evenly_spaced_chunks(source: BinaryIO, size: int) -> Iterator[bytes]:
    last = size - SAMPLE_CHUNK_BYTES
    for i in range(SAMPLE_CHUNKS):
        source.seek(round(i * last / (SAMPLE_CHUNKS - 1)))
        yield source.read(SAMPLE_CHUNK_BYTES)


def zipped_size(path: Path) -> int:
    """Bytes of a real zip archive holding `path`, written to a scratch directory."""
    with tempfile.TemporaryDirectory(prefix="shears-zip-") as scratch:
        archive = Path(scratch) / "artifact.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as z:
            z.write(path, arcname=path.name)
        return archive.stat().st_size


def zstd_size(path: Path) -> int | None:
    """Bytes of the zstd frame of `path`, streamed; None without the zstandard package."""
    try:
        import zstandard
    except ImportError:
        return None
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    size = 0
    with path.open("rb") as source:
        while chunk := source.read(_READ):
            size += len(compressor.compress(chunk))
    return size + len(compressor.flush())


def _zstd_frame_size(data: bytes) -> int | None:
    try:
        import zstandard
    except ImportError:
        return None
    return len(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))
