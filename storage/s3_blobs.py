"""Blobs in an S3-compatible bucket (AWS S3, MinIO): workers on other hosts need no shared disk.

An object's key is `<prefix>sha256/<hex>`, and the digest is known only once the last byte
has arrived, so an upload streams into a local temp file while it is hashed (the same
staging as the disk store, crash cleanup included), then goes to the bucket, in parts
above `PART_BYTES`, and the temp file is removed. S3 makes a PUT or a completed multipart
upload visible whole or not at all, as the disk store's rename does. Downloads are streamed
(the API) or fetched in concurrent ranged GETs (a worker's copy): no model is ever held in
memory whole. Credentials and region come from boto3's usual sources (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`, an instance role, ...).
"""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from storage.blob_store import BlobMissing, StoredBlob, checked_sha256
from storage.blobs import CHUNK, Staging, file_sha256, staged_stream

# Parts of 64 MiB keep a 10 GB model at ~160 parts, far below S3's 10,000-part cap, and
# four in flight bound a transfer's memory: against moto, put_file, fetch_to and
# open_chunks of a 320 MiB blob raised the process's peak RSS by about 100 MiB in all.
PART_BYTES = 64 << 20
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
# What botocore raises when a body stops short: the connection broke, stalled, or closed early.
_BROKEN_STREAM = (ResponseStreamingError, ReadTimeoutError, IncompleteReadError)
_RESUMES = 3

log = logging.getLogger(__name__)


class S3BlobStore:
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        staging_root: Path,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.staging = Staging(staging_root / "tmp")
        self.transfer = TransferConfig(
            multipart_threshold=part_bytes,
            multipart_chunksize=part_bytes,
            max_concurrency=4,
            io_chunksize=CHUNK,
        )

    @classmethod
    def from_url(
        cls, url: str, staging_root: Path, endpoint_url: str | None, part_bytes: int = PART_BYTES
    ) -> "S3BlobStore":
        bucket, prefix = parse_s3_url(url)
        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=60,
            # MinIO and other self-hosted servers answer on one host name, not per bucket.
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        # A session per store: boto3's default session is not safe to share between threads.
        client = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        return cls(client, bucket, prefix, staging_root, part_bytes)

    def key(self, sha256: str) -> str:
        return f"{self.prefix}sha256/{checked_sha256(sha256)}"

    def exists(self, sha256: str) -> bool:
        try:
            self.size(sha256)
        except BlobMissing:
            return False
        return True

    def size(self, sha256: str) -> int:
        with _missing_as(sha256):
            head = self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        return int(head["ContentLength"])

    def put_stream(self, stream: BinaryIO, max_bytes: int) -> StoredBlob:
        with staged_stream(self.staging, stream, max_bytes) as (tmp_path, _, blob):
            self._upload(tmp_path, blob.sha256)
        return blob

    def put_file(self, source: Path) -> StoredBlob:
        # Already a file of ours (a worker's artifact): hashed in place, uploaded from there.
        blob = file_sha256(source)
        self._upload(source, blob.sha256)
        return blob

    def adopt_file(self, source: Path) -> StoredBlob:
        return self.put_file(source)  # the bucket is on another host: it is uploaded

    def open_chunks(self, sha256: str) -> Iterator[bytes]:
        """One streamed GET; a stream broken mid-way resumes with a ranged GET from the
        first byte not yet yielded (the bytes under a digest's key never change), so a
        multi-gigabyte download survives a dropped connection to the bucket."""
        key = self.key(sha256)
        with _missing_as(sha256):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        size, sent = int(response["ContentLength"]), 0
        for resume in range(_RESUMES + 1):
            body = response["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK):
                    sent += len(chunk)
                    yield chunk
                return
            except _BROKEN_STREAM as exc:
                if resume == _RESUMES:
                    raise
                log.warning("blob %s: download broke at byte %d (%s); resuming", sha256, sent, exc)
            finally:
                body.close()  # a client that hangs up mid-download frees the connection
            if sent >= size:
                return  # broke after the last byte: a range past the end would be a 416
            with _missing_as(sha256):
                response = self.client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={sent}-"
                )

    def fetch_to(self, sha256: str, destination: Path) -> Path:
        with _missing_as(sha256):
            self.client.download_file(
                self.bucket, self.key(sha256), str(destination), Config=self.transfer
            )
        return destination

    @contextlib.contextmanager
    def as_local_file(self, sha256: str) -> Iterator[Path]:
        with self.staging.temp_file() as (path, out):
            out.close()
            yield self.fetch_to(sha256, path)

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def staging_free_bytes(self) -> int:
        return self.staging.free_bytes()

    def ping(self) -> None:
        self.staging.ping()
        self.client.head_bucket(Bucket=self.bucket)

    def clear_partial_uploads(self, older_than_s: float) -> int:
        # Parts of a multipart upload cut short by a crash stay in the bucket until its
        # lifecycle rule (AbortIncompleteMultipartUpload; MinIO: 24 h by default) drops them.
        return self.staging.clear_stale(older_than_s)

    def _upload(self, path: Path, sha256: str) -> None:
        self.client.upload_file(str(path), self.bucket, self.key(sha256), Config=self.transfer)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key prefix ending in `/` or empty) of `s3://bucket[/prefix]`."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"expected s3://bucket or s3://bucket/prefix, got {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


@contextlib.contextmanager
def _missing_as(sha256: str) -> Iterator[None]:
    """S3's 404 in any of its spellings (HEAD has no body, so no error code) as BlobMissing."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if str(error.get("Code", "")) in _MISSING or status == "404":
            raise BlobMissing(f"no blob {sha256}") from exc
        raise
