"""What the API and the worker may ask of a blob store, whichever backend holds the bytes.

Nothing here hands out a path into the store: a local disk (`storage.blobs`, the embedded
default) and an S3 bucket (`storage.s3_blobs`, for workers on other hosts) answer the same
calls. A caller that needs a file gets its own copy (`fetch_to`) or a file that lives for one
`with` block (`as_local_file`).
"""

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

_HEX = frozenset("0123456789abcdef")


class BlobTooLarge(Exception):
    """The stream exceeded the size limit; nothing was kept."""


class StagingFull(Exception):
    """The staging disk has no room for the stream; nothing was kept."""


class BlobMissing(FileNotFoundError):
    """No blob has this digest (deleted, or never stored)."""


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size_bytes: int


class BlobStore(Protocol):
    def staging_free_bytes(self) -> int:
        """Free bytes where uploads are staged: a body larger than this cannot be taken."""
        ...

    def put_stream(self, stream: BinaryIO, max_bytes: int) -> StoredBlob:
        """Copy `stream` in, hashing as it goes; refuse past `max_bytes` while reading."""
        ...

    def put_file(self, source: Path) -> StoredBlob: ...

    def adopt_file(self, source: Path) -> StoredBlob:
        """Store `source`, which the caller hands over: it never reads or writes the file
        again (a worker's artifact). A store on the same disk may make it the blob itself."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def open_chunks(self, sha256: str) -> Iterator[bytes]:
        """The blob in chunks of about 1 MiB, read as the caller iterates."""
        ...

    def fetch_to(self, sha256: str, destination: Path) -> Path:
        """The blob as a file at `destination`, which the caller may not write to."""
        ...

    def as_local_file(self, sha256: str) -> AbstractContextManager[Path]:
        """A readable file holding the blob, valid inside the `with` block only."""
        ...

    def delete(self, sha256: str) -> None: ...

    def ping(self) -> None:
        """Raise unless this process can store a blob now (for /readyz)."""
        ...

    def clear_partial_uploads(self, older_than_s: float) -> int:
        """Remove partial uploads left by a crash; returns how many were removed."""
        ...


def checked_sha256(sha256: str) -> str:
    """`sha256` when it is a lowercase hex digest; a user's string never becomes a path or
    an object key."""
    if len(sha256) != 64 or not _HEX.issuperset(sha256):
        raise ValueError("not a sha256 hex digest")
    return sha256


def open_blob_store(blob_url: str | None, local_root: Path, endpoint_url: str | None) -> BlobStore:
    """Files under `local_root` when `blob_url` is None, else the S3 bucket it names
    (`s3://bucket/prefix`), with partial uploads staged under `local_root`."""
    if blob_url is None:
        from storage.blobs import FileBlobStore

        return FileBlobStore(local_root)
    # boto3 is imported only where a bucket is used: the embedded default starts without it.
    from storage.s3_blobs import S3BlobStore

    return S3BlobStore.from_url(blob_url, staging_root=local_root, endpoint_url=endpoint_url)
