"""Content-addressed files on disk, written atomically.

Paths come only from sha256 digests we compute, never from a user's string. Partial files
live in `tmp/<session>/`, one folder per process, locked (flock) while that process lives:
after a crash, the next start removes a dead process's folder at once, while the live
uploads of another API replica sharing the volume keep their lock and stay.
"""

import contextlib
import fcntl
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
_LOCK_NAME = ".owner.lock"
_SESSION_PREFIX = "session-"


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
        self._session: Path | None = None
        self._session_lock: int | None = None
        self._session_owner = 0

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
        return _TempFile(self._session_dir())

    def _session_dir(self) -> Path:
        """This process's folder for partial files, locked for as long as the process lives
        (a forked child inherits the lock with the open file, which is what we want)."""
        if self._session is None or self._session_owner != os.getpid():
            # Locked before it gets its `session-` name: a sweeper never sees it unlocked.
            new = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix=".new-"))
            fd = os.open(new / _LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            session = new.with_name(_SESSION_PREFIX + new.name.removeprefix(".new-"))
            os.rename(new, session)
            self._session, self._session_lock, self._session_owner = session, fd, os.getpid()
        return self._session

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
    """Remove partial uploads left by a crash; call at startup. Returns the files removed.

    A session folder whose lock can be taken belongs to a dead process: removed whatever its
    age. Anything else (loose files, folders of older versions) only once untouched for
    `older_than_s`, since another process sharing the volume may be writing it right now.
    """
    removed = 0
    cutoff = time.time() - older_than_s
    for leftover in (store.root / "tmp").iterdir():
        if leftover == store._session:
            continue
        if leftover.name.startswith(_SESSION_PREFIX):
            # Its lock, not its age, decides: a live replica's slow upload may be old.
            removed += _remove_tree(leftover) if _owner_is_gone(leftover) else 0
        elif leftover.stat().st_mtime <= cutoff:
            removed += _remove_tree(leftover) if leftover.is_dir() else _remove_file(leftover)
    return removed


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
