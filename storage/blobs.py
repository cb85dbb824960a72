"""Content-addressed files on disk, written atomically.

Paths come only from sha256 digests we compute, never from a user's string.
"""

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


class BlobTooLarge(Exception):
    """The stream exceeded the size limit; nothing was kept."""


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put_stream(self, stream: BinaryIO, max_bytes: int) -> StoredBlob:
        """Copy `stream` in, hashing as it goes; refuse past `max_bytes` while reading."""
        digest = hashlib.sha256()
        size = 0
        with self._temp_file() as (tmp_path, out):
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(f"larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
            return self._commit(tmp_path, out, digest.hexdigest(), size)

    def put_file(self, source: Path) -> StoredBlob:
        with source.open("rb") as stream:
            return self.put_stream(stream, max_bytes=1 << 62)

    def open_chunks(self, sha256: str) -> Iterator[bytes]:
        with self.path(sha256).open("rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def _temp_file(self) -> "_TempFile":
        return _TempFile(self.root / "tmp")

    def _commit(self, tmp_path: Path, out: BinaryIO, sha256: str, size: int) -> StoredBlob:
        out.flush()
        os.fsync(out.fileno())
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        # rename is atomic on one filesystem: a reader sees the whole blob or none.
        os.replace(tmp_path, final)
        return StoredBlob(sha256=sha256, size_bytes=size)


class _TempFile:
    """A temp file in the store's own tmp dir, removed on any exit unless renamed away."""

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def __enter__(self) -> tuple[Path, BinaryIO]:
        return self.path, self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


def clear_stale_temp_files(store: BlobStore, older_than_s: float = 600.0) -> int:
    """Remove partial uploads left by a crash; call at startup.

    Only files untouched for `older_than_s`: another API process sharing the volume may be
    writing a live upload right now.
    """
    removed = 0
    cutoff = time.time() - older_than_s
    for leftover in (store.root / "tmp").iterdir():
        if leftover.stat().st_mtime > cutoff:
            continue
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
            removed += 1
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    return removed
