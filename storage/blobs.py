"""Content-addressed files on disk, written atomically: the embedded default blob store.

Paths come only from sha256 digests we compute, never from a user's string. Partial files
live in `tmp/<session>/`, one folder per process, locked (flock) while that process lives:
after a crash, the next start removes a dead process's folder at once, while the live
uploads of another API replica sharing the volume keep their lock and stay. The S3 backend
stages its uploads the same way (`Staging`, `staged_stream`).
"""

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from storage.blob_store import (
    BlobMissing,
    BlobStore,
    BlobTooLarge,
    StagingFull,
    StoredBlob,
    checked_sha256,
)

__all__ = [
    "BlobMissing",
    "BlobTooLarge",
    "FileBlobStore",
    "Staging",
    "StoredBlob",
    "clear_stale_temp_files",
    "staged_stream",
]

CHUNK = 1 << 20
_LOCK_NAME = ".owner.lock"
_SESSION_PREFIX = "session-"
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)  # not on macOS
_AHEAD_PIECE = 1 << 20


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sha256").mkdir(parents=True, exist_ok=True)
        self.staging = Staging(root / "tmp")

    def path(self, sha256: str) -> Path:
        checked_sha256(sha256)
        return self.root / "sha256" / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError as exc:
            raise BlobMissing(f"no blob {sha256}") from exc

    def put_stream(self, stream: BinaryIO, max_bytes: int) -> StoredBlob:
        with staged_stream(self.staging, stream, max_bytes) as (tmp_path, out, blob):
            os.fsync(out.fileno())
            final = self.path(blob.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            # rename is atomic on one filesystem: a reader sees the whole blob or none.
            os.replace(tmp_path, final)
            return blob

    def put_file(self, source: Path) -> StoredBlob:
        with source.open("rb") as stream:
            return self.put_stream(stream, max_bytes=1 << 62)

    def adopt_file(self, source: Path) -> StoredBlob:
        """`source` becomes the blob by a hard link: one read pass to hash it, one fsync, no
        copy (a multi-gigabyte artifact was copied, fsynced and hashed, for half a job's
        time). The file is made read-only before it is hashed; it is linked under a staging
        name, checked to be the inode that was hashed, then renamed to its digest, so a
        crash leaves no partial blob under a digest. Copied instead when it cannot be
        linked: another file system, or a file with other names that could still change."""
        try:
            fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return self.put_file(source)  # a symlink, or gone: the copy path says why
        with os.fdopen(fd, "rb") as f:
            hashed = os.fstat(fd)
            if not (
                stat.S_ISREG(hashed.st_mode)
                and hashed.st_nlink == 1
                and hashed.st_dev == os.stat(self.root).st_dev
            ):
                return self.put_file(source)
            os.fchmod(fd, _READ_ONLY)
            blob = _hashed(f)
            os.fsync(fd)
        with self.staging.temp_file() as (tmp_path, _):
            tmp_path.unlink()
            try:
                os.link(source, tmp_path)
            except OSError:
                return self.put_file(source)
            linked = tmp_path.stat()
            if (linked.st_dev, linked.st_ino) != (hashed.st_dev, hashed.st_ino):
                return self.put_file(source)  # replaced since it was hashed
            final = self.path(blob.sha256)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_path, final)
        return blob

    def open_chunks(self, sha256: str) -> Iterator[bytes]:
        try:
            f = self.path(sha256).open("rb")
        except FileNotFoundError as exc:
            raise BlobMissing(f"no blob {sha256}") from exc
        with f:
            while chunk := f.read(CHUNK):
                yield chunk

    def fetch_to(self, sha256: str, destination: Path) -> Path:
        """Hard-link the blob to `destination` (copy across filesystems).

        The blob is made read-only first: a link shares the inode, so an engine writing to
        its input in place would otherwise change the stored upload.
        """
        source = self.path(sha256)
        try:
            os.chmod(source, _READ_ONLY)
        except FileNotFoundError as exc:
            raise BlobMissing(f"no blob {sha256}") from exc
        try:
            os.link(source, destination)
        except OSError:
            shutil.copyfile(source, destination)
        return destination

    @contextlib.contextmanager
    def as_local_file(self, sha256: str) -> Iterator[Path]:
        path = self.path(sha256)
        if not path.is_file():
            raise BlobMissing(f"no blob {sha256}")
        yield path

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def staging_free_bytes(self) -> int:
        return self.staging.free_bytes()

    def ping(self) -> None:
        self.staging.ping()

    def clear_partial_uploads(self, older_than_s: float) -> int:
        return self.staging.clear_stale(older_than_s)


class Staging:
    """A folder of partial uploads, with one locked session folder per live process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._session: Path | None = None
        self._session_lock: int | None = None
        self._session_owner = 0

    def temp_file(self) -> "_TempFile":
        return _TempFile(self._session_dir())

    def ping(self) -> None:
        with tempfile.NamedTemporaryFile(dir=self.root, prefix="ready-"):
            pass

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def _session_dir(self) -> Path:
        """This process's folder for partial files, locked for as long as the process lives
        (a forked child inherits the lock with the open file, which is what we want)."""
        if self._session is None or self._session_owner != os.getpid():
            # Locked before it gets its `session-` name: a sweeper never sees it unlocked.
            new = Path(tempfile.mkdtemp(dir=self.root, prefix=".new-"))
            fd = os.open(new / _LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            session = new.with_name(_SESSION_PREFIX + new.name.removeprefix(".new-"))
            os.rename(new, session)
            self._session, self._session_lock, self._session_owner = session, fd, os.getpid()
        return self._session

    def clear_stale(self, older_than_s: float) -> int:
        """A session folder whose lock can be taken belongs to a dead process: removed
        whatever its age. Anything else (loose files, folders of older versions) only once
        untouched for `older_than_s`, since another process sharing the volume may be writing
        it right now."""
        removed = 0
        cutoff = time.time() - older_than_s
        for leftover in self.root.iterdir():
            if leftover == self._session:
                continue
            if leftover.name.startswith(_SESSION_PREFIX):
                # Its lock, not its age, decides: a live replica's slow upload may be old.
                removed += _remove_tree(leftover) if _owner_is_gone(leftover) else 0
            elif leftover.stat().st_mtime <= cutoff:
                removed += _remove_tree(leftover) if leftover.is_dir() else _remove_file(leftover)
        return removed


class _TempFile:
    """A temp file in a session folder, removed on any exit unless renamed away."""

    def __init__(self, directory: Path) -> None:
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self.path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def __enter__(self) -> tuple[Path, BinaryIO]:
        return self.path, self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_stream(
    staging: Staging, stream: BinaryIO, max_bytes: int
) -> Iterator[tuple[Path, BinaryIO, StoredBlob]]:
    """`stream` copied into a temp file (flushed, still open) and hashed; the file is
    removed when the block ends unless the block renamed it away. Refused past `max_bytes`
    while reading, so an oversized upload never fills the disk."""
    digest = hashlib.sha256()
    size = 0
    with staging.temp_file() as (tmp_path, out):
        try:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(f"larger than the limit of {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StagingFull(f"the disk filled after {size} bytes") from exc
        yield tmp_path, out, StoredBlob(sha256=digest.hexdigest(), size_bytes=size)


def file_sha256(path: Path) -> StoredBlob:
    """The digest and size of a file, read once in chunks."""
    with path.open("rb") as f:
        return _hashed(f)


def _hashed(f: BinaryIO) -> StoredBlob:
    """Digest and size of an open file from its current position, read into one reused
    buffer (no allocation per chunk). The next chunk is asked of the disk while this one is
    hashed: a file the page cache does not hold (a multi-gigabyte artifact) is otherwise
    read slowly by the kernel's own read-ahead (`pruning/streaming/read_ahead.py` measures
    it) and the reads and the hashing take turns."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(CHUNK * 8))
    ahead = _ReadAhead(f, len(buffer))
    size = 0
    while True:
        ahead.next_after(size)
        n = f.readinto(buffer)  # type: ignore[attr-defined]
        if not n:
            break
        size += n
        digest.update(buffer[:n])
    return StoredBlob(sha256=digest.hexdigest(), size_bytes=size)


class _ReadAhead:
    """Asks the kernel (`posix_fadvise(WILLNEED)`, a hint) for the chunk after the one about
    to be read; nothing where the file has no descriptor or the platform no such call."""

    def __init__(self, f: BinaryIO, chunk: int) -> None:
        self.chunk = chunk
        self.fd: int | None = None
        if _WILLNEED is not None:
            with contextlib.suppress(OSError, ValueError):  # io.UnsupportedOperation too
                self.fd, self.start = f.fileno(), f.tell()

    def next_after(self, done: int) -> None:
        if self.fd is not None:
            start = self.start + done + self.chunk
            with contextlib.suppress(OSError):
                # In pieces: the kernel cuts one request short at the device's read-ahead.
                for offset in range(start, start + self.chunk, _AHEAD_PIECE):
                    os.posix_fadvise(self.fd, offset, _AHEAD_PIECE, _WILLNEED)  # type: ignore[arg-type]


def clear_stale_temp_files(store: BlobStore, older_than_s: float = 600.0) -> int:
    """Remove partial uploads left by a crash; call at startup. Returns the files removed."""
    return store.clear_partial_uploads(older_than_s)


def _owner_is_gone(session: Path) -> bool:
    try:
        fd = os.open(session / _LOCK_NAME, os.O_RDWR)
    except OSError:
        return False  # not a folder we made: its age decides
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its process holds the lock: live uploads
    finally:
        os.close(fd)  # also releases the lock we may have taken
    return True


def _remove_tree(folder: Path) -> int:
    count = sum(1 for p in folder.rglob("*") if p.is_file() and p.name != _LOCK_NAME)
    shutil.rmtree(folder, ignore_errors=True)
    return count


def _remove_file(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return 1
    return 0
